"""Project pipelines: one per stage, found under ``mindkd.pipelines``.

``__default__`` runs every stage but those run on request: ``tune`` (the val-split search of every
method, ``mindkd.pipelines.tune``: ``kedro run`` trains with the values the config holds, and a
search runs only when asked for, ``kedro run --pipelines tune``) and ``avdigits``.

``avdigits`` is the AV-digits benchmark end to end: its source adapter (``mindkd.pipelines.avdigits``:
spoken and handwritten digits as keyed samples of each modality), then the teachers and distill
stages instantiated for the ``avdigits`` namespace, unchanged but for where the image store is
(``avdigits.image_store``) and that its CXR-slot members start from seeded weights (no CheXpert
pre-training applies to digits).
"""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from mindkd.pipelines.distill.pipeline import create_pipeline as distill_pipeline
from mindkd.pipelines.teachers.pipeline import create_pipeline as teachers_pipeline
from mindkd.tasks import AVDIGITS

ON_REQUEST = ("tune", AVDIGITS)  # registered, never part of __default__


def avdigits_chain(adapter: Pipeline) -> Pipeline:
    """The AV-digits adapter, then the clinical teachers and distill stages in its namespace."""
    images = {"cxr_image_store": f"{AVDIGITS}.image_store"}
    teachers = Pipeline(
        teachers_pipeline(tasks=(AVDIGITS,), shared_pretraining=False), inputs=images
    )
    distill = Pipeline(
        distill_pipeline(tasks=(AVDIGITS,)),
        inputs={**images, "demo_truth_stays": f"{AVDIGITS}.truth"},
    )
    return adapter + teachers + distill


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    if AVDIGITS in pipelines:  # Kedro finds only the requested pipelines when names are given
        pipelines[AVDIGITS] = avdigits_chain(pipelines[AVDIGITS])
    stages = [p for name, p in pipelines.items() if name not in ON_REQUEST]
    pipelines["__default__"] = sum(stages, Pipeline([]))
    return pipelines

"""AV-digits: a non-medical multimodal, multiclass source built like AV-MNIST, in MIND-KD's schemas.

Spoken digits (the Free Spoken Digit Dataset, ``fsdd``) play the EHR time series, as log-mel
spectrograms (``features``); handwritten digits (scikit-learn's ``load_digits``, ``images``) play
the chest X-rays. Audio is split by speaker, images by image (``splits``); each recording is paired
with an image of the same digit from the same split, and shares of each modality are left out on
purpose (``pairing``). The outputs have the columns and store layouts of the clinical ``<task>.cohort``,
``<task>.timeseries``, ``<task>.pairs``, ``<task>.cxr_only``, ``<task>.subgroups`` and the image store
(``tables``, ``features``, ``images``), so the teachers and distill pipelines read them unchanged.
``report`` describes what was read, skipped, split and paired.

Pure functions, no Kedro: the ``avdigits`` pipeline (``mindkd.pipelines.avdigits``) wires them.
"""

from mindkd.avdigits.tables import LABELS

__all__ = ["LABELS"]

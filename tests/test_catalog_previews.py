"""kedro-viz serves previews (rows) of datasets over HTTP: none may show a patient id or a path.

The rule, over every entry of ``conf/base/catalog*.yml``: an entry of a row-level layer has
``metadata: {kedro-viz: {preview: false}}``; an entry of another layer (reporting, models) keeps a
preview only when it is in ``AGGREGATES``, reviewed as holding no id, no path and no row of a
patient. A new patient table, or a new report, has previews off until someone reviews it here.
"""

from __future__ import annotations

from typing import Any

import pytest
from kedro.config import OmegaConfigLoader
from kedro.io.core import parse_dataset_definition

from kedro_harness import PROJECT_ROOT

# Layers whose datasets hold one row (or array) per patient, stay or image, keyed by their ids.
ROW_LEVEL_LAYERS = frozenset(
    {"raw", "intermediate", "primary", "feature", "model_input", "teacher_outputs", "model_output"}
)
# Reports that list ids or file paths: previews off, whatever their layer.
ID_REPORTS = frozenset(
    {
        "cxr_decode_failures",  # dicom_id, path, reason per skipped image
        "cxr_data_report",  # decode_failures.files: the same rows
        "{task}.cohort_report",  # ihm_label_rules.*.disagreement_stays: stay_ids
    }
)
# Reviewed: counts, scores, curves, model cards or weights only. Adding a name here is a review.
AGGREGATES = frozenset(
    {
        "ehr_data_report",
        "{task}.cohort_flow",
        "{task}.pairing_report",
        "{task}.cohort_flow_plot",
        "{task}.distill.{variant}.spec",
        "{task}.distill.{variant}.weights",
        "{task}.distill.{variant}.history",
        "{task}.distill.{model}_compression",
        "{task}.distill.mind.mlflow_model",
        "{task}.distill.evaluation",
        "{task}.distill.differences",
        "{task}.distill.mfh.gammas",  # one row per (teacher, head): gamma, interval, counts
        "{task}.distill.mfh.verdicts",  # the same rows with the gains and the demo's true gamma
        "{task}.distill.mfh.report",  # that table as markdown
        "{task}.distill.reliability",
        "{task}.distill.comparison_table",
        "{task}.distill.comparison_markdown",
        "{task}.distill.comparison_report",
        "{task}.distill.roc_pr_{head}",
        "{task}.distill.reliability_plot",
        "{task}.distill.comparison_plot",
        "{task}.distill.confusion_plot",  # shares per class, counts per true class: no id
        "{task}.distill.subgroup_evaluation",  # per group: counts and scores, no id
        "{task}.distill.subgroups_plot",
        "{task}.distill.training_curves_plot",
        "{task}.teacher_{member}.weights",
        "{task}.teacher_{member}.pretrained_weights",
        "{task}.teacher_{member}.history",
        "{task}.teacher_{member}.pretrain_history",
        "cxr_pretrained_{member}",
        "cxr_pretrain_history_{member}",
        "{task}.teacher_report",
        "{task}.teacher_report_table",
        "{task}.teacher_training_curves_plot",
        "{task}.tune.{method}.trials",  # searched values, state, val score, epochs: no id
        "{task}.tune.tuned_parameters",  # settings only
        "{task}.tune.report",  # the study's scores and settings
    }
)


@pytest.fixture(scope="module")
def catalog() -> dict[str, dict[str, Any]]:
    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base")
    return dict(loader["catalog"])


def _viz(entry: dict[str, Any]) -> dict[str, Any] | None:
    return (entry.get("metadata") or {}).get("kedro-viz")


def _previewable(entry: dict[str, Any]) -> bool:
    """Whether kedro-viz could preview it: its dataset (or the one it wraps) has ``preview``."""
    types = [parse_dataset_definition(dict(entry))[0]]
    if isinstance(entry.get("dataset"), dict):
        types.append(parse_dataset_definition(dict(entry["dataset"]))[0])
    return any(hasattr(kind, "preview") for kind in types)


def test_every_dataset_that_may_hold_ids_or_paths_has_previews_off(catalog) -> None:
    previewed = {
        name
        for name, entry in catalog.items()
        if _viz(entry) is not None and _viz(entry).get("preview") is not False
    }
    row_level = {n for n, e in catalog.items() if (_viz(e) or {}).get("layer") in ROW_LEVEL_LAYERS}
    assert row_level >= {"patients", "cxr_metadata", "{task}.cohort", "{task}.pairs"}
    wrong = {
        "row-level layer": previewed & row_level,
        "report with ids or paths": previewed & ID_REPORTS,
        "not reviewed as aggregate": previewed - AGGREGATES - row_level - ID_REPORTS,
    }
    assert not any(wrong.values()), f"kedro-viz previews on: {wrong}"


def test_entries_without_kedro_viz_metadata_cannot_be_previewed(catalog) -> None:
    bare = {name for name, entry in catalog.items() if _viz(entry) is None}
    assert bare, "the MLflow metric datasets carry no metadata"
    assert {name for name in bare if _previewable(catalog[name])} == set()


def test_the_reviewed_lists_name_catalog_entries(catalog) -> None:
    assert (AGGREGATES | ID_REPORTS) - set(catalog) == set(), "stale names"
    layers = {name: (_viz(catalog[name]) or {}).get("layer") for name in AGGREGATES}
    assert {n for n, layer in layers.items() if layer in ROW_LEVEL_LAYERS} == set()

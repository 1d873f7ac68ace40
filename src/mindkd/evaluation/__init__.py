"""Evaluation library of MIND-KD: test-set scores with bootstrap intervals, calibration, cost.

* ``scoring``: AUROC / AUPRC (macro for multilabel) with seeded percentile-bootstrap intervals per
  model, subset (full / paired test set) and head, shared resamples, paired differences, ECE;
* ``calibration``: probabilities and calibration inputs per task kind;
* ``compression``: parameters, state-dict bytes, CPU latency at batch 1;
* ``report``: the comparison table and its markdown;
* ``plots``: ROC / PR and reliability figures;
* ``truth``: the Bayes ceiling from the demo generator's truth (optional dataset).

Pipelines call these; nothing here imports a pipeline or talks to MLflow.
"""

from mindkd.evaluation.calibration import calibration_inputs, logit, probabilities
from mindkd.evaluation.compression import (
    ensemble_compression,
    measure_latency,
    model_compression,
    state_dict_bytes,
)
from mindkd.evaluation.plots import reliability_figure, roc_pr_figure
from mindkd.evaluation.report import comparison_table, to_markdown
from mindkd.evaluation.scoring import (
    SUBSETS,
    Scores,
    ScoreSettings,
    aligned_logits,
    paired_differences,
    score_predictions,
)
from mindkd.evaluation.truth import CEILING, OptionalParquetDataset, truth_predictions

__all__ = [
    "CEILING",
    "SUBSETS",
    "OptionalParquetDataset",
    "ScoreSettings",
    "Scores",
    "aligned_logits",
    "calibration_inputs",
    "comparison_table",
    "ensemble_compression",
    "logit",
    "measure_latency",
    "model_compression",
    "paired_differences",
    "probabilities",
    "reliability_figure",
    "roc_pr_figure",
    "score_predictions",
    "state_dict_bytes",
    "to_markdown",
    "truth_predictions",
]

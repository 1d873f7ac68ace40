"""Training library of MIND-KD: the MIND loss, data loading, the fit loop, metrics, seeding, devices.

Pipelines call these; nothing here imports a pipeline or talks to MLflow (history is returned as data).
"""

from mindkd.training.data import (
    DatasetSpecError,
    EpochSeededSampler,
    MultiModalDataset,
    Sample,
    SampleTable,
    collate_multimodal,
    make_loader,
)
from mindkd.training.device import resolve_device, to_device
from mindkd.training.fit import (
    FitConfig,
    FitResult,
    LoaderFitConfig,
    RoutedEvaluator,
    fit,
    fit_datasets,
    predict,
    scores_for_metrics,
)
from mindkd.training.losses import LossConfigError, MindLoss, MindLossConfig, ensemble_targets
from mindkd.training.metrics import (
    BootstrapResult,
    LabelwiseScore,
    auprc,
    auprc_labelwise,
    auroc,
    auroc_labelwise,
    bootstrap,
    bootstrap_ci,
    expected_calibration_error,
    reliability_table,
    resample_indices,
)
from mindkd.training.seed import deterministic, seed_everything

__all__ = [
    "BootstrapResult",
    "DatasetSpecError",
    "EpochSeededSampler",
    "FitConfig",
    "FitResult",
    "LabelwiseScore",
    "LoaderFitConfig",
    "LossConfigError",
    "MindLoss",
    "MindLossConfig",
    "MultiModalDataset",
    "RoutedEvaluator",
    "Sample",
    "SampleTable",
    "auprc",
    "auprc_labelwise",
    "auroc",
    "auroc_labelwise",
    "bootstrap",
    "bootstrap_ci",
    "collate_multimodal",
    "deterministic",
    "ensemble_targets",
    "expected_calibration_error",
    "fit",
    "fit_datasets",
    "make_loader",
    "predict",
    "reliability_table",
    "resample_indices",
    "resolve_device",
    "scores_for_metrics",
    "seed_everything",
    "to_device",
]

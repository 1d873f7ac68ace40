"""The multimodal models' datasets, training and test predictions (students and baselines).

Every variant (student, no-KD student, baselines) goes through the same functions: a
``MultiModalDataset`` over the prepared stores (mixed paired / EHR-only samples, the missing modality
never padded), ``mindkd.training.fit`` with ``MindLoss`` early-stopped on the val split, and
``mindkd.training.predict`` for the per-head test logits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd
from torch import Tensor

from mindkd.io.array_store import ArrayStore
from mindkd.io.logit_cache import logit_columns
from mindkd.models.spec import ImageNormaliser, build_network
from mindkd.models.student import HEADS, RoutedModel
from mindkd.training.data import MultiModalDataset, collate_multimodal, make_loader
from mindkd.training.fit import (
    EpochCallback,
    FitResult,
    RoutedEvaluator,
    fit_datasets,
    predict,
)
from mindkd.training.losses import MindLoss
from mindkd.training.samples import sample_dataset
from mindkd.training.seed import deterministic, seed_everything
from mindkd.training.spec import ModelSpec
from mindkd.training.targets import targets_for

logger = logging.getLogger(__name__)

PREDICTION_HEADS: tuple[str, ...] = (*HEADS, "routed")


def build_dataset(
    samples: pd.DataFrame,
    spec: ModelSpec,
    timeseries: ArrayStore,
    image_store: ArrayStore,
    targets: pd.DataFrame | None = None,
) -> MultiModalDataset:
    """Samples of one split read from the stores by key; teacher targets when given.

    Raises ``ValueError`` when the store's width is not the one ``spec``'s EHR encoder takes.
    """
    check_ehr_width(spec, timeseries)
    teacher = None if targets is None else targets_for(targets, samples, len(spec.labels))
    return sample_dataset(
        samples,
        spec.labels,
        key="stay_id",
        timeseries=timeseries,
        ehr_key="stay_id",
        image_store=image_store,
        cxr_key="dicom_id",
        image_mean=spec.image.mean,
        image_std=spec.image.std,
        teacher=teacher,
    )


def check_ehr_width(spec: ModelSpec, timeseries: ArrayStore) -> None:
    """The time-series store has the columns per hour that ``spec``'s EHR encoder was built for."""
    width = int(timeseries.arrays["values"].shape[-1])
    if width != spec.ehr_channels:
        trained = spec.ehr_input.encoding if spec.ehr_input else "continuous"
        now = timeseries.metadata.get("encoding", "continuous")
        raise ValueError(
            f"{spec.task}.distill.{spec.variant}: the model's EHR encoder takes {spec.ehr_channels} "
            f"columns per hour (its spec, ehr.categorical: {trained}) but {spec.task}.timeseries "
            f"has {width} (ehr.categorical: {now}); specify and train the model again on this "
            "store (`kedro run --pipelines distill`) or prepare the store as the model was"
        )


def fit_image_normaliser(
    samples: pd.DataFrame, image_store: ArrayStore, chunk: int = 512
) -> ImageNormaliser:
    """Mean and standard deviation of the pixels (/255) of the samples' images, read in chunks."""
    keys = samples["dicom_id"].dropna().drop_duplicates()
    images = image_store.arrays["images"]
    side = int(images.shape[-1])
    if keys.empty:
        logger.warning("No train image: image normalisation falls back to mean 0.5, std 0.25")
        return ImageNormaliser(mean=0.5, std=0.25, image_size=side, images=0)
    rows = np.sort(image_store.rows(keys))
    total = total_sq = 0.0
    for start in range(0, len(rows), chunk):
        pixels = np.asarray(images[rows[start : start + chunk]], dtype=np.float64) / 255.0
        total += float(pixels.sum())
        total_sq += float(np.square(pixels).sum())
    count = len(rows) * side * side
    mean = total / count
    std = float(np.sqrt(max(total_sq / count - mean**2, 0.0))) or 1.0
    return ImageNormaliser(mean=mean, std=std, image_size=side, images=len(rows))


def train_model(
    spec: ModelSpec,
    train: MultiModalDataset,
    val: MultiModalDataset,
    on_epoch: EpochCallback | None = None,
) -> tuple[RoutedModel, FitResult]:
    """Build ``spec``'s network (seeded) and fit it with its loss; the best val epoch is kept.

    ``on_epoch(epoch, monitored value)`` runs after each validation (``mindkd.training.fit``)."""
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"{spec.variant} needs train and val samples, got {len(train)}/{len(val)}")
    cfg = spec.fit
    seed_everything(cfg.seed)
    model = build_network(spec)
    loss = MindLoss(spec.kind, spec.loss, spec.combine)
    logger.info("%s: training on %s, validating on %s", spec.variant, _kinds(train), _kinds(val))
    evaluate = RoutedEvaluator(spec.kind, routing=spec.routing, loss_fn=loss)
    result = fit_datasets(model, loss, train, val, evaluate, cfg, on_epoch)
    return model, result


def _kinds(dataset: MultiModalDataset) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in dataset.kinds().items() if n)


def load_model(spec: ModelSpec, weights: Mapping[str, Tensor]) -> RoutedModel:
    """``spec``'s network with ``weights``, on the CPU, in eval mode."""
    model = build_network(spec)
    model.load_state_dict(weights)
    return model.eval()


def predict_frame(model: RoutedModel, dataset: MultiModalDataset, spec: ModelSpec) -> pd.DataFrame:
    """Long table of test logits: ``stay_id``, ``head`` (ehr/cxr/fused/routed), ``logit_*``.

    One row per stay and head that applies to it; the routed row is what the model serves.
    """
    loader = make_loader(dataset, spec.fit.eval_batch_size, shuffle=False, pin_memory=False)
    with deterministic():
        out = predict(model.to("cpu"), loader, routing=spec.routing)
    columns = logit_columns(len(spec.labels))
    frames = []
    for head in PREDICTION_HEADS:
        if head not in out:
            continue
        logits = out[head]
        present = np.isfinite(logits).all(axis=1)
        frame = pd.DataFrame(logits[present], columns=columns)
        frame.insert(0, "head", head)
        frame.insert(0, "stay_id", out["keys"][present])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def single_sample_batches(dataset: MultiModalDataset, count: int) -> list[object]:
    """``count`` batches of one sample each (the dataset's samples in order, cycled)."""
    if len(dataset) == 0:
        raise ValueError("latency needs at least one test sample")
    return [collate_multimodal([dataset[i % len(dataset)]])[0] for i in range(count)]

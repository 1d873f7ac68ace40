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
import torch
from torch import Tensor

from mindkd.io.array_store import ArrayStore
from mindkd.io.logit_cache import logit_columns
from mindkd.models.spec import ImageNormaliser, build_network
from mindkd.models.student import HEADS, RoutedModel, paired_rows
from mindkd.training.data import MultiModalDataset, collate_multimodal, make_loader
from mindkd.training.fit import (
    EpochCallback,
    FitResult,
    RoutedEvaluator,
    fit_datasets,
    predict,
)
from mindkd.training.losses import MindLoss
from mindkd.training.mckd import MckdLoss, MetaStep
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
    meta: MultiModalDataset | None = None,
) -> tuple[RoutedModel, FitResult]:
    """Build ``spec``'s network (seeded) and fit it with its loss; the best val epoch is kept.

    ``on_epoch(epoch, monitored value)`` runs after each validation (``mindkd.training.fit``).
    An MCKD spec (``spec.mckd``) needs ``meta``: the held-out training samples its meta steps read
    (``meta_split``)."""
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"{spec.variant} needs train and val samples, got {len(train)}/{len(val)}")
    cfg = spec.fit
    seed_everything(cfg.seed)
    model = build_network(spec)
    loss: MindLoss | MckdLoss
    on_step = None
    if spec.mckd is None:
        loss = MindLoss(spec.kind, spec.loss, spec.combine)
    else:
        if meta is None or len(meta) == 0:
            raise ValueError(f"{spec.variant}: MCKD needs held-out training samples (meta)")
        loss = MckdLoss(spec.kind, spec.mckd, spec.loss, spec.combine)
        loader = make_loader(meta, cfg.batch_size, shuffle=True, seed=cfg.seed + 1)
        on_step = MetaStep(loss, loader)
        logger.info("%s: meta steps on %s held out of train", spec.variant, _kinds(meta))
    logger.info("%s: training on %s, validating on %s", spec.variant, _kinds(train), _kinds(val))
    evaluate = RoutedEvaluator(spec.kind, routing=spec.routing, loss_fn=loss)
    result = fit_datasets(model, loss, train, val, evaluate, cfg, on_epoch, on_step)
    if isinstance(loss, MckdLoss):
        logger.info("%s: modality importance %s", spec.variant, loss.importance_values())
    return model, result


def meta_split(
    samples: pd.DataFrame, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, meta)``: a seeded ``fraction`` of the subjects of ``samples`` held out, whole.

    A subject's stays stay together, so no patient is both trained on and used to steer MCKD's
    importance weights. Raises ``ValueError`` when either part would be empty."""
    key = "subject_id" if "subject_id" in samples.columns else "stay_id"
    subjects = np.sort(samples[key].dropna().unique())
    rng = np.random.default_rng(seed)
    held = rng.permutation(subjects)[: max(1, round(fraction * len(subjects)))]
    is_meta = samples[key].isin(held)
    train, meta = samples.loc[~is_meta], samples.loc[is_meta]
    if train.empty or meta.empty:
        raise ValueError(
            f"meta_fraction {fraction} of {len(subjects)} subjects leaves "
            f"{len(train)} train and {len(meta)} meta samples: both must be non-empty"
        )
    return train, meta


def _kinds(dataset: MultiModalDataset) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in dataset.kinds().items() if n)


def load_model(spec: ModelSpec, weights: Mapping[str, Tensor]) -> RoutedModel:
    """``spec``'s network with ``weights``, on the CPU, in eval mode."""
    model = build_network(spec)
    model.load_state_dict(weights)
    return model.eval()


def embed_paired(
    model: RoutedModel, dataset: MultiModalDataset, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(positions, ehr (n, De), cxr (n, Dc))``: the encoders' embeddings of the dataset's samples
    that have both modalities, in dataset order (eval mode, no gradient, on the CPU)."""
    ehr_encoder = getattr(model, "ehr_encoder", None)
    cxr_encoder = getattr(model, "cxr_encoder", None)
    if ehr_encoder is None or cxr_encoder is None:
        raise ValueError(f"{type(model).__name__} has no EHR and CXR encoders to embed with")
    loader = make_loader(dataset, batch_size, shuffle=False, pin_memory=False)
    positions, ehr, cxr = [], [], []
    model = model.to("cpu").eval()
    with deterministic(), torch.no_grad():
        for batch, targets in loader:
            if batch.ehr is None or batch.cxr is None:
                continue
            assert batch.ehr_index is not None and batch.cxr_index is not None
            e_rows, c_rows = paired_rows(batch.ehr_index, batch.cxr_index, batch.size)
            h_e = ehr_encoder(batch.ehr, batch.ehr_lengths)[e_rows]
            h_c = cxr_encoder(batch.cxr, None)[c_rows]
            positions.append(targets["position"][batch.ehr_index[e_rows]].numpy())
            ehr.append(h_e.float().numpy())
            cxr.append(h_c.float().numpy())
    if not positions:
        return np.empty(0, dtype=np.int64), np.empty((0, 0)), np.empty((0, 0))
    return np.concatenate(positions), np.concatenate(ehr), np.concatenate(cxr)


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

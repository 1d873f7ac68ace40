"""Unimodal teachers: build, train and run the members of the teacher ensembles.

A teacher is a ``UnimodalClassifier`` (one encoder, one linear head) that sees one modality only:
its datasets are ``MultiModalDataset``s whose samples all lack the other modality, so every batch is
a ``MultiModalBatch`` with only ``ehr`` or only ``cxr`` filled. Training is ``mindkd.training.fit``
with the task loss alone (``MindLoss`` with ``alpha = 0``: BCE over the observed labels, NaN labels
masked; cross-entropy for multiclass), early-stopped on the validation split.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from torch import Tensor

from mindkd.io.array_store import ArrayStore
from mindkd.models.batch import TaskKind
from mindkd.models.registry import count_parameters
from mindkd.models.spec import MemberSpec, build_member
from mindkd.models.student import UnimodalClassifier
from mindkd.processing.normalise import store_layout
from mindkd.training.data import MultiModalDataset, make_loader
from mindkd.training.device import resolve_device
from mindkd.training.fit import FitResult, LoaderFitConfig, RoutedEvaluator, fit_datasets, predict
from mindkd.training.losses import MindLoss, MindLossConfig
from mindkd.training.samples import sample_dataset
from mindkd.training.seed import deterministic, seed_everything

logger = logging.getLogger(__name__)

# Pixel normalisation of the uint8 images: (v / 255 - mean) / std. Teachers only: a member is always
# trained and run with the same values, so they need not match the student's.
IMAGE_MEAN = 0.5
IMAGE_STD = 0.25
ENCODER_PREFIXES = ("ehr_encoder.", "cxr_encoder.")


@dataclass
class MemberLogits:
    """One member's logits for every key it saw, with what identifies the member."""

    modality: str
    keys: np.ndarray  # (n,) str
    splits: np.ndarray  # (n,) str
    logits: np.ndarray  # (n, K) float32
    provenance: dict[str, Any] = field(default_factory=dict)


def build_teacher(
    member: MemberSpec,
    num_outputs: int,
    seed: int | None = None,
    *,
    ehr_channels: int | None = None,
) -> UnimodalClassifier:
    """The member's network with a fresh head; seeded first when ``seed`` is given.

    An EHR member needs ``ehr_channels``, the width of the time-series store it reads
    (``ehr_width``); a CXR member ignores it.
    """
    if seed is not None:
        seed_everything(seed)
    return build_member(member, num_outputs, ehr_channels=ehr_channels)


def ehr_width(store: ArrayStore) -> int:
    """Columns per hour of the time-series store: the EHR members' ``in_channels``."""
    return store_layout(store).width


def ehr_dataset(
    samples: pd.DataFrame, store: ArrayStore, labels: Sequence[str]
) -> MultiModalDataset:
    """EHR-only samples (``key`` = stay_id) read from the time-series store."""
    return sample_dataset(samples, labels, key="key", timeseries=store, ehr_key="key")


def image_dataset(
    samples: pd.DataFrame, store: ArrayStore, labels: Sequence[str]
) -> MultiModalDataset:
    """CXR-only samples (``key`` = dicom_id) read from the image store, normalised."""
    return sample_dataset(
        samples,
        labels,
        key="key",
        image_store=store,
        cxr_key="key",
        image_mean=IMAGE_MEAN,
        image_std=IMAGE_STD,
    )


def train_teacher(
    model: UnimodalClassifier,
    train: MultiModalDataset,
    val: MultiModalDataset,
    kind: TaskKind,
    params: LoaderFitConfig,
) -> FitResult:
    """Fit ``model`` on ``train`` with the task loss, early-stopping on ``val`` (best epoch kept)."""
    loss = MindLoss(kind, MindLossConfig(alpha=0.0))
    return fit_datasets(model, loss, train, val, RoutedEvaluator(kind, loss_fn=loss), params)


def history_report(result: FitResult, model: UnimodalClassifier) -> dict[str, Any]:
    """The JSON report of one training phase: best epoch and score, sizes, per-epoch records."""
    return {
        "monitor": result.monitor,
        "best_epoch": result.best_epoch,
        "best_score": result.best_score,
        "stopped_early": result.stopped_early,
        "parameters": count_parameters(model),
        "epochs": result.history,
    }


def encoder_state(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The encoder's entries of a teacher state dict (the head left out)."""
    return {k: v for k, v in state_dict.items() if k.startswith(ENCODER_PREFIXES)}


def load_weights(model: UnimodalClassifier, weights: Mapping[str, Tensor]) -> None:
    """Load a member's trained weights into ``model`` (strict).

    Raises ``ValueError`` when an EHR member's weights do not fit: they were trained on a
    time-series store of another width than the one ``model`` was built for.
    """
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        if model.modality != "ehr":
            raise
        raise ValueError(
            f"the member's weights do not fit an EHR encoder of in_channels="
            f"{model.encoder.in_channels} (the columns per hour of <task>.timeseries now): they "
            "were trained on a store of another width (was `ehr.categorical` changed?); run the "
            f"teachers again. {exc}"
        ) from exc


def load_encoder(model: UnimodalClassifier, state_dict: Mapping[str, Tensor]) -> None:
    """Load the encoder weights of ``state_dict`` into ``model``, keeping its own (new) head.

    Raises ``ValueError`` when an encoder weight is missing or unexpected: the pre-trained network
    and the member's settings disagree.
    """
    encoder = encoder_state(state_dict)
    missing, unexpected = model.load_state_dict(encoder, strict=False)
    missing_encoder = [k for k in missing if k.startswith(ENCODER_PREFIXES)]
    if missing_encoder or unexpected:
        raise ValueError(
            "the pre-trained weights do not fit the member's encoder: missing "
            f"{missing_encoder[:5]}, unexpected {list(unexpected)[:5]}; pre-train again after "
            "changing the member's settings"
        )


def predict_member(
    model: UnimodalClassifier, dataset: MultiModalDataset, batch_size: int, device: str = "auto"
) -> np.ndarray:
    """``(n, K)`` float32 logits for every sample of ``dataset``, in its order (eval mode, no grad)."""
    model.to(resolve_device(device))
    loader = make_loader(dataset, batch_size, shuffle=False)
    with deterministic():
        out = predict(model, loader)
    return out["routed"].astype(np.float32)


def member_provenance(
    model: UnimodalClassifier, member: MemberSpec, weights_sha256: str
) -> dict[str, Any]:
    """What identifies a member in the cache: modality, encoder and settings (an EHR member's with
    the ``in_channels`` it was built with), size, weights digest."""
    settings = dict(member.settings)
    if model.modality == "ehr":
        settings["in_channels"] = model.encoder.in_channels
    return {
        "modality": model.modality,
        "encoder": member.encoder,
        "settings": settings,
        "head_dropout": member.head_dropout,
        "parameters": count_parameters(model),
        "weights_sha256": weights_sha256,
    }

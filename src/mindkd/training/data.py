"""Training data: a dataset of mixed samples over memory-mapped arrays, its collate and its loader.

A sample has EHR, an X-ray, or both. ``MultiModalDataset`` reads from two prepared arrays, never from
per-sample files: the hourly EHR tensors ``(N_e, T, 2C)`` float32 with their lengths, and the image store
``(N_i, S, S)`` uint8 (both typically ``np.load(mmap_mode="r")`` arrays of ``mindkd.io.ArrayStore``). A
``SampleTable`` says, for each sample, its row in each array (−1 when absent), its labels and the teacher
targets of each modality. ``collate_multimodal`` builds a ``MultiModalBatch`` that stacks only the
modalities present, with no zero image and no empty series for a missing one.

The loader fetches a whole batch per call (``__getitems__``): one fancy-indexed read per array and one
vectorised image normalisation per batch.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mindkd.models.batch import MultiModalBatch

logger = logging.getLogger(__name__)

TEACHER_MODALITIES: tuple[str, ...] = ("ehr", "cxr")


class DatasetSpecError(ValueError):
    """The arrays and the sample table of a dataset do not fit together."""


class Sample(TypedDict):
    """One sample as the dataset returns it (numpy arrays; ``collate_multimodal`` makes tensors)."""

    position: int  # the sample's index in the dataset
    ehr: np.ndarray | None  # (L, 2C) float32, L >= ehr_length, or None
    ehr_length: int  # hours observed (0 without EHR)
    cxr: np.ndarray | None  # (1, S, S) float32, normalised, or None
    labels: np.ndarray  # (K,) float32, NaN = unknown
    teacher: dict[str, np.ndarray]  # modality -> (K,) float32 ensemble logits, NaN = none


Targets = dict[str, Any]
"""What ``collate_multimodal`` returns next to the batch: ``labels (B, K)``, ``teacher`` (modality ->
``(B, K)``) and ``position (B,)`` (dataset index of each sample)."""


@dataclass(frozen=True)
class SampleTable:
    """Per sample: its row in the EHR and image arrays (−1 = absent), labels and teacher targets.

    Attributes:
        ehr_row: ``(N,)`` int, row into the EHR arrays or −1.
        cxr_row: ``(N,)`` int, row into the image array or −1.
        labels: ``(N, K)`` float32, NaN where unknown (e.g. uncertain CheXpert findings).
        teacher: modality (``ehr`` / ``cxr``) -> ``(N, K)`` float32 ensemble logits, NaN rows where the
            sample has no target. May be empty (plain training).
        keys: ``(N,)`` stable sample keys (e.g. ``stay_id``), carried into ``predict``'s output.
    """

    ehr_row: np.ndarray
    cxr_row: np.ndarray
    labels: np.ndarray
    teacher: Mapping[str, np.ndarray] = field(default_factory=dict)
    keys: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


class MultiModalDataset(Dataset[Sample]):
    """Mixed EHR / X-ray samples read from (memory-mapped) arrays.

    Args:
        samples: the ``SampleTable``.
        ehr_values: ``(N_e, T, 2C)`` float32 (values then masks), or None when no sample has EHR.
        ehr_lengths: ``(N_e,)`` hours observed per row, in [1, T].
        images: ``(N_i, S, S)`` uint8, or None when no sample has an image.
        image_mean / image_std: normalisation in units of pixel / 255: a pixel ``v`` becomes
            ``(v / 255 − image_mean) / image_std``, shape ``(1, S, S)`` float32.

    Arrays are read per batch, never copied whole, so memory-mapped stores stay on disk. With
    ``num_workers > 0`` use the default ``fork`` start method (workers share the maps); ``spawn`` would
    pickle the arrays.
    """

    def __init__(
        self,
        samples: SampleTable,
        *,
        ehr_values: np.ndarray | None = None,
        ehr_lengths: np.ndarray | None = None,
        images: np.ndarray | None = None,
        image_mean: float = 0.0,
        image_std: float = 1.0,
    ) -> None:
        _check_spec(samples, ehr_values, ehr_lengths, images, image_std)
        self.samples = samples
        self.ehr_values = ehr_values
        self.ehr_lengths = None if ehr_lengths is None else np.asarray(ehr_lengths, dtype=np.int64)
        self.images = images
        self.image_mean = float(image_mean)
        self.image_std = float(image_std)
        self._ehr_row = np.asarray(samples.ehr_row, dtype=np.int64)
        self._cxr_row = np.asarray(samples.cxr_row, dtype=np.int64)
        self._labels = np.asarray(samples.labels, dtype=np.float32)
        self._teacher = {m: np.asarray(t, dtype=np.float32) for m, t in samples.teacher.items()}

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def keys(self) -> np.ndarray | None:
        return self.samples.keys

    @property
    def num_outputs(self) -> int:
        return int(self._labels.shape[1])

    def kinds(self) -> pd.Series:
        """Counts of ``paired`` / ``ehr_only`` / ``cxr_only`` samples."""
        has_e, has_c = self._ehr_row >= 0, self._cxr_row >= 0
        return pd.Series(
            {
                "paired": int((has_e & has_c).sum()),
                "ehr_only": int((has_e & ~has_c).sum()),
                "cxr_only": int((~has_e & has_c).sum()),
            }
        )

    def __getitem__(self, index: int) -> Sample:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[Sample]:
        """The samples at ``indices``, read with one fancy-indexed access per array."""
        idx = np.asarray(indices, dtype=np.int64)
        ehr_rows, cxr_rows = self._ehr_row[idx], self._cxr_row[idx]
        ehr_block, lengths = self._read_ehr(ehr_rows[ehr_rows >= 0])
        cxr_block = self._read_images(cxr_rows[cxr_rows >= 0])
        out: list[Sample] = []
        e = c = 0
        for j, position in enumerate(idx.tolist()):
            ehr = cxr = None
            length = 0
            if ehr_rows[j] >= 0:
                assert ehr_block is not None
                ehr, length = ehr_block[e], int(lengths[e])
                e += 1
            if cxr_rows[j] >= 0:
                assert cxr_block is not None
                cxr = cxr_block[c]
                c += 1
            out.append(
                Sample(
                    position=position,
                    ehr=ehr,
                    ehr_length=length,
                    cxr=cxr,
                    labels=self._labels[position],
                    teacher={m: t[position] for m, t in self._teacher.items()},
                )
            )
        return out

    def _read_ehr(self, rows: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        if rows.size == 0 or self.ehr_values is None or self.ehr_lengths is None:
            return None, np.zeros(0, dtype=np.int64)
        lengths = self.ehr_lengths[rows]
        steps = int(lengths.max())
        return np.asarray(self.ehr_values[rows, :steps], dtype=np.float32), lengths  # (n, L, 2C)

    def _read_images(self, rows: np.ndarray) -> np.ndarray | None:
        if rows.size == 0 or self.images is None:
            return None
        pixels = np.asarray(self.images[rows])  # (n, S, S) uint8
        scale = np.float32(1.0 / (255.0 * self.image_std))
        shift = np.float32(self.image_mean / self.image_std)
        return (pixels.astype(np.float32) * scale - shift)[:, None]  # (n, 1, S, S)


def _check_spec(
    samples: SampleTable,
    ehr_values: np.ndarray | None,
    ehr_lengths: np.ndarray | None,
    images: np.ndarray | None,
    image_std: float,
) -> None:
    """Every inconsistency between the arrays and the table, raised once as a list."""
    problems: list[str] = []
    n = len(samples)
    labels = np.asarray(samples.labels)
    if labels.ndim != 2:
        problems.append(f"labels must be (N, K), got shape {labels.shape}")
    for name, rows in (("ehr_row", samples.ehr_row), ("cxr_row", samples.cxr_row)):
        if np.asarray(rows).shape != (n,):
            problems.append(f"{name} must be ({n},), got shape {np.asarray(rows).shape}")
    if problems:
        raise DatasetSpecError("invalid sample table: " + "; ".join(problems))
    ehr_row = np.asarray(samples.ehr_row, dtype=np.int64)
    cxr_row = np.asarray(samples.cxr_row, dtype=np.int64)
    if ((ehr_row < 0) & (cxr_row < 0)).any():
        problems.append(f"{int(((ehr_row < 0) & (cxr_row < 0)).sum())} samples have no modality")
    if (ehr_row < -1).any() or (cxr_row < -1).any():
        problems.append("rows must be >= 0, or -1 for an absent modality")
    if ehr_values is None:
        if (ehr_row >= 0).any():
            problems.append("samples reference EHR rows but ehr_values is None")
    else:
        if ehr_values.ndim != 3:
            problems.append(f"ehr_values must be (N_e, T, 2C), got shape {ehr_values.shape}")
        if ehr_lengths is None or np.asarray(ehr_lengths).shape != (ehr_values.shape[0],):
            problems.append(f"ehr_lengths must be ({ehr_values.shape[0]},) with ehr_values")
        elif ehr_values.ndim == 3:
            lengths = np.asarray(ehr_lengths)
            bad = (lengths < 1) | (lengths > ehr_values.shape[1])
            if bad.any():
                problems.append(f"{int(bad.sum())} ehr_lengths outside [1, {ehr_values.shape[1]}]")
        if (ehr_row >= ehr_values.shape[0]).any():
            problems.append(f"ehr_row values beyond the {ehr_values.shape[0]} EHR rows")
    if images is None:
        if (cxr_row >= 0).any():
            problems.append("samples reference image rows but images is None")
    else:
        if images.ndim != 3 or images.dtype != np.uint8:
            problems.append(f"images must be (N_i, S, S) uint8, got {images.shape} {images.dtype}")
        if (cxr_row >= images.shape[0]).any():
            problems.append(f"cxr_row values beyond the {images.shape[0]} images")
    if not image_std > 0:
        problems.append(f"image_std must be > 0, got {image_std}")
    for modality, target in samples.teacher.items():
        if modality not in TEACHER_MODALITIES:
            problems.append(f"teacher modality {modality!r} is not one of {TEACHER_MODALITIES}")
        if np.asarray(target).shape != labels.shape:
            problems.append(
                f"teacher[{modality!r}] has shape {np.asarray(target).shape}, labels {labels.shape}"
            )
    if samples.keys is not None and np.asarray(samples.keys).shape[0] != n:
        problems.append(f"keys has {np.asarray(samples.keys).shape[0]} entries for {n} samples")
    if problems:
        raise DatasetSpecError("invalid dataset: " + "; ".join(problems))


def collate_multimodal(samples: Sequence[Sample]) -> tuple[MultiModalBatch, Targets]:
    """Stack samples into a ``MultiModalBatch`` and their targets.

    EHR rows are stacked for the samples that have EHR, truncated to the batch's longest ``ehr_length``
    and zero-padded past each sample's own length; images for the samples that have one. ``ehr_index`` /
    ``cxr_index`` give each row's position in the batch. Targets: ``labels (B, K)``, ``teacher``
    (modality -> ``(B, K)``, for the modalities every sample carries) and ``position (B,)``.
    """
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    size = len(samples)
    ehr_pos = [b for b, s in enumerate(samples) if s["ehr"] is not None]
    cxr_pos = [b for b, s in enumerate(samples) if s["cxr"] is not None]
    batch = MultiModalBatch(size=size)
    if ehr_pos:
        lengths = np.array([samples[b]["ehr_length"] for b in ehr_pos], dtype=np.int64)
        first = samples[ehr_pos[0]]["ehr"]
        assert first is not None
        ehr = np.zeros((len(ehr_pos), int(lengths.max()), first.shape[1]), dtype=np.float32)
        for j, b in enumerate(ehr_pos):
            steps = int(lengths[j])
            ehr[j, :steps] = samples[b]["ehr"][:steps]  # type: ignore[index]
        batch.ehr = torch.from_numpy(ehr)  # (Be, L, 2C)
        batch.ehr_lengths = torch.from_numpy(lengths)
        batch.ehr_index = torch.tensor(ehr_pos, dtype=torch.long)
    if cxr_pos:
        images = np.stack([samples[b]["cxr"] for b in cxr_pos])  # type: ignore[misc]
        batch.cxr = torch.from_numpy(images)  # (Bc, 1, S, S)
        batch.cxr_index = torch.tensor(cxr_pos, dtype=torch.long)
    shared = set.intersection(*(set(s["teacher"]) for s in samples))
    targets: Targets = {
        "labels": torch.from_numpy(np.stack([s["labels"] for s in samples])),
        "teacher": {
            m: torch.from_numpy(np.stack([s["teacher"][m] for s in samples]))
            for m in TEACHER_MODALITIES
            if m in shared
        },
        "position": torch.tensor([s["position"] for s in samples], dtype=torch.long),
    }
    return batch, targets


class EpochSeededSampler(Sampler[int]):
    """A random permutation per epoch that depends only on ``(seed, epoch)``.

    ``set_epoch(e)`` (called by ``fit`` before each epoch, like ``DistributedSampler.set_epoch``) fixes
    the epoch; each iteration otherwise moves to the next epoch. Re-running a fit with the same seed
    visits the samples in the same order, however often the loader was iterated before.
    """

    def __init__(self, num_samples: int, seed: int) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        state = np.random.SeedSequence([self.seed, self.epoch]).generate_state(1, dtype=np.uint64)
        generator = torch.Generator().manual_seed(int(state[0]) & (2**63 - 1))
        order = torch.randperm(self.num_samples, generator=generator).tolist()
        self.epoch += 1
        return iter(order)


def _seed_worker(worker_id: int) -> None:
    """Seed numpy and random in a loader worker from the seed torch gave it."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)  # noqa: NPY002 - the global generator is what third-party code reads
    random.seed(seed)


def make_loader(
    dataset: MultiModalDataset,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    num_workers: int = 0,
    *,
    drop_last: bool = False,
    pin_memory: bool | None = None,
) -> DataLoader[Sample]:
    """A ``DataLoader`` of ``(MultiModalBatch, targets)`` with a seeded order.

    ``shuffle=True`` uses ``EpochSeededSampler(len(dataset), seed)``; ``shuffle=False`` keeps dataset
    order. ``pin_memory`` defaults to whether CUDA is available. Batches mix paired and unimodal samples.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (config key `batch_size`), got {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochSeededSampler(len(dataset), seed) if shuffle else None,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_multimodal,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        drop_last=drop_last,
        generator=generator,
        worker_init_fn=_seed_worker if num_workers > 0 else None,
        persistent_workers=num_workers > 0,
    )

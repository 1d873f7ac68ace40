"""The teacher logit cache: every teacher member's logits for every sample key it can see.

A ``LogitCache`` is one long table, one row per (modality, key, member), plus the provenance that
made it: per member the sha256 of its weights, its encoder and settings and its parameter count; a
fingerprint of the inputs (keys and shapes of the cohort, pairs and stores); the task name and kind.
The student reads its targets from it by key (``stay_id`` as a string for EHR, ``dicom_id`` for
CXR), never by row position.

``LogitCacheDataset`` persists one as a folder::

    <filepath>/                   (or <filepath>/<version>/<name>/ with ``versioned: true``)
        logits.parquet    modality, key, split, member, logit_0 .. logit_{K-1} (float32)
        provenance.json   the provenance dict

Catalog entry::

    "{task}.teacher_logits":
      type: mindkd.io.logit_cache.LogitCacheDataset
      filepath: ${globals:data_root}/07_model_output/{task}/teacher_logits
      versioned: true
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from kedro.io.core import DatasetError

from mindkd.io.fsspec_base import FsspecVersionedDataset, incomplete, staged

logger = logging.getLogger(__name__)

LOGITS_FILE = "logits.parquet"
PROVENANCE_FILE = "provenance.json"
ID_COLUMNS: tuple[str, ...] = ("modality", "key", "split", "member")
MODALITIES: tuple[str, ...] = ("ehr", "cxr")
SPLITS: tuple[str, ...] = ("train", "val", "test")
FORMAT_NAME = "mindkd.logit_cache"
FORMAT_VERSION = 1


def logit_columns(num_outputs: int) -> list[str]:
    """``logit_0 .. logit_{K-1}``."""
    return [f"logit_{k}" for k in range(num_outputs)]


class LogitCacheError(ValueError):
    """A logit table that breaks the cache's contract (columns, dtypes, duplicate rows)."""


@dataclass
class LogitCache:
    """Teacher logits keyed by (modality, member, key), with the provenance that produced them.

    Attributes:
        table: one row per (modality, key, member): ``modality`` ("ehr"/"cxr"), ``key`` (string),
            ``split`` (train/val/test), ``member`` and ``logit_0 .. logit_{K-1}`` (float32).
        provenance: JSON-serialisable facts: ``task``, ``kind``, ``members`` (per member: modality,
            encoder, settings, parameters, weights_sha256), ``inputs`` (fingerprint).
        source: the folder it was loaded from (the version folder of a versioned cache); None for
            a cache made in memory. Errors about the cache name it.
    """

    table: pd.DataFrame
    provenance: dict[str, Any] = field(default_factory=dict)
    source: str | None = field(default=None, compare=False)
    _lookup: dict[tuple[str, str], pd.Series] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self.table = _normalise(self.table)

    @property
    def num_outputs(self) -> int:
        return sum(1 for c in self.table.columns if str(c).startswith("logit_"))

    def members(self, modality: str) -> list[str]:
        """The members of ``modality`` in the cache, in order of first appearance."""
        rows = self.table["modality"] == modality
        return list(dict.fromkeys(self.table.loc[rows, "member"]))

    def provenance_members(self, modality: str) -> list[str]:
        """The members of ``modality`` that the provenance says the cache was made from."""
        members: dict[str, Any] = self.provenance.get("members") or {}
        return [name for name, info in members.items() if info.get("modality") == modality]

    def keys(self, modality: str, member: str | None = None, split: str | None = None) -> pd.Series:
        """The keys of ``modality`` (of one member, of one split when given), unique, in table order."""
        rows = self.table["modality"] == modality
        if member is not None:
            rows &= self.table["member"] == member
        if split is not None:
            rows &= self.table["split"] == split
        return self.table.loc[rows, "key"].drop_duplicates().reset_index(drop=True)

    def logits(self, modality: str, member: str, keys: Iterable[Any]) -> np.ndarray:
        """``(n, K)`` float32 logits of ``member`` for ``keys`` (in that order).

        Keys are compared as strings (``stay_id`` 3001 and "3001" are the same key). Raises
        ``KeyError`` naming the member and the missing keys.
        """
        positions = self._positions(modality, member)
        wanted = pd.Index([str(k) for k in keys])
        found = positions.reindex(wanted)
        missing = found.isna().to_numpy()
        if missing.any():
            examples = wanted[missing][:10].tolist()
            raise KeyError(
                f"{int(missing.sum())} of {len(wanted)} {modality} key(s) have no logits of "
                f"member {member!r} in the cache (it holds {len(positions)}), e.g. {examples}"
            )
        values = self.table[logit_columns(self.num_outputs)].to_numpy(dtype=np.float32)
        return values[found.to_numpy(dtype=np.int64)]

    def _positions(self, modality: str, member: str) -> pd.Series:
        if (modality, member) not in self._lookup:
            rows = np.flatnonzero(
                (self.table["modality"] == modality).to_numpy()
                & (self.table["member"] == member).to_numpy()
            )
            if not len(rows):
                raise KeyError(
                    f"no {modality} member {member!r} in the cache; it has "
                    f"{ {m: self.members(m) for m in MODALITIES} }"
                )
            keys = self.table["key"].to_numpy()[rows]
            self._lookup[(modality, member)] = pd.Series(rows, index=pd.Index(keys, dtype=object))
        return self._lookup[(modality, member)]


def _normalise(table: pd.DataFrame) -> pd.DataFrame:
    """The table with checked columns: string ids, float32 logits; raises on broken contracts."""
    problems: list[str] = []
    missing = [c for c in ID_COLUMNS if c not in table.columns]
    if missing:
        problems.append(f"missing column(s) {missing} (has {list(table.columns)})")
    logits = [str(c) for c in table.columns if str(c).startswith("logit_")]
    if not logits or logits != logit_columns(len(logits)):
        problems.append(f"logit columns must be logit_0 .. logit_(K-1) in order, got {logits}")
    if problems:
        raise LogitCacheError("invalid logit table: " + "; ".join(problems))
    out = table[[*ID_COLUMNS, *logits]].reset_index(drop=True)
    for column in ID_COLUMNS:
        out[column] = out[column].astype(str)
    out[logits] = out[logits].astype(np.float32)
    bad_modality = sorted(set(out["modality"]) - set(MODALITIES))
    if bad_modality:
        problems.append(f"modality must be one of {MODALITIES}, got {bad_modality}")
    bad_split = sorted(set(out["split"]) - set(SPLITS))
    if bad_split:
        problems.append(f"split must be one of {SPLITS}, got {bad_split}")
    duplicated = out.duplicated(["modality", "key", "member"])
    if duplicated.any():
        examples = out.loc[duplicated, ["modality", "member", "key"]].head(5).to_dict("records")
        problems.append(
            f"{int(duplicated.sum())} duplicated (modality, key, member), e.g. {examples}"
        )
    if problems:
        raise LogitCacheError("invalid logit table: " + "; ".join(problems))
    return out


class LogitCacheDataset(FsspecVersionedDataset[LogitCache, LogitCache]):
    """Kedro dataset for a ``LogitCache``: ``logits.parquet`` + ``provenance.json`` in a folder."""

    MARKER = PROVENANCE_FILE  # written last: a folder without it is an interrupted save

    def load(self) -> LogitCache:
        """The cache, checked: its marker, format and row count (``incomplete`` names the folder)."""
        folder = self._load_location()
        provenance_path = f"{folder}/{PROVENANCE_FILE}"
        if not self._fs.exists(provenance_path):
            raise incomplete(folder, f"{PROVENANCE_FILE} (written last) is missing", self._rebuild)
        with self._fs.open(provenance_path, "r") as handle:
            stored = json.load(handle)
        if stored.get("format") != FORMAT_NAME:
            raise DatasetError(
                f"{provenance_path}: format {stored.get('format')!r}, expected {FORMAT_NAME!r}"
            )
        try:
            with self._fs.open(f"{folder}/{LOGITS_FILE}", "rb") as handle:
                table = pd.read_parquet(handle)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise incomplete(
                folder, f"{LOGITS_FILE} cannot be read ({exc})", self._rebuild
            ) from exc
        if len(table) != stored.get("rows"):
            raise incomplete(
                folder,
                f"{LOGITS_FILE} holds {len(table)} rows, {PROVENANCE_FILE} says {stored.get('rows')}",
                self._rebuild,
            )
        return LogitCache(table=table, provenance=stored["provenance"], source=folder)

    def save(self, data: LogitCache) -> None:
        if not isinstance(data, LogitCache):
            raise DatasetError(f"LogitCacheDataset saves a LogitCache, got {type(data).__name__}")
        folder = self._save_location()
        if self._protocol == "file":
            with staged(Path(folder)) as staging:
                staging.mkdir()
                self._write(data, str(staging))
        else:
            self._write(data, folder)
        logger.info("Saved logit cache %s (%d rows)", folder, len(data.table))
        self._invalidate_cache()

    def _write(self, data: LogitCache, folder: str) -> None:
        """The table, then the provenance (the marker) last."""
        self._fs.makedirs(folder, exist_ok=True)
        with self._fs.open(f"{folder}/{LOGITS_FILE}", "wb") as handle:
            data.table.to_parquet(handle, index=False)
        stored = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "rows": len(data.table),
            "provenance": data.provenance,
        }
        with self._fs.open(f"{folder}/{PROVENANCE_FILE}", "w") as handle:
            json.dump(stored, handle, indent=2, default=_json_default)
            handle.write("\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | set):
        return list(value)
    raise TypeError(f"provenance value {value!r} is not JSON-serialisable")

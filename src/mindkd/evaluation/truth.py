"""The Bayes ceiling on demo data: the generator's true probabilities scored like a model.

The demo generator (``mindkd.demo``) writes ``<parent of mimic_iv_dir>/_truth/stays.parquet``
outside the PhysioNet layout: per ICU stay the true death probability ``p_death``, its
conditional expectations given one modality (``p_death_ehr_only``, ``p_death_cxr_only``) and the
true phenotype probabilities ``p_<phenotype name>``, and the true probability of each
length-of-stay class given the stay lasts the first 48 h, ``p_los_<class>`` (with ``_ehr_only`` /
``_cxr_only``). Real data has no such file: ``OptionalParquetDataset`` then loads ``None`` and the
ceiling is left out. The truth is only ever read by the evaluation, never by training.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from copy import deepcopy
from pathlib import PurePosixPath
from typing import Any, NoReturn

import fsspec
import numpy as np
import pandas as pd
from kedro.io.core import AbstractDataset, DatasetError, get_protocol_and_path

from mindkd.models.batch import TaskKind

from .calibration import logit

logger = logging.getLogger(__name__)

CEILING = "bayes_ceiling"


class OptionalParquetDataset(AbstractDataset[None, pd.DataFrame | None]):
    """A read-only parquet file that may be absent: ``load()`` returns ``None`` when it is.

    Catalog entry::

        demo_truth_stays:
          type: mindkd.evaluation.truth.OptionalParquetDataset
          filepath: ${globals:mimic_iv_dir}/../_truth/stays.parquet

    ``..`` is resolved for local paths.
    """

    def __init__(
        self,
        *,
        filepath: str,
        load_args: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, path = get_protocol_and_path(filepath)
        if protocol == "file":
            path = os.path.normpath(path)
        self._protocol = protocol
        self._path = PurePosixPath(path)
        self._fs = fsspec.filesystem(protocol, **(deepcopy(fs_args) or {}))
        self._load_args = dict(load_args or {})
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._path), "protocol": self._protocol}

    def load(self) -> pd.DataFrame | None:
        path = str(self._path) if self._protocol == "file" else f"{self._protocol}://{self._path}"
        if not self._fs.exists(path):
            logger.info("%s does not exist (no generator truth): no Bayes ceiling", path)
            return None
        with self._fs.open(path, "rb") as handle:
            return pd.read_parquet(handle, **self._load_args)

    def save(self, data: None) -> NoReturn:
        raise DatasetError("OptionalParquetDataset is read-only")

    def _exists(self) -> bool:
        return bool(self._fs.exists(str(self._path)))


def truth_columns(
    task: str, labels: Sequence[str], available: Sequence[str] = ()
) -> dict[str, list[str]]:
    """Truth columns per head for ``task``: ``{head: [column per label]}``; empty if unknown.

    pheno: ``p_<phenotype name>``, los: ``p_<class column>``, for the routed / fused heads, and
    ``<that>_ehr_only`` / ``<that>_cxr_only`` for the unimodal heads when the truth has them (in
    ``available``).
    """
    if task == "ihm":
        return {
            "routed": ["p_death"],
            "fused": ["p_death"],
            "ehr": ["p_death_ehr_only"],
            "cxr": ["p_death_cxr_only"],
        }
    if task == "pheno":
        from mindkd.mimic.phenotypes import PHENOTYPES

        names = {p.column: f"p_{p.name}" for p in PHENOTYPES}
        if not set(labels) <= set(names):
            return {}
        return _with_unimodal([names[label] for label in labels], available)
    if task == "los":
        from mindkd.mimic.los import LOS_COLUMNS

        if tuple(labels) != LOS_COLUMNS:
            return {}
        return _with_unimodal([f"p_{c}" for c in LOS_COLUMNS], available)
    return {}


def _with_unimodal(columns: list[str], available: Sequence[str]) -> dict[str, list[str]]:
    """``columns`` for the routed and fused heads; their ``_<modality>_only`` truths, where the
    truth has every one of them, for the unimodal heads."""
    heads = {"routed": columns, "fused": columns}
    for head in ("ehr", "cxr"):
        unimodal = [f"{c}_{head}_only" for c in columns]
        if set(unimodal) <= set(available):
            heads[head] = unimodal
    return heads


def truth_predictions(
    truth: pd.DataFrame | None,
    samples: pd.DataFrame,
    task: str,
    labels: Sequence[str],
    kind: TaskKind = "binary",
) -> pd.DataFrame | None:
    """The ceiling as a model's predictions (``model = bayes_ceiling``; logits of the truths: per
    label ``log(p / (1 − p))``, or ``log p`` for a multiclass task, whose softmax gives back p).

    ``samples`` has ``key`` (stay_id) and ``kind``; the ``cxr`` and ``fused`` heads cover the paired
    samples, the others every sample. None when there is no truth or it lacks a column or stay.
    """
    if truth is None:
        return None
    heads = truth_columns(task, labels, list(truth.columns))
    wanted = sorted({c for columns in heads.values() for c in columns})
    if not heads or not {"stay_id", *wanted} <= set(truth.columns):
        logger.warning("The generator truth has no columns for task %s: no Bayes ceiling", task)
        return None
    indexed = truth.drop_duplicates("stay_id").set_index("stay_id")
    if not samples["key"].isin(indexed.index).all():
        logger.warning("The generator truth lacks some test stays: no Bayes ceiling")
        return None
    frames = []
    for head, columns in heads.items():
        rows = samples if head in ("routed", "ehr") else samples[samples["kind"] == "paired"]
        p = indexed.loc[rows["key"], columns].to_numpy(dtype=np.float64)
        z = np.log(np.clip(p, 1e-12, 1.0)) if kind == "multiclass" else logit(p)
        frame = pd.DataFrame(z, columns=[f"logit_{k}" for k in range(len(columns))])
        frame.insert(0, "head", head)
        frame.insert(0, "key", rows["key"].to_numpy())
        frame.insert(0, "model", CEILING)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)

"""Teacher targets read from the logit cache: one ensemble logit row per stay and modality.

The cache (``mindkd.io.logit_cache.LogitCache``) holds every member's logits keyed by ``stay_id``
(EHR, as a string) and ``dicom_id`` (CXR). The distill stage reads it here and nowhere else; it
never builds or runs a teacher. A *target table* has ``stay_id``, ``split`` and the columns
``ehr_0 .. ehr_{K-1}`` and ``cxr_0 .. cxr_{K-1}`` (NaN for a stay without an image).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mindkd.io.logit_cache import LogitCache
from mindkd.models.batch import TaskKind
from mindkd.training.losses import EnsembleCombine, ensemble_targets
from mindkd.training.samples import SampleError

logger = logging.getLogger(__name__)

TEACHER_MODALITIES: tuple[str, ...] = ("ehr", "cxr")


def target_columns(modality: str, num_outputs: int) -> list[str]:
    return [f"{modality}_{k}" for k in range(num_outputs)]


def check_cache(
    cache: LogitCache,
    task: str,
    num_outputs: int,
    members: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Raise when the cache does not fit the task: made for another task or number of outputs, or
    not holding the whole ensemble. Every member of the ensemble (``members``, the slots of
    ``mindkd.tasks.TEACHER_MEMBERS``; else the members the cache's provenance records) must have logits
    for every key of its modality, and the cache holds no other member; so a student never distils
    silently from fewer members than the teachers pipeline trains."""
    cached_task = cache.provenance.get("task")
    problems = []
    if cached_task is not None and cached_task != task:
        problems.append(f"it was made for task {cached_task!r}, not {task!r}")
    if cache.num_outputs != num_outputs:
        problems.append(f"it has {cache.num_outputs} logits per row, the task {num_outputs}")
    for modality in TEACHER_MODALITIES:
        expected = members.get(modality, ()) if members is not None else None
        problems += _member_problems(cache, modality, expected)
    if problems:
        raise SampleError(
            f"the teacher logit cache {cache.source or '(in memory)'} does not fit: "
            + "; ".join(problems)
            + f". Re-run teachers to rebuild it: kedro run --pipelines teachers --namespaces {task}"
        )


def _member_problems(cache: LogitCache, modality: str, expected: Sequence[str] | None) -> list[str]:
    """What is wrong with ``modality``'s members: missing, unexpected, or covering part of the keys."""
    present = cache.members(modality)
    if expected is None:  # the ensemble the teachers run recorded
        expected, origin = cache.provenance_members(modality) or present, "its provenance"
    else:
        origin = "tasks.TEACHER_MEMBERS"
    if not expected and not present:
        return [f"it has no {modality} member"]
    problems = [
        f"{modality} member {m!r} has no rows (the ensemble of {origin}: {list(expected)})"
        for m in expected
        if m not in present
    ]
    problems += [
        f"it holds {modality} member {m!r}, which is not in the ensemble of {origin} "
        f"({list(expected)})"
        for m in present
        if m not in expected
    ]
    every_key = cache.keys(modality)
    for member in (m for m in present if m in expected):
        covered = cache.keys(modality, member)
        if len(covered) < len(every_key):
            lacking = every_key[~every_key.isin(covered)]
            problems.append(
                f"{modality} member {member!r} has logits for only {len(covered)} of the "
                f"{len(every_key)} {modality} keys in the cache (lacks e.g. {lacking[:5].tolist()})"
            )
    return problems


def check_origin(
    cache: LogitCache,
    samples: pd.DataFrame,
    fingerprint: Mapping[str, Any],
    task: str,
) -> None:
    """Raise unless the cache was made from the data distill reads now.

    ``fingerprint`` is ``training.samples.fingerprint_inputs`` of the current cohort, pairs,
    CXR-only images and stores; the cache records the one its teachers saw (``provenance["inputs"]``).
    Every sample's key must also carry the same split in the cache (EHR: ``stay_id``; CXR: the
    paired ``dicom_id``). A cache from before a change of split seed, cohort rule or pairing would
    otherwise hand the student targets of teachers trained on subjects now in its val or test split.
    """
    problems: list[str] = []
    recorded = cache.provenance.get("inputs")
    if not isinstance(recorded, Mapping) or "sha256" not in recorded:
        problems.append("it records no fingerprint of the inputs its teachers saw")
    elif recorded["sha256"] != fingerprint.get("sha256"):
        changed = [
            f"{name} ({recorded.get(name, {}).get('rows', '?')} rows then, {part['rows']} now)"
            for name, part in sorted(fingerprint.items())
            if isinstance(part, Mapping) and recorded.get(name, {}).get("sha256") != part["sha256"]
        ]
        problems.append(f"its teachers saw other inputs: {', '.join(changed) or 'see provenance'}")
    problems += _split_problems(cache, "ehr", samples["stay_id"], samples["split"])
    paired = samples["dicom_id"].notna()
    problems += _split_problems(
        cache, "cxr", samples.loc[paired, "dicom_id"], samples.loc[paired, "split"]
    )
    if problems:
        raise SampleError(
            f"the teacher logit cache {cache.source or '(in memory)'} is stale: "
            + "; ".join(problems)
            + f". Re-run teachers on the current data: kedro run --pipelines teachers "
            f"--namespaces {task}"
        )


def _split_problems(
    cache: LogitCache, modality: str, keys: pd.Series, splits: pd.Series
) -> list[str]:
    """Keys whose split in the cache differs from their split now (keys absent are left to
    ``ensemble_logits``)."""
    rows = cache.table.loc[cache.table["modality"] == modality, ["key", "split"]]
    cached = rows.drop_duplicates("key").set_index("key")["split"]
    then = pd.Series(keys.astype(str).to_numpy()).map(cached)
    moved = then.notna().to_numpy() & (then.to_numpy() != splits.to_numpy())
    if not moved.any():
        return []
    return [
        f"{int(moved.sum())} {modality} key(s) have another split in the cache than now, e.g. "
        f"{keys[moved].head(5).tolist()}"
    ]


def ensemble_logits(
    cache: LogitCache,
    modality: str,
    keys: Sequence[Any],
    combine: EnsembleCombine,
    kind: TaskKind,
) -> np.ndarray:
    """``(n, K)`` float32 ensemble logits of ``modality``'s members for ``keys`` (cache order kept)."""
    members = cache.members(modality)
    try:
        stacked = np.stack([cache.logits(modality, m, keys) for m in members])  # (M, n, K)
    except KeyError as exc:
        raise SampleError(
            f"the teacher logit cache {cache.source or '(in memory)'} lacks {modality} keys of the "
            f"distill samples: {exc.args[0]}; the cache comes from another cohort or pairing "
            "(re-run teachers)"
        ) from exc
    return ensemble_targets(stacked, combine=combine, kind=kind)


def read_targets(
    cache: LogitCache,
    samples: pd.DataFrame,
    *,
    task: str,
    kind: TaskKind,
    num_outputs: int,
    combine: EnsembleCombine,
    members: Mapping[str, Sequence[str]] | None = None,
    fingerprint: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The target table of ``samples``: EHR ensemble for every stay, CXR ensemble for paired ones.

    ``members``: the ensemble's slots per modality (see ``check_cache``); ``fingerprint``: the
    current inputs' (see ``check_origin``; None skips that check, for a cache made in memory).
    """
    check_cache(cache, task, num_outputs, members)
    if fingerprint is not None:
        check_origin(cache, samples, fingerprint, task)
    out = samples[["stay_id", "split"]].reset_index(drop=True)
    ehr = ensemble_logits(cache, "ehr", samples["stay_id"].astype(str), combine, kind)
    cxr = np.full_like(ehr, np.nan)
    paired = samples["dicom_id"].notna().to_numpy()
    if paired.any():
        dicom = samples.loc[paired, "dicom_id"].astype(str)
        cxr[paired] = ensemble_logits(cache, "cxr", dicom, combine, kind)
    frames = [
        out,
        pd.DataFrame(ehr, columns=target_columns("ehr", num_outputs)),
        pd.DataFrame(cxr, columns=target_columns("cxr", num_outputs)),
    ]
    logger.info(
        "Teacher targets (%s of %s EHR + %s CXR members) for %d stays, %d with an image",
        combine,
        len(cache.members("ehr")),
        len(cache.members("cxr")),
        len(out),
        int(paired.sum()),
    )
    return pd.concat(frames, axis=1)


def targets_for(
    targets: pd.DataFrame, samples: pd.DataFrame, num_outputs: int
) -> dict[str, np.ndarray]:
    """``{"ehr": (n, K), "cxr": (n, K)}`` target rows of ``samples`` (by stay_id), NaN where none."""
    indexed = targets.set_index("stay_id")
    missing = ~samples["stay_id"].isin(indexed.index)
    if missing.any():
        raise SampleError(
            f"{int(missing.sum())} stay(s) have no teacher target, e.g. "
            f"{samples.loc[missing, 'stay_id'].head(5).tolist()}; re-run read_teacher_targets"
        )
    rows = indexed.loc[samples["stay_id"]]
    return {
        m: rows[target_columns(m, num_outputs)].to_numpy(dtype=np.float32)
        for m in TEACHER_MODALITIES
    }


def teacher_parameter_counts(cache: LogitCache) -> dict[str, int]:
    """Parameters per member, per modality ensemble and of both ensembles together (provenance)."""
    members: dict[str, Any] = cache.provenance.get("members", {})
    unknown = sorted(n for n, info in members.items() if "parameters" not in info)
    if not members or unknown:
        raise SampleError(
            "the logit cache's provenance does not give the teachers' sizes (members without "
            f"`parameters`: {unknown or 'all'}); re-run teachers to rebuild the cache"
        )
    counts = {name: int(info["parameters"]) for name, info in members.items()}
    for modality in TEACHER_MODALITIES:
        counts[f"{modality}_ensemble"] = sum(
            int(info["parameters"]) for info in members.values() if info["modality"] == modality
        )
    counts["ensembles_total"] = counts["ehr_ensemble"] + counts["cxr_ensemble"]
    return counts

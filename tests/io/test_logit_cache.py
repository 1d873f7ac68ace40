"""LogitCache and LogitCacheDataset: lookups by key, contract checks, round trips and versions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io.core import DatasetError, Version

from mindkd.io.logit_cache import LogitCache, LogitCacheDataset, LogitCacheError


def _cache(offset: float = 0.0) -> LogitCache:
    rows = []
    for member, base in (("lstm", 0.0), ("gru", 10.0)):
        for i, (key, split) in enumerate([(101, "train"), (102, "val"), (103, "test")]):
            rows.append(("ehr", key, split, member, base + i + offset, -(base + i)))
    for i, key in enumerate(["d1", "d2"]):
        rows.append(("cxr", key, "train", "resnet", 100.0 + i, 0.5))
    table = pd.DataFrame(rows, columns=["modality", "key", "split", "member", "logit_0", "logit_1"])
    provenance = {
        "task": "pheno",
        "kind": "multilabel",
        "members": {"lstm": {"modality": "ehr", "weights_sha256": "ab" * 32, "parameters": 7}},
        "inputs": {"sha256": "cd" * 32, "cohort": {"rows": 3}},
    }
    return LogitCache(table=table, provenance=provenance)


def test_lookups_by_member_and_key() -> None:
    cache = _cache()
    assert cache.num_outputs == 2
    assert cache.members("ehr") == ["lstm", "gru"]
    assert cache.members("cxr") == ["resnet"]
    assert cache.table["key"].tolist()[:3] == ["101", "102", "103"]  # keys are strings
    assert cache.table["logit_0"].dtype == np.float32
    np.testing.assert_array_equal(
        cache.logits("ehr", "gru", [103, "101"]), np.array([[12, -12], [10, -10]], np.float32)
    )
    assert cache.keys("ehr", split="val").tolist() == ["102"]
    assert cache.keys("cxr").tolist() == ["d1", "d2"]


def test_missing_keys_and_members_are_named() -> None:
    cache = _cache()
    with pytest.raises(KeyError, match=r"2 of 3 ehr key\(s\) have no logits of member 'lstm'.*999"):
        cache.logits("ehr", "lstm", [101, 999, "d1"])
    with pytest.raises(KeyError, match="no cxr member 'lstm'"):
        cache.logits("cxr", "lstm", ["d1"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: pd.concat([t, t.iloc[:1]]), "1 duplicated"),
        (lambda t: t.drop(columns="split"), "missing column"),
        (lambda t: t.rename(columns={"logit_1": "logit_2"}), "logit_0 .. logit_"),
        (lambda t: t.assign(modality="ecg"), "modality must be one of"),
        (lambda t: t.assign(split="dev"), "split must be one of"),
    ],
)
def test_broken_tables_are_refused(change, message: str) -> None:
    table = _cache().table
    with pytest.raises(LogitCacheError, match=message):
        LogitCache(table=change(table))


def test_round_trip_keeps_table_and_provenance(tmp_path: Path) -> None:
    cache = _cache()
    dataset = LogitCacheDataset(filepath=str(tmp_path / "teacher_logits"))
    dataset.save(cache)
    assert sorted(p.name for p in (tmp_path / "teacher_logits").iterdir()) == [
        "logits.parquet",
        "provenance.json",
    ]
    loaded = dataset.load()
    pd.testing.assert_frame_equal(loaded.table, cache.table)
    assert loaded.provenance == cache.provenance
    stored = json.loads((tmp_path / "teacher_logits" / "provenance.json").read_text())
    assert stored["format"] == "mindkd.logit_cache"
    assert stored["rows"] == 8


def test_versions_load_separately_with_their_provenance(tmp_path: Path) -> None:
    path = str(tmp_path / "teacher_logits")
    versions = ["2026-01-01T00.00.00.000Z", "2026-01-02T00.00.00.000Z"]
    for offset, version in enumerate(versions):
        cache = _cache(offset=float(offset))
        cache.provenance["members"]["lstm"]["weights_sha256"] = str(offset) * 64
        LogitCacheDataset(filepath=path, version=Version(None, version)).save(cache)

    for offset, version in enumerate(versions):
        loaded = LogitCacheDataset(filepath=path, version=Version(version, None)).load()
        assert loaded.logits("ehr", "lstm", [101])[0, 0] == offset
        assert loaded.provenance["members"]["lstm"]["weights_sha256"] == str(offset) * 64
        assert loaded.source == f"{path}/{version}/teacher_logits"  # errors name the version
    latest = LogitCacheDataset(filepath=path, version=Version(None, None)).load()
    assert latest.logits("ehr", "lstm", [101])[0, 0] == 1.0
    assert latest.source == f"{path}/{versions[1]}/teacher_logits"
    assert _cache().source is None and latest.provenance_members("ehr") == ["lstm"]


def test_load_of_a_foreign_folder_says_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    with pytest.raises(DatasetError, match=r"cache is not a complete dataset: provenance\.json"):
        LogitCacheDataset(filepath=str(tmp_path / "cache")).load()
    with pytest.raises(DatasetError, match="saves a LogitCache"):
        LogitCacheDataset(filepath=str(tmp_path / "cache")).save(pd.DataFrame())  # type: ignore[arg-type]

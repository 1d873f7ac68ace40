"""Same seed and settings: byte-identical files; another seed: different data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mindkd.demo import DemoConfig, generate

SMALL = DemoConfig(patients=40, seed=3, image_size=(48, 40))


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def _manifest(root: Path) -> dict[str, object]:
    manifest = json.loads((root / "_truth" / "manifest.json").read_text())
    manifest.pop("seconds")
    return manifest


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("first")
    generate(root, SMALL)
    return root


def test_same_seed_gives_byte_identical_files(first: Path, tmp_path: Path) -> None:
    generate(tmp_path, SMALL)
    ours, again = _files(first), _files(tmp_path)
    assert sorted(ours) == sorted(again)
    assert any(name.endswith(".jpg") for name in ours)
    different = [name for name in ours if ours[name] != again[name]]
    assert different == []
    assert _manifest(first) == _manifest(tmp_path)


def test_image_workers_do_not_change_the_bytes(first: Path, tmp_path: Path) -> None:
    generate(tmp_path, DemoConfig(**{**SMALL.__dict__, "workers": 2}))
    ours, pooled = _files(first), _files(tmp_path)
    jpgs = [name for name in ours if name.endswith(".jpg")]
    assert jpgs and all(ours[name] == pooled[name] for name in jpgs)


def test_another_seed_differs(first: Path, tmp_path: Path) -> None:
    generate(tmp_path, DemoConfig(**{**SMALL.__dict__, "seed": 4}))
    ours, other = _files(first), _files(tmp_path)
    for name in ("mimic-iv/icu/chartevents.csv.gz", "mimic-iv/hosp/patients.csv.gz"):
        assert ours[name] != other[name]


def test_mimic_iv_files_do_not_depend_on_images(first: Path, tmp_path: Path) -> None:
    generate(tmp_path, DemoConfig(**{**SMALL.__dict__, "events_only": True}))
    ours, events_only = _files(first), _files(tmp_path)
    iv = sorted(name for name in ours if name.startswith("mimic-iv/"))
    assert iv == sorted(name for name in events_only if name.startswith("mimic-iv/"))
    assert all(ours[name] == events_only[name] for name in iv)
    assert not (tmp_path / "mimic-cxr-jpg").exists()


def test_events_only_reaches_the_requested_chartevents_rows(tmp_path: Path) -> None:
    config = DemoConfig(seed=5, events_only=True, chartevents_rows=60_000, distractor_share=0.6)
    manifest = generate(tmp_path, config)
    rows = manifest.counts["rows_chartevents"]
    assert 60_000 <= rows < 60_000 + 600_000  # whole blocks of patients
    natural = manifest.natural["chartevents"]
    assert 0.55 < natural["distractor_rows"] / rows < 0.65
    assert "cxr_images" not in manifest.counts

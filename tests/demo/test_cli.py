"""The command line and the settings check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mindkd.demo import DemoConfig, DemoConfigError
from mindkd.demo.__main__ import build_parser, config_from_args, main
from mindkd.demo.config import FULL_IMAGE_SIZE


def test_cli_writes_an_export(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert main([str(out), "--patients", "12", "--seed", "2", "--image-size", "40", "36"]) == 0
    manifest = json.loads((out / "_truth" / "manifest.json").read_text())
    assert manifest["config"]["image_size"] == [40, 36]
    assert manifest["config"]["patients"] == 12
    assert (out / "mimic-iv/icu/chartevents.csv.gz").exists()
    assert any((out / "mimic-cxr-jpg/files").rglob("*.jpg"))


def test_cli_no_images_keeps_the_cxr_tables(tmp_path: Path) -> None:
    assert main([str(tmp_path), "--patients", "8", "--seed", "2", "--no-images"]) == 0
    assert (tmp_path / "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz").exists()
    assert not (tmp_path / "mimic-cxr-jpg/files").exists()


def test_full_size_and_events_only_arguments() -> None:
    args = build_parser().parse_args(["out", "--full-size"])
    assert config_from_args(args).image_size == FULL_IMAGE_SIZE
    args = build_parser().parse_args(["out", "--events-only", "--chartevents-rows", "3e6"])
    config = config_from_args(args)
    assert config.events_only and config.chartevents_rows == 3_000_000 and not config.with_cxr


@pytest.mark.parametrize(
    "argv",
    [
        ["out", "--full-size", "--image-size", "64", "64"],
        ["out", "--chartevents-rows", "1000"],
        ["out", "--patients", "0"],
    ],
)
def test_cli_rejects_bad_arguments(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_config_collects_every_problem() -> None:
    with pytest.raises(DemoConfigError, match=r"patients must be >= 1.*image_size must be"):
        DemoConfig(patients=0, image_size=(8, 8))
    with pytest.raises(DemoConfigError, match="chartevents_rows needs events_only"):
        DemoConfig(chartevents_rows=10)


def test_generate_replaces_a_previous_export_but_not_other_data(tmp_path: Path) -> None:
    from mindkd.demo import generate

    config = DemoConfig(patients=6, seed=1, image_size=(40, 36))
    generate(tmp_path / "a", config)
    stale = tmp_path / "a/mimic-cxr-jpg/files/stale.jpg"
    stale.write_bytes(b"old")
    generate(tmp_path / "a", config)
    assert not stale.exists()
    (tmp_path / "b/mimic-iv").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not a demo export"):
        generate(tmp_path / "b", config)


@pytest.mark.parametrize("patients", [1, 2, 3])
def test_tiny_exports_work(tmp_path: Path, patients: int) -> None:
    from mindkd.demo import generate

    for seed in range(2):
        manifest = generate(
            tmp_path / str(seed), DemoConfig(patients=patients, seed=seed, image_size=(40, 32))
        )
        assert manifest.counts["patients_total"] == patients

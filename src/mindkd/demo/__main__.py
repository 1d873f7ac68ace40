"""Command line: ``python -m mindkd.demo OUT_DIR --patients N --seed S [options]``.

Examples::

    python -m mindkd.demo data/01_raw/demo --patients 1500 --seed 0
    python -m mindkd.demo /tmp/full --patients 50 --seed 0 --full-size
    python -m mindkd.demo /tmp/events --seed 0 --events-only --chartevents-rows 3000000
    python -m mindkd.demo /tmp/cxr --cxr-for /data/mimic-iv-demo-2.2 --seed 0   # MIMIC-CXR-JPG only
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from mindkd.demo.config import DEFAULT_IMAGE_SIZE, FULL_IMAGE_SIZE, DemoConfig, DemoConfigError
from mindkd.demo.cxr_for import CxrForConfig, CxrForError, generate_cxr_for
from mindkd.demo.generator import generate
from mindkd.mimic.schemas import MimicSourceError

logger = logging.getLogger("mindkd.demo")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m mindkd.demo``."""
    parser = argparse.ArgumentParser(
        prog="python -m mindkd.demo",
        description="Write a synthetic MIMIC-IV + MIMIC-CXR-JPG export in the PhysioNet layout.",
    )
    parser.add_argument("out_dir", help="output folder (mimic-iv/, mimic-cxr-jpg/, _truth/)")
    parser.add_argument(
        "--patients", type=int, default=None, help=f"subjects (default {DemoConfig.patients})"
    )
    parser.add_argument(
        "--cxr-for",
        metavar="MIMIC_IV_DIR",
        default=None,
        help=(
            "write only a MIMIC-CXR-JPG export (mimic-cxr-jpg/, _truth/) for the subjects, "
            "admissions and ICU stays of this MIMIC-IV folder (the one holding hosp/ and icu/); "
            "not with --patients, --events-only or --chartevents-rows"
        ),
    )
    parser.add_argument(
        "--no-defects",
        action="store_true",
        help="with --cxr-for: no missing, truncated or empty images, every study labelled",
    )
    parser.add_argument("--seed", type=int, default=DemoConfig.seed, help="random seed")
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help=(
            f"nominal JPEG rows and columns (default {DEFAULT_IMAGE_SIZE[0]} "
            f"{DEFAULT_IMAGE_SIZE[1]}); each image varies by up to 8 %% as in the real export"
        ),
    )
    size.add_argument(
        "--full-size",
        action="store_true",
        help=f"real-size JPEGs, about {FULL_IMAGE_SIZE[0]} x {FULL_IMAGE_SIZE[1]}",
    )
    parser.add_argument(
        "--no-images",
        action="store_true",
        help="write the MIMIC-CXR-JPG tables but no JPEG files",
    )
    parser.add_argument("--events-only", action="store_true", help="write only the MIMIC-IV files")
    parser.add_argument(
        "--chartevents-rows",
        type=float,
        default=None,
        metavar="R",
        help=(
            "with --events-only: add blocks of patients until chartevents holds at least R rows "
            "(e.g. 3e6; --patients is then ignored)"
        ),
    )
    parser.add_argument(
        "--workers", type=int, default=DemoConfig.workers, help="processes rendering JPEGs"
    )
    return parser


def _image_size(args: argparse.Namespace) -> tuple[int, int]:
    if args.full_size:
        return FULL_IMAGE_SIZE
    if args.image_size is not None:
        return (args.image_size[0], args.image_size[1])
    return DEFAULT_IMAGE_SIZE


def config_from_args(args: argparse.Namespace) -> DemoConfig:
    """A ``DemoConfig`` from parsed arguments."""
    image_size = _image_size(args)
    rows = None if args.chartevents_rows is None else int(args.chartevents_rows)
    return DemoConfig(
        patients=DemoConfig.patients if args.patients is None else args.patients,
        seed=args.seed,
        image_size=image_size,
        write_jpegs=not args.no_images,
        events_only=args.events_only,
        chartevents_rows=rows,
        workers=args.workers,
    )


def cxr_for_config_from_args(args: argparse.Namespace) -> CxrForConfig:
    """A ``CxrForConfig`` from parsed arguments (``--cxr-for`` mode)."""
    return CxrForConfig(
        seed=args.seed,
        image_size=_image_size(args),
        write_jpegs=not args.no_images,
        with_defects=not args.no_defects,
        workers=args.workers,
    )


def _run_cxr_for(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    clash = [
        flag
        for flag, used in (
            ("--patients", args.patients is not None),
            ("--events-only", args.events_only),
            ("--chartevents-rows", args.chartevents_rows is not None),
        )
        if used
    ]
    if clash:
        parser.error(f"--cxr-for cannot be combined with {', '.join(clash)}")
    try:
        config = cxr_for_config_from_args(args)
    except DemoConfigError as exc:
        parser.error(str(exc))
    try:
        manifest = generate_cxr_for(args.out_dir, args.cxr_for, config)
    except (MimicSourceError, CxrForError, FileExistsError) as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    logger.info("Manifest: %s/_truth/manifest.json", args.out_dir)
    signal = manifest.signal
    logger.info(
        "%d of %d ICU stays with an AP study in the first 48 h; death-score AUROC %s (all stays)",
        signal.get("stays_with_ap_first_48h", 0),
        signal.get("icu_stays", 0),
        signal.get("auroc_died_death_score_icu_stays"),
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the generator; returns the exit status."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cxr_for is not None:
        return _run_cxr_for(parser, args)
    if args.no_defects:
        parser.error("--no-defects needs --cxr-for (the demo export always has its defects)")
    try:
        config = config_from_args(args)
    except DemoConfigError as exc:
        parser.error(str(exc))
    manifest = generate(args.out_dir, config)
    logger.info("Manifest: %s/_truth/manifest.json", args.out_dir)
    signal = manifest.signal
    logger.info(
        "Mortality positives %.3f of %d ihm stays; paired fraction %s",
        signal.get("positive_rate_ihm_eligible") or 0.0,
        signal.get("ihm_eligible_stays", 0),
        signal.get("paired_fraction_ihm_eligible"),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

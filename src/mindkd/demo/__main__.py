"""Command line: ``python -m mindkd.demo OUT_DIR --patients N --seed S [options]``.

Examples::

    python -m mindkd.demo data/01_raw/demo --patients 1500 --seed 0
    python -m mindkd.demo /tmp/full --patients 50 --seed 0 --full-size
    python -m mindkd.demo /tmp/events --seed 0 --events-only --chartevents-rows 3000000
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from mindkd.demo.config import DEFAULT_IMAGE_SIZE, FULL_IMAGE_SIZE, DemoConfig, DemoConfigError
from mindkd.demo.generator import generate

logger = logging.getLogger("mindkd.demo")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m mindkd.demo``."""
    parser = argparse.ArgumentParser(
        prog="python -m mindkd.demo",
        description="Write a synthetic MIMIC-IV + MIMIC-CXR-JPG export in the PhysioNet layout.",
    )
    parser.add_argument("out_dir", help="output folder (mimic-iv/, mimic-cxr-jpg/, _truth/)")
    parser.add_argument("--patients", type=int, default=DemoConfig.patients, help="subjects")
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


def config_from_args(args: argparse.Namespace) -> DemoConfig:
    """A ``DemoConfig`` from parsed arguments."""
    if args.full_size:
        image_size = FULL_IMAGE_SIZE
    elif args.image_size is not None:
        image_size = (args.image_size[0], args.image_size[1])
    else:
        image_size = DEFAULT_IMAGE_SIZE
    rows = None if args.chartevents_rows is None else int(args.chartevents_rows)
    return DemoConfig(
        patients=args.patients,
        seed=args.seed,
        image_size=image_size,
        write_jpegs=not args.no_images,
        events_only=args.events_only,
        chartevents_rows=rows,
        workers=args.workers,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the generator; returns the exit status."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    parser = build_parser()
    args = parser.parse_args(argv)
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

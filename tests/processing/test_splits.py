"""Subject splits: a seeded hash of the subject id alone, stable whatever else is present."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mindkd.processing.splits import SplitConfigError, assign_splits, validate_fractions

SUBJECTS = np.arange(10_000_000, 10_010_000, dtype=np.int64)


def test_every_subject_gets_exactly_one_split() -> None:
    table = assign_splits(np.concatenate([SUBJECTS, SUBJECTS[:50]]), seed=7)
    assert len(table) == len(SUBJECTS)
    assert table["subject_id"].is_unique
    assert set(table["split"]) == {"train", "val", "test"}
    assert table["subject_id"].tolist() == sorted(SUBJECTS.tolist())


def test_fractions_are_met_on_10000_subjects() -> None:
    shares = assign_splits(SUBJECTS, seed=7)["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.7, abs=0.02)
    assert shares["val"] == pytest.approx(0.1, abs=0.02)
    assert shares["test"] == pytest.approx(0.2, abs=0.02)


def test_deterministic_and_seeded() -> None:
    first = assign_splits(SUBJECTS[:2000], seed=3)
    again = assign_splits(list(SUBJECTS[:2000][::-1]), seed=3)
    pd.testing.assert_frame_equal(first, again)
    other_seed = assign_splits(SUBJECTS[:2000], seed=4)
    assert (first["split"] != other_seed["split"]).sum() > 500


def test_stable_when_other_subjects_are_added_or_removed() -> None:
    full = assign_splits(SUBJECTS, seed=11).set_index("subject_id")["split"]
    part = assign_splits(SUBJECTS[::3], seed=11).set_index("subject_id")["split"]
    extra = assign_splits(np.append(SUBJECTS[:100], [19_999_999, 18_888_888]), seed=11)
    assert part.equals(full.loc[part.index])
    extra = extra.set_index("subject_id")["split"]
    assert extra.loc[SUBJECTS[:100]].equals(full.loc[SUBJECTS[:100]])


def test_id_type_does_not_matter() -> None:
    as_int = assign_splits([10000032, 10000033], seed=1)
    as_series = assign_splits(pd.Series([10000032, 10000033], dtype="Int64"), seed=1)
    assert as_int["split"].tolist() == as_series["split"].tolist()


def test_zero_fraction_split_stays_empty() -> None:
    table = assign_splits(SUBJECTS[:3000], seed=5, fractions=(0.8, 0.0, 0.2))
    assert "val" not in set(table["split"])


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ((0.7, 0.1, 0.1), "must sum to 1"),
        ((0.8, -0.1, 0.3), ">= 0"),
        ((0.5, 0.5), "needs 3 values"),
        ((float("nan"), 0.5, 0.5), "finite"),
    ],
)
def test_bad_fractions_name_the_config_key(fractions: tuple[float, ...], message: str) -> None:
    with pytest.raises(SplitConfigError, match=rf"split\.fractions .*{message}"):
        assign_splits(SUBJECTS[:10], seed=1, fractions=fractions)


def test_validate_fractions_returns_a_tuple() -> None:
    assert validate_fractions([0.6, 0.2, 0.2]) == (0.6, 0.2, 0.2)

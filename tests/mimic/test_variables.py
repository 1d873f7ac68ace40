"""The variable table against ../shared/MIMIC.md: every item id, unit rule and range, row by row.

Where the item map departs from MIMIC.md's table, the departure is pinned here and argued in
docs/variables.md: 224689 / 224422 (spontaneous rates) are not the respiratory rate, 227242 (the
twin of the mapped 227243) is a diastolic pressure, 226329 (blood temperature) is a temperature,
and 223762 (°C) converts °F values charted under it.
"""

from __future__ import annotations

import pytest

from mindkd.mimic.variables import (
    CHANNEL,
    CHART_ITEMS,
    GCS_TEXT_SCORES,
    LAB_ITEMS,
    MINDKD_RANGE_CHANGES,
    SLOW_VARIABLES,
    VARIABLE_NAMES,
    VARIABLES,
    Ranges,
    UnitRule,
    range_profile,
)

R = UnitRule
# name: (chart items -> rule, lab items -> rule, (drop low, clip low, normal, clip high, drop high))
EXPECTED = {
    "capillary_refill": (
        {223951: R.CAPILLARY_REFILL_TEXT, 224308: R.CAPILLARY_REFILL_TEXT},
        {},
        (0, 0, 0, 1, 1),
    ),
    "dbp": (
        dict.fromkeys((220051, 220180, 224643, 225310, 227242), R.NONE),
        {},
        (0, 0, 59, 375, 375),
    ),
    "fio2": ({223835: R.PERCENT_TO_FRACTION}, {}, (0.2, 0.21, 0.21, 1, 1.1)),
    "gcs_eye": ({220739: R.GCS_TEXT}, {}, (1, 1, 4, 4, 4)),
    "gcs_motor": ({223901: R.GCS_TEXT}, {}, (1, 1, 6, 6, 6)),
    "gcs_verbal": ({223900: R.GCS_TEXT}, {}, (1, 1, 5, 5, 5)),
    "gcs_total": ({}, {}, (3, 3, 15, 15, 15)),
    "glucose": (
        dict.fromkeys((220621, 225664, 226537), R.NONE),
        dict.fromkeys((50809, 50931), R.NONE),
        (0, 33, 128, 2000, 2200),
    ),
    "heart_rate": ({220045: R.NONE}, {}, (0, 0, 86, 350, 390)),
    "height": ({226730: R.NONE, 226707: R.INCHES_TO_CM}, {}, (0, 0, 170, 240, 275)),
    "mbp": (dict.fromkeys((220052, 220181, 224322, 225312), R.NONE), {}, (0, 14, 77, 330, 375)),
    "spo2": (
        dict.fromkeys((220227, 220277), R.FRACTION_TO_PERCENT),
        {50817: R.FRACTION_TO_PERCENT},
        (0, 0, 98, 100, 150),
    ),
    "resp_rate": (
        dict.fromkeys((220210, 224690), R.NONE),
        {},
        (0, 0, 19, 300, 330),
    ),
    "sbp": (
        dict.fromkeys((220050, 220179, 224167, 225309, 227243), R.NONE),
        {},
        (0, 0, 118, 375, 375),
    ),
    "temperature": (
        {223762: R.CELSIUS_OR_FAHRENHEIT, 223761: R.FAHRENHEIT_TO_CELSIUS, 226329: R.NONE},
        {},
        (14.2, 26, 37, 45, 47),
    ),
    "weight": (
        {224639: R.NONE, 226512: R.NONE, 226531: R.POUNDS_TO_KG},
        {},
        (0, 0, 81.8, 250, 250),
    ),
    "ph": (dict.fromkeys((220274, 223830), R.NONE), {50820: R.NONE}, (6.3, 6.3, 7.4, 8.4, 10)),
}


def test_channel_order_is_the_contract() -> None:
    assert VARIABLE_NAMES == tuple(EXPECTED)
    assert CHANNEL["gcs_total"] == 6


@pytest.mark.parametrize("name", list(EXPECTED))
def test_variable_row_matches_mimic_md(name: str) -> None:
    chart, lab, ranges = EXPECTED[name]
    variable = VARIABLES[CHANNEL[name]]
    assert dict(variable.chart_items) == chart
    assert dict(variable.lab_items) == lab
    got = (variable.drop_low, variable.clip_low, variable.normal, variable.clip_high)
    assert (*got, variable.drop_high) == pytest.approx(ranges)
    assert variable.drop_low <= variable.clip_low <= variable.normal <= variable.clip_high
    assert variable.clip_high <= variable.drop_high
    assert variable.derived == (name == "gcs_total")


def test_item_maps_are_disjoint_and_complete() -> None:
    assert not set(CHART_ITEMS) & set(LAB_ITEMS)
    assert len(CHART_ITEMS) == sum(len(c) for c, _, _ in EXPECTED.values())
    assert LAB_ITEMS[50817] == (CHANNEL["spo2"], R.FRACTION_TO_PERCENT)
    assert CHART_ITEMS[223761] == (CHANNEL["temperature"], R.FAHRENHEIT_TO_CELSIUS)


def test_gcs_texts_of_mimic_iv() -> None:
    assert GCS_TEXT_SCORES["none"] == 1  # eye "None"
    assert GCS_TEXT_SCORES["no response-ett"] == 1  # verbal, intubated
    assert GCS_TEXT_SCORES["spontaneously"] == 4
    assert GCS_TEXT_SCORES["obeys commands"] == 6
    assert GCS_TEXT_SCORES["oriented"] == 5
    assert all(key == key.strip().lower() for key in GCS_TEXT_SCORES)


def test_range_profiles() -> None:
    mimic3 = range_profile("mimic3_benchmarks")
    ours = range_profile("mindkd")
    for variable, theirs, mine in zip(VARIABLES, mimic3, ours, strict=True):
        assert theirs == variable.ranges  # mimic3-benchmarks: MIMIC.md's table, as pinned above
        expected = (
            MINDKD_RANGE_CHANGES[variable.name][0]
            if variable.name in MINDKD_RANGE_CHANGES
            else theirs
        )
        assert mine == expected
        assert mine.drop_low <= mine.clip_low <= variable.normal <= mine.clip_high <= mine.drop_high
    assert ours[CHANNEL["resp_rate"]] == Ranges(1, 1, 300, 330)  # 0 is no total rate
    assert ours[CHANNEL["weight"]].drop_low > 0 and ours[CHANNEL["height"]].drop_low > 0
    assert ours[CHANNEL["heart_rate"]] == mimic3[CHANNEL["heart_rate"]]  # 0 at death is real
    with pytest.raises(ValueError, match=r"ehr\.ranges"):
        range_profile("mimic4")


def test_slow_variables_and_categories() -> None:
    assert SLOW_VARIABLES == ("height", "weight")
    assert VARIABLES[CHANNEL["gcs_total"]].categories == tuple(float(v) for v in range(3, 16))
    assert VARIABLES[CHANNEL["capillary_refill"]].categories == (0.0, 1.0)
    assert VARIABLES[CHANNEL["heart_rate"]].categories == ()

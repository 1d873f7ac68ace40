"""Pass 2: unit rules on their real item ids, text mappings, ranges, duplicates, GCS total."""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mindkd.io.event_parts import EventPartsDataset, MemoryEventParts
from mindkd.io.raw import MimicEventsDataset, MimicTableDataset
from mindkd.mimic.variables import (
    CHANNEL,
    CHART_ITEMS,
    GCS_COMPONENTS,
    GCS_TEXT_SCORES,
    LAB_ITEMS,
    UnitRule,
    range_profile,
)
from mindkd.processing.events import (
    CLEAN_EVENT_SCHEMA,
    CLEAN_REASONS,
    RangeArrays,
    clean_bucket,
    clean_events,
)
from mindkd.processing.ingest import RAW_EVENT_SCHEMA, EventStream, ingest_events

T0 = "2180-01-01 10:00:00"
Row = tuple[int, str, int, str | None, float | None, str | None, str]


def raw(rows: list[Row]) -> pa.Table:
    stay, t, item, value, valuenum, uom, source = zip(*rows, strict=True)
    return pa.Table.from_arrays(
        [
            pa.array(stay, pa.int64()),
            pa.array(pd.to_datetime(list(t)).to_numpy("datetime64[s]")),
            pa.array(item, pa.int64()),
            pa.array(value, pa.string()),
            pa.array(valuenum, pa.float64()),
            pa.array(uom, pa.string()),
            pa.array(source, pa.string()),
        ],
        schema=RAW_EVENT_SCHEMA,
    )


def chart(item: int, value: str | None, valuenum: float | None, t: str = T0, stay: int = 1) -> Row:
    return (stay, t, item, value, valuenum, None, "chart")


def lab(item: int, valuenum: float, t: str = T0, stay: int = 1) -> Row:
    return (stay, t, item, str(valuenum), valuenum, None, "lab")


def clean(rows: list[Row], ranges: str = "mindkd") -> tuple[pd.DataFrame, dict[str, Any]]:
    table, counts = clean_bucket(raw(rows), RangeArrays(ranges))
    assert table.schema == CLEAN_EVENT_SCHEMA
    stats = counts.as_stats()
    assert stats["rows_in"] == stats["rows_kept"] + sum(stats["dropped"].values())
    assert stats["rows_out"] == stats["rows_kept"] + sum(stats["derived"].values())
    return table.to_pandas(), stats


def only_value(rows: list[Row]) -> float:
    frame, _ = clean(rows)
    assert len(frame) == 1, frame
    return float(frame["value"].iloc[0])


# --- unit rules, each on its real item id ---------------------------------------------------


def test_fahrenheit_to_celsius_223761() -> None:
    assert only_value([chart(223761, "98.6", 98.6)]) == pytest.approx(37.0, abs=1e-5)
    assert only_value([chart(223761, "101.3", 101.3)]) == pytest.approx(38.5, abs=1e-5)
    assert only_value([chart(223762, "37.2", 37.2)]) == pytest.approx(37.2, abs=1e-5)


def test_fahrenheit_charted_under_the_celsius_item_223762() -> None:
    rows = [
        chart(223762, "98.6", 98.6),  # °F under the °C item (3 rows of the real MIMIC-IV demo)
        chart(223762, "37.2", 37.2, t="2180-01-01 11:00:00"),
        chart(223762, "200", 200, t="2180-01-01 12:00:00"),  # neither: an error, dropped
        chart(226329, "37.5", 37.5, t="2180-01-01 13:00:00"),  # blood temperature (CCO), °C
    ]
    frame, stats = clean(rows)
    assert frame["value"].tolist() == pytest.approx([37.0, 37.2, 37.5], abs=1e-5)
    assert set(frame["channel"]) == {CHANNEL["temperature"]}
    assert stats["fahrenheit_in_celsius"] == {"temperature": 1}
    assert stats["converted"] == {"temperature": 1}
    assert stats["dropped_by_variable"]["out_of_range"] == {"temperature": 1}


def test_spontaneous_respiratory_rates_are_not_the_respiratory_rate() -> None:
    frame, stats = clean([chart(224689, "0", 0), chart(224422, "12", 12), chart(224690, "18", 18)])
    assert frame["value"].tolist() == [18.0]
    assert stats["dropped_by_variable"]["unknown_item"] == {"(no variable)": 2}


# (row, mindkd value or None, mimic3-benchmarks value or None, variable): docs/variables.md
PROFILE_CASES = [
    (chart(220210, "0", 0), None, 0.0, "resp_rate"),
    (chart(220052, "250", 250), None, 250.0, "mbp"),
    (chart(220052, "200", 200), 200.0, 200.0, "mbp"),
    (chart(226512, "0", 0), None, 0.0, "weight"),
    (chart(226531, "0", 0), None, 0.0, "weight"),
    (chart(226730, "61", 61), None, 61.0, "height"),
    (chart(226730, "0", 0), None, 0.0, "height"),
    (chart(220045, "0", 0), 0.0, 0.0, "heart_rate"),  # asystole at death: kept by both
]


@pytest.mark.parametrize(("row", "ours", "theirs", "variable"), PROFILE_CASES)
def test_range_profiles_differ_where_documented(
    row: Row, ours: float | None, theirs: float | None, variable: str
) -> None:
    for profile, expected in (("mindkd", ours), ("mimic3_benchmarks", theirs)):
        frame, stats = clean([row], profile)
        if expected is None:
            assert frame.empty
            assert stats["dropped_by_variable"]["out_of_range"] == {variable: 1}
        else:
            assert frame["value"].tolist() == [pytest.approx(expected)]
            assert frame["channel"].tolist() == [CHANNEL[variable]]


def test_pounds_to_kg_226531() -> None:
    assert only_value([chart(226531, "200", 200)]) == pytest.approx(90.7184, abs=1e-4)
    assert only_value([chart(224639, "80", 80)]) == pytest.approx(80.0)


def test_inches_to_cm_226707() -> None:
    assert only_value([chart(226707, "70", 70)]) == pytest.approx(177.8, abs=1e-4)
    assert only_value([chart(226730, "170", 170)]) == pytest.approx(170.0)


def test_fio2_percent_to_fraction_223835() -> None:
    assert only_value([chart(223835, "40", 40)]) == pytest.approx(0.40)
    assert only_value([chart(223835, "0.5", 0.5)]) == pytest.approx(0.5)
    assert only_value([chart(223835, "100", 100)]) == pytest.approx(1.0)


def test_spo2_fraction_to_percent_220277_220227_and_lab_50817() -> None:
    assert only_value([chart(220277, "0.97", 0.97)]) == pytest.approx(97.0)
    assert only_value([chart(220277, "95", 95)]) == pytest.approx(95.0)
    assert only_value([chart(220227, "0.9", 0.9)]) == pytest.approx(90.0)
    assert only_value([lab(50817, 0.95)]) == pytest.approx(95.0)
    frame, stats = clean([lab(50817, 98.0)])
    assert frame["source"].tolist() == ["lab"]
    assert frame["channel"].tolist() == [CHANNEL["spo2"]]
    assert stats["converted"] == {}


# --- text mappings ----------------------------------------------------------------------------


def test_gcs_text_fallback() -> None:
    assert only_value([chart(220739, "None", None)]) == 1.0  # eye "None"
    assert only_value([chart(223900, "No Response-ETT", None)]) == 1.0
    assert only_value([chart(223901, " Obeys Commands ", None)]) == 6.0
    assert only_value([chart(220739, "To Speech", 3)]) == 3.0  # valuenum wins when present
    frame, stats = clean([chart(220739, "Gibberish", None), chart(220739, None, None)])
    assert frame.empty
    assert stats["dropped_by_variable"]["unknown_text"] == {"gcs_eye": 1}
    assert stats["dropped_by_variable"]["missing_value"] == {"gcs_eye": 1}


def test_capillary_refill_texts() -> None:
    frame, stats = clean(
        [
            chart(223951, "Normal <3 Seconds", None, t="2180-01-01 10:00:00"),
            chart(224308, "Abnormal >3 Seconds", None, t="2180-01-01 11:00:00"),
            chart(223951, "Other/Remarks", None, t="2180-01-01 12:00:00"),
            chart(224308, None, None, t="2180-01-01 13:00:00"),
        ]
    )
    assert frame["value"].tolist() == [0.0, 1.0]
    assert set(frame["channel"]) == {CHANNEL["capillary_refill"]}
    assert stats["dropped_by_variable"]["unknown_text"] == {"capillary_refill": 1}
    assert stats["dropped_by_variable"]["missing_value"] == {"capillary_refill": 1}
    assert stats["text_scored"] == {"capillary_refill": 2}


def test_gcs_total_only_when_all_three_at_the_same_time() -> None:
    t1, t2, t3 = "2180-01-01 10:00:00", "2180-01-01 11:00:00", "2180-01-01 12:00:00"
    rows = [
        chart(220739, "To Speech", 3, t=t1),
        chart(223901, "Obeys Commands", 6, t=t1),
        chart(223900, "No Response-ETT", None, t=t1),
        chart(220739, "Spontaneously", 4, t=t2),  # verbal missing at t2
        chart(223901, "Obeys Commands", 6, t=t2),
        chart(220739, "Spontaneously", 4, t=t3),
        chart(223901, "Obeys Commands", 6, t=t3),
        chart(223900, "Oriented", 5, t="2180-01-01 12:01:00"),  # a minute later
        chart(220739, "Spontaneously", 4, t=t1, stay=2),  # other stay, same time
    ]
    frame, stats = clean(rows)
    total = frame[frame["channel"] == CHANNEL["gcs_total"]]
    assert total[["stay_id", "value"]].values.tolist() == [[1, 10.0]]
    assert total["charttime"].tolist() == [pd.Timestamp(t1)]
    assert total["source"].tolist() == ["chart"]
    assert stats["derived"] == {"gcs_total": 1}


# --- ranges -----------------------------------------------------------------------------------

RANGE_CASES = [
    # (row, expected value or None when dropped, variable)
    (chart(223762, "10", 10), None, "temperature"),
    (chart(223762, "48", 48), None, "temperature"),
    (chart(223762, "46", 46), 45.0, "temperature"),
    (chart(223762, "20", 20), 26.0, "temperature"),
    (chart(223762, "14.2", 14.2), 26.0, "temperature"),
    (chart(223761, "115", 115), 45.0, "temperature"),  # 46.1 C after conversion: clipped
    (chart(223761, "120", 120), None, "temperature"),  # 48.9 C: dropped
    (chart(223835, "0.15", 0.15), None, "fio2"),
    (chart(223835, "19", 19), None, "fio2"),  # 0.19 after conversion
    (chart(223835, "0.205", 0.205), 0.21, "fio2"),
    (chart(223835, "105", 105), 1.0, "fio2"),  # 1.05 after conversion: clipped
    (chart(223835, "1.05", 1.05), None, "fio2"),  # > 1 is a percentage: 0.0105
    (chart(223835, "0.2", 0.2), 0.21, "fio2"),
    (chart(220045, "400", 400), None, "heart_rate"),
    (chart(220045, "360", 360), 350.0, "heart_rate"),
    (chart(220045, "-1", -1), None, "heart_rate"),
    (lab(50931, 20), 33.0, "glucose"),
    (lab(50931, 2300), None, "glucose"),
    (lab(50931, 2100), 2000.0, "glucose"),
    (lab(50820, 11), None, "ph"),
    (lab(50820, 9), 8.4, "ph"),
    (lab(50820, 6.0), None, "ph"),
    (chart(220277, "160", 160), None, "spo2"),
    (chart(220277, "120", 120), 100.0, "spo2"),
    (chart(220052, "10", 10), 14.0, "mbp"),
    (chart(226707, "120", 120), None, "height"),  # 304.8 cm
    (chart(226531, "600", 600), None, "weight"),  # 272 kg: dropped (drop high = clip high)
]


@pytest.mark.parametrize(("row", "expected", "variable"), RANGE_CASES)
def test_range_rule(row: Row, expected: float | None, variable: str) -> None:
    frame, stats = clean([row])
    if expected is None:
        assert frame.empty
        assert stats["dropped_by_variable"]["out_of_range"] == {variable: 1}
    else:
        assert frame["value"].tolist() == [pytest.approx(expected, abs=1e-5)]
        assert stats["clipped"] == {variable: 1}


def test_range_counts_add_up_in_one_bucket() -> None:
    rows = [(*row[:1], f"2180-01-01 10:{i:02d}:00", *row[2:]) for i, (row, _, _) in
            enumerate(RANGE_CASES)]  # fmt: skip
    frame, stats = clean(rows)
    dropped = sum(1 for _, e, _ in RANGE_CASES if e is None)
    assert stats["dropped"]["out_of_range"] == dropped
    assert sum(stats["clipped"].values()) == len(RANGE_CASES) - dropped == len(frame)


# --- bad rows ---------------------------------------------------------------------------------


def test_bad_rows_counted_and_absent() -> None:
    hr = [chart(220045, "80", 80, t="2180-01-01 10:00:00")] * 3  # two exact duplicates
    rows = [
        *hr,
        chart(220045, "81", 81, t="2180-01-01 10:00:00"),  # same time, other value: kept
        chart(220045, "abc", None, t="2180-01-01 11:00:00"),  # text in a numeric item
        chart(220045, "abc", None, t="2180-01-01 11:00:00"),  # ... and its duplicate
        chart(220045, None, None, t="2180-01-01 12:00:00"),  # nothing at all
        chart(220045, "", None, t="2180-01-01 12:30:00"),  # empty text
        chart(220045, "999", 999, t="2180-01-01 13:00:00"),  # impossible
        chart(999999, "1", 1, t="2180-01-01 14:00:00"),  # not an item of ours
    ]
    frame, stats = clean(rows)
    assert frame["value"].tolist() == [80.0, 81.0]
    assert stats["dropped"] == {
        "unknown_item": 1,
        "duplicate": 3,
        "missing_value": 2,
        "non_numeric": 1,
        "unknown_text": 0,
        "out_of_range": 1,
    }
    assert stats["dropped_by_variable"]["duplicate"] == {"heart_rate": 3}
    assert stats["dropped_by_variable"]["non_numeric"] == {"heart_rate": 1}
    assert stats["dropped_by_variable"]["unknown_item"] == {"(no variable)": 1}
    assert stats["rows_in"] == len(rows)


def test_output_sorted_by_stay_time_channel_value() -> None:
    rows = [
        chart(220045, "90", 90, t="2180-01-01 12:00:00", stay=2),
        chart(220050, "120", 120, t="2180-01-01 10:00:00", stay=2),
        chart(220179, "110", 110, t="2180-01-01 10:00:00", stay=2),  # sbp too, lower value
        chart(220045, "80", 80, t="2180-01-01 10:00:00", stay=2),
        chart(220045, "70", 70, t="2180-01-01 11:00:00", stay=1),
    ]
    frame, _ = clean(rows)
    assert frame[["stay_id", "channel", "value"]].values.tolist() == [
        [1, CHANNEL["heart_rate"], 70],
        [2, CHANNEL["heart_rate"], 80],
        [2, CHANNEL["sbp"], 110],
        [2, CHANNEL["sbp"], 120],
        [2, CHANNEL["heart_rate"], 90],
    ]
    assert frame["value"].dtype == np.float32
    assert frame["channel"].dtype == np.int8


# --- whole stage ------------------------------------------------------------------------------


def reference_clean(frame: pd.DataFrame, profile: str = "mindkd") -> pd.DataFrame:
    """Pass 2 row by row, straight from ../shared/MIMIC.md: the non-streamed reference."""
    ranges = range_profile(profile)
    rules = {
        UnitRule.FAHRENHEIT_TO_CELSIUS: lambda v: (v - 32) * 5 / 9,
        UnitRule.CELSIUS_OR_FAHRENHEIT: lambda v: (v - 32) * 5 / 9 if 79 <= v <= 113 else v,
        UnitRule.POUNDS_TO_KG: lambda v: v * 0.453592,
        UnitRule.INCHES_TO_CM: lambda v: v * 2.54,
        UnitRule.PERCENT_TO_FRACTION: lambda v: v / 100 if v > 1 else v,
        UnitRule.FRACTION_TO_PERCENT: lambda v: v * 100 if v <= 1 else v,
    }
    out = []
    for r in frame.drop_duplicates().itertuples():
        items = LAB_ITEMS if r.source == "lab" else CHART_ITEMS
        if r.itemid not in items:
            continue
        channel, rule = items[r.itemid]
        number = None if r.valuenum is None or math.isnan(r.valuenum) else r.valuenum
        text = r.value.strip().lower() if isinstance(r.value, str) else ""
        if rule is UnitRule.GCS_TEXT:
            v = number if number is not None else GCS_TEXT_SCORES.get(text)
        elif rule is UnitRule.CAPILLARY_REFILL_TEXT:
            v = (
                0.0
                if text.startswith("normal <3")
                else 1.0
                if text.startswith("abnormal >3")
                else None
            )
        else:
            v = number
        if v is None:
            continue
        v = rules.get(rule, lambda x: x)(v)
        bounds = ranges[channel]
        if not bounds.drop_low <= v <= bounds.drop_high:
            continue
        value = min(max(v, bounds.clip_low), bounds.clip_high)
        out.append((r.stay_id, r.charttime, channel, value, r.source))
    result = pd.DataFrame(out, columns=["stay_id", "charttime", "channel", "value", "source"])
    parts = [CHANNEL[c] for c in ("gcs_eye", "gcs_motor", "gcs_verbal")]
    gcs = result[result["channel"].isin(parts)]
    wide = gcs.pivot_table(index=["stay_id", "charttime"], columns="channel", values="value",
                           aggfunc="max").reindex(columns=parts).dropna()  # fmt: skip
    total = wide.sum(axis=1).rename("value").reset_index()
    total = total.assign(channel=CHANNEL["gcs_total"], source="chart")
    result = pd.concat([result, total[result.columns]], ignore_index=True)
    result["value"] = result["value"].astype(np.float32)
    result = result.sort_values(["stay_id", "charttime", "channel", "value"], kind="stable")
    return result.reset_index(drop=True)


def random_raw(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    items = [*CHART_ITEMS, *LAB_ITEMS, 999999]
    texts = ["None", "No Response-ETT", "Obeys Commands", "To Speech", "Normal <3 Seconds",
             "Abnormal >3 Seconds", "Other/Remarks", "abc", "", None]  # fmt: skip
    rows = []
    for _ in range(n):
        item = items[rng.integers(len(items))]
        source = "lab" if item in LAB_ITEMS else "chart"
        t = pd.Timestamp("2180-01-01") + pd.Timedelta(minutes=15 * int(rng.integers(40)))
        kind = rng.random()
        if kind < 0.6:
            num = float(rng.choice([0.5, 0.97, 1, 3, 4, 5, 6, 7.4, 40, 98.6, 120, 400, 2300]))
            value = str(num)
        elif kind < 0.8:
            num, value = None, texts[rng.integers(len(texts))]
        else:
            num, value = float(rng.integers(1, 7)), texts[rng.integers(4)]
        rows.append((int(rng.integers(1, 30)), t, item, value, num, None, source))
    rows += rows[:: max(1, n // 50)]  # exact duplicates
    return pd.DataFrame(rows, columns=RAW_EVENT_SCHEMA.names)


@pytest.mark.parametrize(
    ("profile", "slice_rows"),
    [("mindkd", 1_000_000), ("mimic3_benchmarks", 1_000_000), ("mindkd", 37)],
)
def test_bucketed_stream_equals_reference(tmp_path: Path, profile: str, slice_rows: int) -> None:
    frame = random_raw(seed=7, n=4000)
    table = pa.Table.from_pandas(frame, schema=RAW_EVENT_SCHEMA, preserve_index=False)
    n_buckets = 4

    def chunks() -> Iterator[tuple[int, pa.Table]]:
        for start in range(0, table.num_rows, 97):  # many small chunks per bucket
            part = table.slice(start, 97)
            for bucket in range(n_buckets):
                mask = pa.compute.equal(pa.compute.bit_wise_and(part["stay_id"], 3), bucket)
                yield bucket, part.filter(mask)

    parts = MemoryEventParts(EventStream(chunks(), RAW_EVENT_SCHEMA, n_buckets, {"x": 1}))
    stream = clean_events(
        parts, n_workers=2, ranges=profile, slice_rows=slice_rows, scratch_dir=str(tmp_path)
    )
    got = pa.concat_tables([t for _, t in stream]).to_pandas()
    got = got.sort_values(["stay_id", "charttime", "channel", "value"], kind="stable")
    expected = reference_clean(frame, profile)
    assert len(expected) > 1000
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_dtype=False)
    stats = stream.stats
    assert stats["ranges"] == profile
    assert stats["complete"] is True
    assert stats["ingest"] == {"x": 1}
    assert stats["rows_in"] == len(frame)
    assert stats["rows_out"] == len(expected) == sum(stats["rows_per_bucket"])
    assert set(stats["dropped"]) == set(CLEAN_REASONS)
    known = frame[frame["itemid"] != 999999]  # rows of no variable count as unknown_item only
    assert stats["dropped"]["duplicate"] == len(known) - len(known.drop_duplicates())
    assert stats["dropped"]["unknown_item"] == (frame["itemid"] == 999999).sum()
    assert stats["buckets_sliced"] == (4 if slice_rows < 1000 else 0)  # ~1000 rows per bucket


# --- a stay too large for memory: cleaned in slices ----------------------------------------

T10, T1030, T11, T12 = (f"2180-01-01 {h}" for h in ("10:00:00", "10:30:00", "11:00:00", "12:00:00"))
# One bucket in file order: stay 5 charts a lot, interleaved with stay 1. Duplicates, the GCS
# parts of one time and the ties of one (stay, time, channel) lie far apart in the file.
BIG_STAY = [
    chart(220739, "Spontaneously", 4, t=T10, stay=5),  # GCS eye
    chart(220045, "80", 80, t=T11, stay=5),
    chart(223901, "Obeys Commands", 6, t=T10, stay=5),  # GCS motor
    chart(220045, "70", 70, t=T10, stay=1),
    chart(220045, "80", 80, t=T11, stay=5),  # exact duplicate of row 1
    chart(223761, "98.6", 98.6, t=T1030, stay=5),  # °F
    chart(223900, "Oriented", 5, t=T10, stay=5),  # GCS verbal: total 15 at 10:00
    chart(220045, "90", 90, t=T11, stay=5),  # same stay, time and channel as row 1: by value
    lab(50817, 0.96, t=T11, stay=5),  # SpO2 96 from the lab...
    chart(220277, "96", 96, t=T11, stay=5),  # ...and 96 charted: the lab row first, as stored
    chart(220045, "see note", None, t=T12, stay=5),  # non_numeric
    chart(999999, "1", 1, t=T10, stay=1),  # unknown_item
    chart(220045, "500", 500, t=T12, stay=5),  # out_of_range
    chart(220739, "Spontaneously", 4, t=T10, stay=5),  # exact duplicate of row 0
]


def clean_in_memory(rows: list[Row], tmp_path: Path, **options: Any) -> tuple[pa.Table, dict]:
    parts = MemoryEventParts(EventStream(iter([(0, raw(rows))]), RAW_EVENT_SCHEMA, 1, {"x": 1}))
    stream = clean_events(parts, scratch_dir=str(tmp_path / "scratch"), **options)
    return pa.concat_tables([t for _, t in stream]), stream.stats


@pytest.mark.parametrize("slice_rows", [1, 2, 3, 5])
def test_a_bucket_cleaned_in_slices_equals_the_whole_bucket(
    tmp_path: Path, slice_rows: int
) -> None:
    whole, whole_stats = clean_in_memory(BIG_STAY, tmp_path)
    sliced, stats = clean_in_memory(BIG_STAY, tmp_path, slice_rows=slice_rows, n_workers=2)
    assert sliced.equals(whole)  # every value, in the same order, with its source
    assert stats["buckets_sliced"] == 1 and whole_stats["buckets_sliced"] == 0
    assert {**stats, "buckets_sliced": 0} == whole_stats
    eye, motor, verbal, total = (CHANNEL[c] for c in (*GCS_COMPONENTS, "gcs_total"))
    hr, temperature, spo2 = CHANNEL["heart_rate"], CHANNEL["temperature"], CHANNEL["spo2"]
    frame = sliced.to_pandas()
    expected = [
        (1, T10, hr, 70.0, "chart"),
        *sorted([(5, T10, eye, 4.0, "chart"), (5, T10, motor, 6.0, "chart"),
                 (5, T10, verbal, 5.0, "chart"), (5, T10, total, 15.0, "chart")],
                key=lambda r: r[2]),
        (5, T1030, temperature, 37.0, "chart"),
        (5, T11, hr, 80.0, "chart"),
        (5, T11, hr, 90.0, "chart"),
        (5, T11, spo2, 96.0, "lab"),
        (5, T11, spo2, 96.0, "chart"),
    ]  # fmt: skip
    got = [
        (r.stay_id, str(r.charttime), r.channel, round(float(r.value), 4), r.source)
        for r in frame.itertuples()
    ]
    assert got == expected
    assert stats["dropped"] == {
        "unknown_item": 1, "duplicate": 2, "missing_value": 0, "non_numeric": 1,
        "unknown_text": 0, "out_of_range": 1,
    }  # fmt: skip
    assert stats["rows_in"] == len(BIG_STAY) == stats["rows_kept"] + sum(stats["dropped"].values())
    assert stats["rows_out"] == stats["rows_kept"] + sum(stats["derived"].values()) == len(got)
    assert stats["rows_per_bucket"] == [len(got)]
    assert not any((tmp_path / "scratch").iterdir())  # the spilled slices are gone


def test_slices_are_saved_as_one_bucket_file(tmp_path: Path) -> None:
    parts = MemoryEventParts(EventStream(iter([(1, raw(BIG_STAY))]), RAW_EVENT_SCHEMA, 3, {}))
    store = EventPartsDataset(str(tmp_path / "clean"))
    store.save(clean_events(parts, slice_rows=2, scratch_dir=str(tmp_path)))
    saved = store.load()
    whole, _ = clean_in_memory(BIG_STAY, tmp_path)
    assert saved.read(1).equals(whole)
    assert [saved.bucket_rows(b) for b in range(3)] == [0, whole.num_rows, 0]
    assert saved.stats["rows_per_bucket"] == [0, whole.num_rows, 0]


CHART_HEADER = (
    "subject_id,hadm_id,stay_id,caregiver_id,charttime,storetime,itemid,value,valuenum,valueuom,"
    "warning"
)
LAB_HEADER = (
    "labevent_id,subject_id,hadm_id,specimen_id,itemid,order_provider_id,charttime,storetime,"
    "value,valuenum,valueuom,ref_range_lower,ref_range_upper,flag,priority,comments"
)


def write_gz(path: Path, lines: list[str]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return str(path)


def test_from_gzip_files_through_both_datasets(tmp_path: Path) -> None:
    stays = write_gz(
        tmp_path / "icu/icustays.csv.gz",
        [
            "subject_id,hadm_id,stay_id,first_careunit,last_careunit,intime,outtime,los",
            "10000001,20000001,30000001,MICU,MICU,2180-01-01 00:00:00,2180-01-03 00:00:00,2",
        ],
    )
    row = "10000001,20000001,30000001,7,2180-01-01 01:00:00,,{},{},{},{},0"
    chartevents = write_gz(
        tmp_path / "icu/chartevents.csv.gz",
        [
            CHART_HEADER,
            row.format(220739, "None", "", ""),
            row.format(223901, "Obeys Commands", 6, ""),
            row.format(223900, "No Response-ETT", "", ""),
            row.format(223761, 98.6, 98.6, "°F"),
            row.format(223761, 98.6, 98.6, "°F"),
        ],
    )
    labevents = write_gz(
        tmp_path / "hosp/labevents.csv.gz",
        [LAB_HEADER, "1,10000001,,1,50817,,2180-01-02 00:00:00,,0.96,0.96,%,,,,,"],
    )
    stream = ingest_events(
        MimicEventsDataset(chartevents, "chartevents", block_size=256).load(),
        MimicEventsDataset(labevents, "labevents").load(),
        MimicTableDataset(stays, "icustays").load(),
        n_buckets=2,
    )
    raw_store = EventPartsDataset(str(tmp_path / "02_intermediate/events_raw"))
    raw_store.save(stream)
    clean_store = EventPartsDataset(str(tmp_path / "03_primary/events"))
    clean_store.save(clean_events(raw_store.load()))
    parts = clean_store.load()
    frame = parts.to_table().to_pandas()
    values = dict(zip(frame["channel"], frame["value"], strict=True))
    assert values == {
        CHANNEL["gcs_eye"]: 1.0,
        CHANNEL["gcs_motor"]: 6.0,
        CHANNEL["gcs_verbal"]: 1.0,
        CHANNEL["gcs_total"]: 8.0,
        CHANNEL["spo2"]: 96.0,
        CHANNEL["temperature"]: pytest.approx(37.0, abs=1e-5),
    }
    assert parts.stats["dropped"]["duplicate"] == 1
    assert parts.stats["ingest"]["sources"]["chart"]["rows_kept"] == 5


def test_both_passes_as_kedro_nodes_with_versioned_stores(tmp_path: Path) -> None:
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import node, pipeline
    from kedro.runner import SequentialRunner

    root = tmp_path / "mimic-iv"
    write_gz(
        root / "icu/icustays.csv.gz",
        [
            "subject_id,hadm_id,stay_id,first_careunit,last_careunit,intime,outtime,los",
            "10000001,20000001,30000001,MICU,MICU,2180-01-01 00:00:00,2180-01-03 00:00:00,2",
        ],
    )
    row = "10000001,20000001,30000001,7,2180-01-01 0{}:00:00,,220045,{},{},bpm,0"
    write_gz(
        root / "icu/chartevents.csv.gz",
        [CHART_HEADER, row.format(1, 80, 80), row.format(2, 90, 90)],
    )
    lab = "1,10000009,,1,50931,,2180-01-02 00:00:00,,100,100,mg/dL,,,,,"  # a subject with no stay
    write_gz(root / "hosp/labevents.csv.gz", [LAB_HEADER, lab])
    catalog = DataCatalog.from_config(
        {
            "icustays": {"type": "mindkd.io.raw.MimicTableDataset", "table": "icustays",
                         "filepath": str(root / "icu/icustays.csv.gz")},
            "chartevents": {"type": "mindkd.io.raw.MimicEventsDataset", "table": "chartevents",
                            "filepath": str(root / "icu/chartevents.csv.gz")},
            "labevents": {"type": "mindkd.io.raw.MimicEventsDataset", "table": "labevents",
                          "filepath": str(root / "hosp/labevents.csv.gz")},
            "events_raw": {"type": "mindkd.io.event_parts.EventPartsDataset", "versioned": True,
                           "filepath": str(tmp_path / "02_intermediate/events_raw")},
            "events": {"type": "mindkd.io.event_parts.EventPartsDataset", "versioned": True,
                       "filepath": str(tmp_path / "03_primary/events")},
        }
    )  # fmt: skip
    catalog["params:n_buckets"] = MemoryDataset(4)
    stage = pipeline(
        [
            node(ingest_events, ["chartevents", "labevents", "icustays", "params:n_buckets"],
                 "events_raw", name="ingest_events"),
            node(clean_events, "events_raw", "events", name="clean_events"),
        ]
    )  # fmt: skip
    SequentialRunner().run(stage, catalog)
    parts = catalog.load("events")
    assert parts.path.parent.parent == tmp_path / "03_primary/events"  # <filepath>/<version>/
    assert parts.to_table()["value"].to_pylist() == [80.0, 90.0]
    assert parts.stats["ingest"]["n_buckets"] == 4
    assert parts.stats["complete"] and parts.stats["ingest"]["complete"]

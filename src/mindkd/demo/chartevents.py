"""``icu/chartevents`` of one block: the 17 variables, distractor items and counted defects.

Charting follows MIMIC-IV: heart rate, blood pressure, respiratory rate and SpO2 about hourly;
temperature, GCS, capillary refill and FiO2 (ventilated stays) every 4 h; glucose and pH a few
times a day; height and weight once; each to the minute, a few minutes off the hour, inside the
stay. Item ids and units are the real ones (``vocab.VARIABLE_ITEMS``): °F and °C, kg and lbs,
cm and inches side by side, FiO2 in % (sometimes already a fraction), SpO2 sometimes a fraction,
GCS and capillary refill as text. About ``distractor_share`` of the rows are on other items.

Quirks seen in the real MIMIC-IV demo are reproduced and counted (``natural``): the admission's
height and weight often charted minutes before ``intime`` (``slow_before_intime``), °F values
charted under the °C item (``fahrenheit_in_celsius_item``), spontaneous respiratory rates of
ventilated patients (224689, not a variable's item).

Injected defects are copies of distinct clean rows of the variables' items (height and weight
excepted: charted before ``intime`` they are valid), so every kind is counted exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa

from mindkd.demo import vocab
from mindkd.demo._util import (
    HOUR,
    at_least_one,
    ceil_minute,
    float_array,
    int_array,
    text_array,
    ts_array,
)
from mindkd.demo.ehr import (
    CODE,
    Events,
    Slots,
    StayContext,
    latent_value,
    once,
    schedule,
    value_strings,
)
from mindkd.mimic.variables import CHART_ITEMS, SLOW_VARIABLES, VARIABLE_NAMES

#: Defect kinds and their rates (share of the clean variable rows), each at least one per block.
CHART_DEFECT_RATES: dict[str, float] = {
    "text_in_numeric": 0.002,
    "impossible_heart_rate": 0.0003,
    "impossible_sbp": 0.0003,
    "impossible_temperature": 0.0003,
    "impossible_glucose": 0.0003,
    "duplicate": 0.003,
    "outside_before_intime": 0.002,
    "outside_after_outtime": 0.002,
    "missing_stay_id": 0.001,
    "missing_subject_id": 0.0005,
}
#: Share of the once-charted heights and weights charted 1-30 min before intime (real demo: most).
SLOW_BEFORE_INTIME = 0.5
#: Share of the °C item's rows that hold a °F value (real demo: 3 of 391).
FAHRENHEIT_UNDER_CELSIUS = 0.008
SLOW_ITEMS = np.array(
    sorted(i for i, (c, _) in CHART_ITEMS.items() if VARIABLE_NAMES[c] in SLOW_VARIABLES)
)
#: Items whose clean rows defects are copied from: the variables' items but the slow ones.
_DEFECT_ITEMS = np.array(
    sorted(i for i, (c, _) in CHART_ITEMS.items() if VARIABLE_NAMES[c] not in SLOW_VARIABLES)
)

#: Impossible values: item id and value (beyond the drop bounds of MIMIC.md).
IMPOSSIBLE_VALUES: dict[str, tuple[int, float]] = {
    "impossible_heart_rate": (220045, 1000.0),
    "impossible_sbp": (220179, -40.0),
    "impossible_temperature": (223762, 200.0),
    "impossible_glucose": (220621, 99999.0),
}


@dataclass
class ChartResult:
    """One block's chartevents table and exact counts of what went into it."""

    table: pa.Table
    counts: dict[str, int]
    defects: dict[str, int]


@cache
def _gcs_codes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Text code by score (index 0 unused) for eye, motor and verbal responses."""
    eye = np.array([-1] + [CODE[vocab.GCS_EYE_TEXT[k]] for k in range(1, 5)])
    motor = np.array([-1] + [CODE[vocab.GCS_MOTOR_TEXT[k]] for k in range(1, 7)])
    verbal = np.array([-1] + [CODE[vocab.GCS_VERBAL_TEXT[k]] for k in range(1, 6)])
    return eye, motor, verbal


def _blood_pressure(
    ctx: StayContext, slots: Slots, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sbp = np.round(ctx.value("sbp", slots.s, slots.h, rng))
    dbp = np.round(np.minimum(ctx.value("dbp", slots.s, slots.h, rng), sbp - 15))
    mbp = np.round((sbp + 2 * dbp) / 3 + rng.normal(0, 2, len(slots.s)))
    return sbp, dbp, mbp


def _vitals(ctx: StayContext, rng: np.random.Generator) -> list[Events]:
    """Heart rate, blood pressure, respiratory rate, SpO2 (about hourly)."""
    n = len(ctx)
    rows: list[Events] = []
    sl = schedule(ctx, 1, rng, presence=0.95)
    rows.append(Events.of(sl, 220045, np.round(ctx.value("heart_rate", sl.s, sl.h, rng))))

    alt_art = rng.random(n) < 0.08
    for stays, items, every, presence in (
        (~ctx.art_line, (220179, 220180, 220181), 1, 0.93),
        (ctx.art_line & ~alt_art, (220050, 220051, 220052), 1, 0.95),
        (ctx.art_line & alt_art, (225309, 225310, 225312), 1, 0.95),
        (ctx.art_line, (220179, 220180, 220181), 4, 0.9),
    ):
        sl = schedule(ctx, every, rng, stays=stays, presence=presence)
        for item, values in zip(items, _blood_pressure(ctx, sl, rng), strict=True):
            rows.append(Events.of(sl, item, values))
    sl = schedule(ctx, 1, rng, presence=0.015)
    sbp, dbp, _ = _blood_pressure(ctx, sl, rng)
    rows.append(Events.of(sl, np.where(rng.random(len(sl.s)) < 0.5, 224167, 227243), sbp))
    rows.append(Events.of(sl, 224643, dbp))
    sl = schedule(ctx, 1, rng, stays=rng.random(n) < 0.01, presence=0.9)
    rows.append(Events.of(sl, 224322, _blood_pressure(ctx, sl, rng)[2]))

    spont = rng.random(n) < 0.03
    for stays, item in (
        (~ctx.ventilated & ~spont, 220210),
        (~ctx.ventilated & spont, 224422),
        (ctx.ventilated, 224690),
    ):
        sl = schedule(ctx, 1, rng, stays=stays, presence=0.93)
        rows.append(Events.of(sl, item, np.round(ctx.value("resp_rate", sl.s, sl.h, rng))))
    sl = schedule(ctx, 4, rng, stays=ctx.ventilated, presence=0.8)
    rows.append(Events.of(sl, 224689, np.round(0.6 * ctx.value("resp_rate", sl.s, sl.h, rng))))

    sl = schedule(ctx, 1, rng, presence=0.95)
    spo2 = np.round(ctx.value("spo2", sl.s, sl.h, rng))
    as_fraction = rng.random(len(sl.s)) < 0.003
    rows.append(Events.of(sl, 220277, np.where(as_fraction, spo2 / 100, spo2)))
    sl = schedule(ctx, 8, rng, stays=ctx.ventilated, presence=0.9)
    arterial = np.minimum(ctx.value("spo2", sl.s, sl.h, rng) + 1, 100)
    rows.append(Events.of(sl, 220227, np.round(arterial)))
    return rows


def _assessments(ctx: StayContext, rng: np.random.Generator) -> list[Events]:
    """Temperature, GCS, capillary refill, FiO2 (every 4 h)."""
    rows: list[Events] = []
    sl = schedule(ctx, 4, rng, presence=0.95)
    celsius = ctx.value("temperature", sl.s, sl.h, rng)
    use_f = (rng.random(len(ctx)) < 0.8)[sl.s] ^ (rng.random(len(sl.s)) < 0.05)
    mixup = ~use_f & (rng.random(len(sl.s)) < FAHRENHEIT_UNDER_CELSIUS)  # °F under the °C item
    fahrenheit = np.round(celsius * 9 / 5 + 32, 1)
    values = np.where(use_f | mixup, fahrenheit, np.round(celsius, 1))
    rows.append(Events.of(sl, np.where(use_f, 223761, 223762), values))

    sl = schedule(ctx, 4, rng, presence=0.92)
    drop = np.maximum(latent_value("gcs", ctx.state.take(sl.s), sl.h, rng) - 0.3, 0)
    eye = 4 - np.minimum(3, np.round(1.3 * drop)).astype(np.int64)
    motor = 6 - np.minimum(5, np.round(2.0 * drop)).astype(np.int64)
    verbal = 5 - np.minimum(4, np.round(1.8 * drop)).astype(np.int64)
    ett = ctx.ventilated[sl.s] & (rng.random(len(sl.s)) < 0.8)
    verbal = np.where(ett, 1, verbal)
    eye_codes, motor_codes, verbal_codes = _gcs_codes()
    rows.append(Events.of(sl, 220739, eye.astype(float), eye_codes[eye]))
    rows.append(Events.of(sl, 223901, motor.astype(float), motor_codes[motor]))
    verbal_text = np.where(ett, CODE[vocab.GCS_VERBAL_ETT], verbal_codes[verbal])
    rows.append(Events.of(sl, 223900, verbal.astype(float), verbal_text))

    sl = schedule(ctx, 4, rng, presence=0.85)
    x = latent_value("cap_refill", ctx.state.take(sl.s), sl.h, rng)
    abnormal = rng.random(len(sl.s)) < 1 / (1 + np.exp(-(-1.7 + 1.3 * x)))
    normal_code, abnormal_code = (CODE[t] for t in vocab.CAP_REFILL_TEXT)
    item = np.where(rng.random(len(sl.s)) < 0.7, 223951, 224308)
    rows.append(Events.of(sl, item, None, np.where(abnormal, abnormal_code, normal_code)))

    sl = schedule(ctx, 4, rng, stays=ctx.ventilated, presence=0.95)
    fio2 = np.round(ctx.value("fio2", sl.s, sl.h, rng))
    as_fraction = rng.random(len(sl.s)) < 0.01
    rows.append(Events.of(sl, 223835, np.where(as_fraction, fio2 / 100, fio2)))
    return rows


def _chart_labs_and_body(ctx: StayContext, rng: np.random.Generator) -> list[Events]:
    """Glucose and pH charted at the bedside; height and weight."""
    n = len(ctx)
    rows: list[Events] = []
    finger = rng.random(n) < 1 / (1 + np.exp(-(-0.3 + 0.8 * ctx.state.z_e[:, 2])))
    whole_blood = rng.random(n) < 0.05
    for stays, item, every in ((finger, 225664, 6), (None, 220621, 12), (whole_blood, 226537, 12)):
        sl = schedule(ctx, every, rng, stays=stays, presence=0.9)
        rows.append(Events.of(sl, item, np.round(ctx.value("glucose", sl.s, sl.h, rng))))
    venous = rng.random(n) < 0.2
    for stays, item, every in ((ctx.ventilated, 223830, 8), (venous, 220274, 24)):
        sl = schedule(ctx, every, rng, stays=stays, presence=0.9)
        rows.append(Events.of(sl, item, np.round(ctx.value("ph", sl.s, sl.h, rng), 2)))

    sl = _before_intime(ctx, once(ctx, rng, 0.6), rng)
    height_cm = np.clip(rng.normal(170, 10, len(sl.s)), 145, 200)
    inches = rng.random(len(sl.s)) < 0.25
    height = np.where(inches, np.round(height_cm / 2.54), np.round(height_cm))
    rows.append(Events.of(sl, np.where(inches, 226707, 226730), height))
    sl = _before_intime(ctx, once(ctx, rng, 0.95), rng)
    weight_kg = np.clip(rng.normal(82, 20, len(sl.s)), 40, 200)
    lbs = rng.random(len(sl.s)) < 0.35
    weight = np.where(lbs, np.round(weight_kg * 2.20462, 1), np.round(weight_kg, 1))
    rows.append(Events.of(sl, np.where(lbs, 226531, 226512), weight))
    sl = schedule(ctx, 24, rng, stays=rng.random(n) < 0.4, presence=0.9)
    rows.append(Events.of(sl, 224639, np.round(np.clip(rng.normal(82, 20, len(sl.s)), 40, 200), 1)))
    return rows


def _before_intime(ctx: StayContext, slots: Slots, rng: np.random.Generator) -> Slots:
    """``slots`` with about half moved to 1-26 minutes before intime (admission measurements)."""
    early = rng.random(len(slots.s)) < SLOW_BEFORE_INTIME
    minutes = rng.uniform(1, 25, len(slots.s)) * 60  # admissions start >= 30 min before intime
    t = np.where(early, ceil_minute(ctx.intime[slots.s] - minutes) - 60, slots.t)
    return Slots(slots.s, t, (t - ctx.intime[slots.s]) / HOUR)


@cache
def _distractor_tables() -> tuple[np.ndarray, ...]:
    """Per distractor item: id, weight, mean, sd, decimals, number of choices, choice codes."""
    items = vocab.DISTRACTOR_ITEMS
    width = max(len(d.choices) for d in items)
    return (
        np.array([d.item.itemid for d in items]),
        np.array([d.weight for d in items], dtype=np.float64),
        np.array([d.mean for d in items]),
        np.array([d.sd for d in items]),
        np.array([d.decimals for d in items]),
        np.array([len(d.choices) for d in items]),
        np.array([[CODE[c] for c in d.choices] + [-1] * (width - len(d.choices)) for d in items]),
    )


def _distractors(clean: Events, ctx: StayContext, share: float, rng: np.random.Generator) -> Events:
    """Rows on items that are none of the 17 variables, near charted rows of the same stay."""
    n = round(share / (1 - share) * len(clean)) if share > 0 else 0
    if n == 0 or len(clean) == 0:
        return Events()
    itemids, weights, means, sds, decimals, n_choices, choice_codes = _distractor_tables()
    anchor = rng.integers(0, len(clean), n)
    s = clean.s[anchor]
    last_minute = ctx.outtime[s] - ctx.outtime[s] % 60
    t = np.minimum(clean.t[anchor] + rng.integers(0, 21, n) * 60, last_minute)
    which = rng.choice(len(itemids), size=n, p=weights / weights.sum())
    num = np.abs(rng.normal(means[which], sds[which]))
    num = np.where(decimals[which] == 1, np.round(num, 1), np.round(num))
    pick = (rng.random(n) * np.maximum(n_choices[which], 1)).astype(np.int64)
    is_text = n_choices[which] > 0
    code = np.where(is_text, choice_codes[which, pick], -1).astype(np.int32)
    events = Events(s, t, itemids[which], np.where(is_text, np.nan, num), code)
    # One row per (stay, item, minute): no accidental exact duplicates.
    key = (s * 64 + which) * 1_000_000 + (t - ctx.intime[s]) // 60
    _, first = np.unique(key, return_index=True)
    return events.take(np.sort(first))


def _inject_defects(
    clean: Events, ctx: StayContext, rng: np.random.Generator
) -> tuple[list[Events], dict[str, np.ndarray], np.ndarray]:
    """Defect rows as copies of distinct clean numeric rows.

    Returns the copies per kind (in ``CHART_DEFECT_RATES`` order, duplicates excluded), the
    positions (within the copies) whose stay_id / subject_id must be empty, and the sources of
    the exact duplicates.
    """
    order = rng.permutation(np.flatnonzero((clean.code < 0) & np.isin(clean.item, _DEFECT_ITEMS)))
    copies: list[Events] = []
    nulls: dict[str, np.ndarray] = {}
    duplicates = np.zeros(0, np.int64)
    start, offset = 0, 0
    for kind, rate in CHART_DEFECT_RATES.items():
        k = at_least_one(rate, len(clean))
        src = order[start : start + k]
        start += k
        if kind == "duplicate":
            duplicates = src
            continue
        if kind in IMPOSSIBLE_VALUES:  # one per stay and time: two would be exact duplicates
            _, first = np.unique(np.stack([clean.s[src], clean.t[src]]), axis=1, return_index=True)
            src = src[np.sort(first)]
        copy = clean.take(src)
        if kind == "text_in_numeric":
            texts = np.array([CODE[x] for x in vocab.NUMERIC_FIELD_TEXT])
            copy.code = texts[rng.integers(0, len(texts), len(src))].astype(np.int32)
            copy.num = np.full(len(src), np.nan)
        elif kind in IMPOSSIBLE_VALUES:
            itemid, value = IMPOSSIBLE_VALUES[kind]
            copy.item = np.full(len(src), itemid)
            copy.num = np.full(len(src), value)
        elif kind == "outside_before_intime":
            copy.t = ceil_minute(ctx.intime[copy.s] - rng.uniform(1, 12, len(src)) * HOUR) - 60
        elif kind == "outside_after_outtime":
            copy.t = ceil_minute(ctx.outtime[copy.s] + rng.uniform(1, 12, len(src)) * HOUR)
        elif kind in {"missing_stay_id", "missing_subject_id"}:
            nulls[kind] = offset + np.arange(len(src))
        copies.append(copy)
        offset += len(src)
    return copies, nulls, duplicates


def chart_block(ctx: StayContext, rng: np.random.Generator, distractor_share: float) -> ChartResult:
    """One block's chartevents rows (variables, defects, distractors) as an arrow table."""
    clean = Events.concat(
        [*_vitals(ctx, rng), *_assessments(ctx, rng), *_chart_labs_and_body(ctx, rng)]
    )
    copies, nulls, duplicates = _inject_defects(clean, ctx, rng)
    kinds = [k for k in CHART_DEFECT_RATES if k != "duplicate"]
    defects = {kind: len(copy) for kind, copy in zip(kinds, copies, strict=True)}
    defects["duplicate"] = len(duplicates)
    distractors = _distractors(clean, ctx, distractor_share, rng)
    events = Events.concat([clean, *copies, distractors])

    empty = {
        kind: np.zeros(len(events), bool) for kind in ("missing_stay_id", "missing_subject_id")
    }
    for kind, positions in nulls.items():
        empty[kind][len(clean) + positions] = True

    # Realistic order: by stay, time and item; each duplicate right after its original.
    repeat = np.ones(len(events), np.int64)
    repeat[duplicates] = 2
    perm = np.lexsort((events.item, events.t, events.s))
    perm = np.repeat(perm, repeat[perm])
    extras = _row_extras(events, rng)
    written = events.take(perm)
    table = _chart_table(
        ctx,
        written,
        {name: values[perm] for name, values in extras.items()},
        stay_null=empty["missing_stay_id"][perm],
        subject_null=empty["missing_subject_id"][perm],
    )
    item, num, code = written.item, written.num, written.code
    counts = {
        "rows": table.num_rows,
        "variable_item_rows": table.num_rows - len(distractors),
        "variable_item_rows_clean": len(clean),
        "distractor_rows": len(distractors),
        "gcs_eye_none": int(((item == 220739) & (code == CODE["None"])).sum()),
        "fio2_as_fraction": int(((item == 223835) & (num <= 1)).sum()),
        "spo2_as_fraction": int(((item == 220277) & (num <= 1)).sum()),
        "temperature_fahrenheit": int((item == 223761).sum()),
        "temperature_celsius": int((item == 223762).sum()),
        "weight_lbs": int((item == 226531).sum()),
        "height_inches": int((item == 226707).sum()),
        # of the clean rows (defect copies of them are dropped before they count)
        "slow_before_intime": int(
            (np.isin(clean.item, SLOW_ITEMS) & (clean.t < ctx.intime[clean.s])).sum()
        ),
        "fahrenheit_in_celsius_item": int(
            ((clean.item == 223762) & (clean.num >= 79) & (clean.num <= 113)).sum()
        ),
    }
    return ChartResult(table, counts, defects)


@cache
def _uom_lookup() -> tuple[np.ndarray, pa.Array]:
    """Unit code by item id (-1: none) and the unit strings."""
    items = (*vocab.VARIABLE_ITEMS, *(d.item for d in vocab.DISTRACTOR_ITEMS))
    units = sorted({i.unitname for i in items} - {""})
    index = {u: i for i, u in enumerate(units)}
    table = np.full(max(i.itemid for i in items) + 1, -1, np.int32)
    for item in items:
        table[item.itemid] = index.get(item.unitname, -1)
    return table, pa.array(units)


def _row_extras(events: Events, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Caregiver, storage delay and warning flag per row (drawn before duplication)."""
    n = len(events)
    return {
        "caregiver": rng.integers(10_000, 99_999, n),
        "caregiver_null": rng.random(n) < 0.01,
        "store_delay": rng.integers(0, 45 * 60, n),
        "warning": ((rng.random(n) < 0.01) & (events.code < 0)).astype(np.int64),
    }


def _chart_table(
    ctx: StayContext,
    events: Events,
    extras: dict[str, np.ndarray],
    *,
    stay_null: np.ndarray,
    subject_null: np.ndarray,
) -> pa.Table:
    uom_index, uom_strings = _uom_lookup()
    return pa.table(
        {
            "subject_id": int_array(ctx.subject[events.s], mask=subject_null),
            "hadm_id": int_array(ctx.hadm[events.s]),
            "stay_id": int_array(ctx.stay[events.s], mask=stay_null),
            "caregiver_id": int_array(extras["caregiver"], mask=extras["caregiver_null"]),
            "charttime": ts_array(events.t),
            "storetime": ts_array(events.t + extras["store_delay"]),
            "itemid": int_array(events.item),
            "value": value_strings(events.num, events.code),
            "valuenum": float_array(events.num),
            "valueuom": text_array(uom_strings, uom_index[events.item]),
            "warning": int_array(extras["warning"]),
        }
    )

"""``hosp/labevents`` of one block: panels in ICU stays, around them and outside admissions.

Panels (one specimen_id each): chemistry every 12 h, haematology daily, blood gases every 8 h on
ventilated stays, urine once; outside the ICU an emergency-department panel before the first
stay, daily ward panels after the last one, panels in admissions without ICU stay, and outpatient
panels without hadm_id. The 17-variable lab items (glucose 50809/50931, SpO2 50817, pH 50820)
follow the same latent trajectories as the charted values. labevents has no stay_id: a row's
placement (in a stay, before/after it, ...) is known only through subject_id and time.

Injected defects (text in a numeric result, impossible pH / SpO2, exact duplicates, empty
hadm_id inside a stay) touch distinct clean in-stay rows of the variable items and are counted
exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pyarrow as pa

from mindkd.demo import vocab
from mindkd.demo._util import (
    DAY,
    HOUR,
    at_least_one,
    ceil_minute,
    float_array,
    int_array,
    scrambled_ids,
    text_array,
    ts_array,
)
from mindkd.demo.cohort import Cohort, Counters
from mindkd.demo.ehr import (
    CODE,
    LatentState,
    StayContext,
    once,
    physical_value,
    schedule,
    value_strings,
)

#: Lab items of the 17 variables (glucose, SpO2, pH).
VARIABLE_LAB_ITEMS: tuple[int, ...] = (50809, 50931, 50817, 50820)
LAB_DEFECT_RATES: dict[str, float] = {
    "text_in_numeric": 0.004,
    "impossible_ph": 0.001,
    "impossible_spo2": 0.001,
    "duplicate": 0.003,
    "empty_hadm_id": 0.005,
}
IMPOSSIBLE_LAB_VALUES: dict[str, tuple[int, float]] = {
    "impossible_ph": (50820, 15.2),
    "impossible_spo2": (50817, 180.0),
}
_FAILED_RESULTS: tuple[str, ...] = ("___", "ERROR", "UNABLE TO REPORT", "HEMOLYZED")
#: Where a lab row lies relative to the ICU stays of its subject.
LAB_PLACEMENTS: tuple[str, ...] = (
    "in_stay",
    "before_intime",
    "after_outtime",
    "hadm_without_stay",
    "no_hadm",
)


@dataclass
class LabResult:
    """One block's labevents table and exact counts of what went into it."""

    table: pa.Table
    counts: dict[str, int]
    defects: dict[str, int]
    placement: dict[str, int]


@dataclass
class _LabRows:
    """Lab rows being built (hadm -1: empty)."""

    subject: list[np.ndarray] = field(default_factory=list)
    hadm: list[np.ndarray] = field(default_factory=list)
    time: list[np.ndarray] = field(default_factory=list)
    item: list[np.ndarray] = field(default_factory=list)
    num: list[np.ndarray] = field(default_factory=list)
    code: list[np.ndarray] = field(default_factory=list)
    panel: list[np.ndarray] = field(default_factory=list)
    place: list[np.ndarray] = field(default_factory=list)
    n_panels: int = 0

    def add_panels(
        self,
        subject: np.ndarray,
        hadm: np.ndarray,
        time: np.ndarray,
        items: tuple[int, ...],
        *,
        state: LatentState,
        hours: np.ndarray,
        placement: str,
        rng: np.random.Generator,
    ) -> None:
        """One panel per row of ``subject``; variable items from the latent trajectories."""
        k = len(subject)
        panel = self.n_panels + np.arange(k)
        self.n_panels += k
        known = _variable_values(state, hours, rng) if k else {}
        for item in items:
            keep = rng.random(k) < 0.5 if item == 50809 else np.ones(k, bool)
            if item in known:
                num, code = known[item], np.full(k, -1, np.int32)
            else:
                num, code = _other_value(item, k, rng)
            m = int(keep.sum())
            self.subject.append(np.asarray(subject, np.int64)[keep])
            self.hadm.append(np.asarray(hadm, np.int64)[keep])
            self.time.append(np.asarray(time, np.int64)[keep])
            self.item.append(np.full(m, item, np.int64))
            self.num.append(num[keep])
            self.code.append(code[keep])
            self.panel.append(panel[keep])
            self.place.append(np.full(m, LAB_PLACEMENTS.index(placement)))

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            name: np.concatenate(getattr(self, name))
            for name in ("subject", "hadm", "time", "item", "num", "code", "panel", "place")
        }


def _variable_values(
    state: LatentState, hours: np.ndarray, rng: np.random.Generator
) -> dict[int, np.ndarray]:
    """Glucose, SpO2 and pH lab values from the latent trajectories."""
    glucose = np.round(physical_value("glucose", state, hours, rng))
    spo2 = np.minimum(physical_value("spo2", state, hours, rng) + 1, 100)
    return {
        50931: glucose,
        50809: np.round(glucose + rng.normal(0, 6, len(hours))),
        50817: np.round(spo2),
        50820: np.round(physical_value("ph", state, hours, rng), 2),
    }


def _other_value(item: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(valuenum, text code) of a lab item that is none of the 17 variables."""
    spec = vocab.LAB_BY_ID[item]
    if item == 51478:  # urine glucose: mostly "NEG"
        kind = rng.random(n)
        code = np.where(kind < 0.85, CODE["NEG"], np.where(kind < 0.92, CODE["TR"], -1))
        num = np.where(code < 0, rng.choice([100.0, 150.0, 300.0, 1000.0], n), np.nan)
        return num, code.astype(np.int32)
    num = np.round(np.abs(rng.normal(spec.mean, spec.sd, n)), spec.decimals)
    return num, np.full(n, -1, np.int32)


def lab_block(
    cohort: Cohort, ctx: StayContext, rng: np.random.Generator, counters: Counters
) -> LabResult:
    """One block's labevents rows (in stays, around them, outside admissions), with defects."""
    rows = _LabRows()
    for every, items, stays, presence in (
        (12, vocab.CHEMISTRY_PANEL, None, 0.95),
        (24, vocab.HEMATOLOGY_PANEL, None, 0.9),
        (8, vocab.BLOOD_GAS_PANEL, ctx.ventilated, 0.9),
        (24, vocab.BLOOD_GAS_PANEL, ~ctx.ventilated, 0.3),
    ):
        sl = schedule(ctx, every, rng, stays=stays, presence=presence)
        rows.add_panels(
            ctx.subject[sl.s],
            ctx.hadm[sl.s],
            sl.t,
            items,
            state=ctx.state.take(sl.s),
            hours=sl.h,
            placement="in_stay",
            rng=rng,
        )
    sl = once(ctx, rng, 0.5)
    rows.add_panels(
        ctx.subject[sl.s],
        ctx.hadm[sl.s],
        sl.t,
        vocab.URINE_PANEL,
        state=ctx.state.take(sl.s),
        hours=sl.h,
        placement="in_stay",
        rng=rng,
    )
    _outside_stays(cohort, rng, rows)
    return _assemble(rows, rng, counters)


def _outside_stays(cohort: Cohort, rng: np.random.Generator, rows: _LabRows) -> None:
    a, st = cohort.admissions, cohort.stays
    m = len(a)
    arow = st["admission_row"].to_numpy()
    first_in = np.full(m, np.iinfo(np.int64).max)
    np.minimum.at(first_in, arow, st["intime"].to_numpy())
    last_out = np.full(m, -1, dtype=np.int64)
    np.maximum.at(last_out, arow, st["outtime"].to_numpy())
    admit, disch = a["admittime"].to_numpy(), a["dischtime"].to_numpy()
    subject, hadm = a["subject_id"].to_numpy(), a["hadm_id"].to_numpy()
    has_stay = a["n_stays"].to_numpy() > 0

    def add(
        adm: np.ndarray, t: np.ndarray, items: tuple[int, ...], placement: str, *, no_hadm: bool
    ) -> None:
        hadm_ids = np.full(len(adm), -1) if no_hadm else hadm[adm]
        state = LatentState.calm(cohort.z_e[adm])
        hours = np.zeros(len(adm))
        rows.add_panels(
            subject[adm], hadm_ids, t, items, state=state, hours=hours, placement=placement, rng=rng
        )

    # Before the first ICU stay (emergency department, ward).
    adm = np.flatnonzero(has_stay & (first_in - admit > HOUR))
    span = first_in[adm] - admit[adm] - HOUR
    add(
        adm,
        ceil_minute(admit[adm] + rng.random(len(adm)) * span),
        vocab.CHEMISTRY_PANEL,
        "before_intime",
        no_hadm=False,
    )
    gas = adm[rng.random(len(adm)) < 0.3]
    span = first_in[gas] - admit[gas] - HOUR
    add(
        gas,
        ceil_minute(admit[gas] + rng.random(len(gas)) * span),
        vocab.BLOOD_GAS_PANEL,
        "before_intime",
        no_hadm=False,
    )

    # After the last ICU stay: daily panels on the ward.
    for day in range(3):
        adm = np.flatnonzero(has_stay & (disch - last_out > (day + 1) * DAY))
        t = ceil_minute(last_out[adm] + day * DAY + rng.uniform(1, 20, len(adm)) * HOUR)
        add(adm, t, vocab.CHEMISTRY_PANEL, "after_outtime", no_hadm=False)

    # Admissions without an ICU stay.
    for day in range(4):
        adm = np.flatnonzero(~has_stay & (disch - admit > day * DAY + 2 * HOUR))
        t = ceil_minute(admit[adm] + day * DAY + rng.uniform(0.5, 1.5, len(adm)) * HOUR)
        add(adm, t, vocab.CHEMISTRY_PANEL, "hadm_without_stay", no_hadm=False)
        gas = rng.random(len(adm)) < 0.2
        add(adm[gas], t[gas], vocab.BLOOD_GAS_PANEL, "hadm_without_stay", no_hadm=False)

    # Outpatient panels before the first admission, without hadm_id.
    first = np.flatnonzero(a["order"].to_numpy() == 0)
    adm = first[rng.random(len(first)) < 0.3]
    t = ceil_minute(admit[adm] - rng.uniform(20, 300, len(adm)) * DAY)
    add(adm, t, vocab.CHEMISTRY_PANEL, "no_hadm", no_hadm=True)
    add(adm, t, vocab.HEMATOLOGY_PANEL, "no_hadm", no_hadm=True)


def _pick_defects(cols: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Distinct clean in-stay rows of the variable items for each defect kind."""
    item = cols["item"]
    is_var = np.isin(item, VARIABLE_LAB_ITEMS)
    candidates = rng.permutation(np.flatnonzero(is_var & (cols["place"] == 0) & (cols["code"] < 0)))
    used = np.zeros(len(item), bool)
    picks: dict[str, np.ndarray] = {}
    for kind, rate in LAB_DEFECT_RATES.items():
        pool = candidates[~used[candidates]]
        if kind in IMPOSSIBLE_LAB_VALUES:
            pool = pool[item[pool] == IMPOSSIBLE_LAB_VALUES[kind][0]]
        picks[kind] = pool[: at_least_one(rate, len(candidates))]
        used[picks[kind]] = True
    return picks


def _assemble(rows: _LabRows, rng: np.random.Generator, counters: Counters) -> LabResult:
    cols = rows.arrays()
    picks = _pick_defects(cols, rng)
    cols["hadm"][picks["empty_hadm_id"]] = -1

    # Copies with a failed or impossible result (same specimen, a second result row).
    texts = np.array([CODE[x] for x in _FAILED_RESULTS])
    src = [picks["text_in_numeric"], picks["impossible_ph"], picks["impossible_spo2"]]
    n_text = len(src[0])
    new_num = np.r_[
        np.full(n_text, np.nan),
        np.full(len(src[1]), IMPOSSIBLE_LAB_VALUES["impossible_ph"][1]),
        np.full(len(src[2]), IMPOSSIBLE_LAB_VALUES["impossible_spo2"][1]),
    ]
    new_code = np.r_[
        texts[rng.integers(0, len(texts), n_text)], np.full(len(src[1]) + len(src[2]), -1)
    ]
    all_src = np.concatenate(src)
    n_before = len(cols["item"])
    for name in cols:
        cols[name] = np.r_[cols[name], cols[name][all_src]]
    cols["num"][n_before:] = new_num
    cols["code"][n_before:] = new_code

    # Order by subject and time; labevent_id follows that order; duplicates repeat their row.
    perm = np.lexsort((cols["item"], cols["time"], cols["subject"]))
    labevent_id = np.empty(len(perm), np.int64)
    labevent_id[perm] = counters.labevents + 1 + np.arange(len(perm))
    counters.labevents += len(perm)
    repeat = np.ones(len(perm), np.int64)
    repeat[picks["duplicate"]] = 2
    perm = np.repeat(perm, repeat[perm])
    specimen = scrambled_ids(counters.specimens + cols["panel"], 10_000_000, 3_141_593, 1_873_305)
    counters.specimens += rows.n_panels
    ordered = {name: values[perm] for name, values in cols.items()}
    table = _lab_table(ordered, labevent_id[perm], specimen[perm])

    var_rows = np.isin(ordered["item"], VARIABLE_LAB_ITEMS)
    placement = {
        name: int(((ordered["place"] == i) & var_rows).sum())
        for i, name in enumerate(LAB_PLACEMENTS)
    }
    counts = {
        "rows": table.num_rows,
        "variable_item_rows": int(var_rows.sum()),
        "empty_hadm_id_rows": int((ordered["hadm"] < 0).sum()),
    }
    defects = {kind: len(p) for kind, p in picks.items()}
    return LabResult(table, counts, defects, placement)


@cache
def _lab_lookup() -> tuple[np.ndarray, pa.Array, np.ndarray, np.ndarray, pa.Array]:
    """Unit code, unit strings, reference range by item id, and order provider ids."""
    units = sorted({i.uom for i in vocab.LAB_ITEMS})
    size = max(i.itemid for i in vocab.LAB_ITEMS) + 1
    uom = np.zeros(size, np.int32)
    low, high = np.full(size, np.nan), np.full(size, np.nan)
    for item in vocab.LAB_ITEMS:
        uom[item.itemid] = units.index(item.uom)
        low[item.itemid] = np.nan if item.ref_low is None else item.ref_low
        high[item.itemid] = np.nan if item.ref_high is None else item.ref_high
    providers = pa.array([f"P{(i * 7919) % 99991:05X}"[:6] for i in range(997)])
    return uom, pa.array(units), low, high, providers


def _lab_table(
    cols: dict[str, np.ndarray], labevent_id: np.ndarray, specimen: np.ndarray
) -> pa.Table:
    item, num, hadm = cols["item"], cols["num"], cols["hadm"]
    uom, units, ref_low, ref_high, providers = _lab_lookup()
    low, high = ref_low[item], ref_high[item]
    abnormal = (num < low) | (num > high)
    # Per-panel attributes (provider, priority, result delay) hashed from the panel index.
    h = (cols["panel"] * 2_654_435_761) % 4_294_967_291
    priority = np.where(h % 10 == 0, -1, (h // 10) % 10 < 3).astype(np.int32)
    delay = (20 + (h // 100) % 160) * 60
    t = cols["time"]
    return pa.table(
        {
            "labevent_id": int_array(labevent_id),
            "subject_id": int_array(cols["subject"]),
            "hadm_id": int_array(hadm, mask=hadm < 0),
            "specimen_id": int_array(specimen),
            "itemid": int_array(item),
            "order_provider_id": text_array(providers, np.where(h % 5 < 2, -1, h % 997)),
            "charttime": ts_array(t),
            "storetime": ts_array(t + delay),
            "value": value_strings(num, cols["code"]),
            "valuenum": float_array(num),
            "valueuom": text_array(units, uom[item]),
            "ref_range_lower": float_array(low),
            "ref_range_upper": float_array(high),
            "flag": text_array(pa.array(["abnormal"]), np.where(abnormal, 0, -1)),
            "priority": text_array(pa.array(["ROUTINE", "STAT"]), priority),
            "comments": text_array(pa.array(["___"]), np.where(h % 97 == 0, 0, -1)),
        }
    )

"""Benchmark the ehr ingestion + cleaning stage against a bare pyarrow read of the same files.

For each size (chartevents rows; labevents get 120/313 as many, the MIMIC-IV ratio) this script

1. generates demo event data once, cached under ``data/benchmarks/`` (the demo generator's
   ``--events-only`` mode when ``mindkd.demo`` provides it, else a built-in generator that writes the
   same PhysioNet layout: realistic item mix, ~20 % of chartevents rows on the 17 variables' items,
   dirty rows of every kind);
2. runs, each in a fresh subprocess, the *floor* (``pyarrow.csv.open_csv`` over chartevents and
   labevents, every batch, all columns, same block size) and the *stage* (pass 1 ``ingest_events``
   + pass 2 ``clean_events`` through ``MimicEventsDataset`` / ``EventPartsDataset`` into a temp
   folder), each reporting its wall time and peak RSS (``ru_maxrss`` of that process); the floor
   parses every column with the schema's types (inferring them is slower and fails on real data);
3. prints rows/s of both, their ratio, peak RSS at every size and the largest/smallest RSS ratio,
   and the projected time for real MIMIC-IV (313 M chartevents + 120 M labevents rows).

Targets: stage >= 50 % of the floor's rows/s; peak RSS <= 2 GiB and flat (30 M <= 1.3 x 3 M).

    python benchmarks/ehr_ingest.py                      # 3 M and 30 M chartevents rows
    python benchmarks/ehr_ingest.py --sizes 1M --repeat 2  # quick
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from mindkd.io.raw import DEFAULT_BLOCK_SIZE

ROOT = Path(__file__).resolve().parents[1]

REAL_CHART_ROWS = 313_000_000
REAL_LAB_ROWS = 120_000_000
LAB_RATIO = REAL_LAB_ROWS / REAL_CHART_ROWS
GIB = 1 << 30


def _parse_size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000, "G": 1_000_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KMG")) * scale)


def _size_label(rows: int) -> str:
    return f"{rows / 1e6:g}M" if rows >= 1_000_000 else f"{rows / 1e3:g}K"


# --- data ----------------------------------------------------------------------------------


def _demo_supports_events_only() -> bool:
    probe = subprocess.run(
        [sys.executable, "-m", "mindkd.demo", "--help"],
        capture_output=True,
        text=True,
        env=_child_env(),
        check=False,
    )
    return probe.returncode == 0 and "--chartevents-rows" in probe.stdout


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return env


def ensure_data(rows: int, cache: Path, generator: str, seed: int) -> tuple[Path, str]:
    """The MIMIC-IV root of a cached data set of ``rows`` chartevents rows, generated if missing."""
    use_demo = generator == "demo" or (generator == "auto" and _demo_supports_events_only())
    kind = "demo" if use_demo else "builtin"
    folder = cache / f"ehr-{kind}-{_size_label(rows)}-seed{seed}"
    root = folder / "mimic-iv"
    if (folder / "_complete").is_file():
        return root, kind
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    start = time.perf_counter()
    print(f"generating {_size_label(rows)} chartevents rows ({kind}) in {folder} ...", flush=True)
    if use_demo:
        command = [sys.executable, "-m", "mindkd.demo", str(folder), "--seed", str(seed)]
        command += ["--events-only", "--chartevents-rows", str(rows)]
        subprocess.run(command, check=True, env=_child_env())
    else:
        generate_builtin(root, rows, seed)
    (folder / "_complete").write_text(json.dumps({"rows": rows, "kind": kind}))
    print(f"  generated in {time.perf_counter() - start:.0f} s", flush=True)
    return root, kind


# Item ids and value generators of the built-in data: the 17 variables' items (weights ~ their
# share of real MIMIC-IV chartevents) and a pool of other items making up ~80 % of the rows.
_VARIABLE_ITEMS = {
    220045: (8.0, 85, 18), 220210: (7.6, 19, 5), 220277: (7.5, 97, 2.5), 220179: (4.4, 120, 20),
    220180: (4.4, 65, 12), 220181: (4.4, 80, 14), 220050: (2.4, 120, 20), 220051: (2.4, 60, 10),
    220052: (2.4, 78, 12), 223761: (1.0, 98.6, 1.2), 223762: (0.3, 37, 0.6), 220739: (1.1, 3.5, 0.8),
    223900: (1.1, 3.5, 1.5), 223901: (1.1, 5, 1.5), 223835: (0.6, 50, 15), 220621: (0.4, 130, 40),
    225664: (0.5, 140, 40), 220274: (0.1, 7.38, 0.06), 223830: (0.3, 7.38, 0.06),
    224639: (0.1, 80, 20), 226512: (0.05, 80, 20), 226531: (0.05, 180, 40), 226730: (0.05, 170, 10),
    226707: (0.02, 67, 4), 223951: (0.3, 0, 0), 224308: (0.2, 0, 0), 220227: (0.05, 96, 3),
}  # fmt: skip
_LAB_ITEMS = {50931: (1.0, 130, 40), 50809: (0.2, 130, 40), 50820: (0.3, 7.38, 0.06),
              50817: (0.1, 96, 3)}  # fmt: skip
_GCS_TEXT = {
    220739: ["Spontaneously", "To Speech", "To Pain", "None"],
    223900: ["Oriented", "Confused", "Inappropriate Words", "Incomprehensible sounds",
             "No Response-ETT", "No Response"],
    223901: ["Obeys Commands", "Localizes Pain", "Flex-withdraws", "Abnormal Flexion",
             "Abnormal extension", "No response"],
}  # fmt: skip
_UOM = {223761: "°F", 223762: "°C", 220277: "%", 220227: "%", 223835: "%", 224639: "kg",
        226512: "kg", 226531: "lbs", 226730: "cm", 226707: "Inch", 220045: "bpm",
        220210: "insp/min"}  # fmt: skip
_CHART_HEADER = (
    "subject_id,hadm_id,stay_id,caregiver_id,charttime,storetime,itemid,value,valuenum,valueuom,"
    "warning"
)
_LAB_HEADER = (
    "labevent_id,subject_id,hadm_id,specimen_id,itemid,order_provider_id,charttime,storetime,"
    "value,valuenum,valueuom,ref_range_lower,ref_range_upper,flag,priority,comments"
)


def _times(seconds: np.ndarray) -> pa.Array:
    return pa.array(seconds.astype("datetime64[s]"))


def _numbers(values: np.ndarray) -> pa.Array:
    return pa.array(values, mask=np.isnan(values))


def _texts(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(values, type=pa.string(), mask=mask)


def _write(sink: Any, columns: dict[str, Any]) -> None:
    table = pa.table(columns)
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False, quoting_style="none"))


def _pick(rng: np.random.Generator, table: dict[int, tuple[float, ...]], n: int) -> np.ndarray:
    items = np.array(list(table))
    weights = np.array([v[0] for v in table.values()])
    return items[rng.choice(len(items), n, p=weights / weights.sum())]


def _values(
    rng: np.random.Generator, items: np.ndarray, table: dict[int, tuple[float, float, float]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """value text, valuenum (NaN = empty) and unit of generated rows of the variables' items."""
    n = len(items)
    ids = np.array(list(table))
    sorter = np.argsort(ids)
    position = sorter[np.searchsorted(ids, items, sorter=sorter)]
    mean = np.array([v[1] for v in table.values()])[position]
    sd = np.array([v[2] for v in table.values()])[position]
    number = np.round(rng.normal(mean, sd), 1)
    unit = np.array([_UOM.get(int(i), "") for i in ids], dtype=object)[position]
    text = number.astype(str).astype(object)
    for item, answers in _GCS_TEXT.items():
        rows = np.flatnonzero(items == item)
        score = rng.integers(0, len(answers), len(rows))
        text[rows] = np.array(answers, dtype=object)[score]
        points = np.maximum(len(answers) - score, 1).astype(float)
        number[rows] = np.where(rng.random(len(rows)) < 0.9, points, np.nan)
    for item in (223951, 224308):
        rows = np.flatnonzero(items == item)
        answers = np.array(["Normal <3 Seconds", "Abnormal >3 Seconds", "Other/Remarks"], object)
        text[rows] = answers[rng.choice(3, len(rows), p=[0.8, 0.15, 0.05])]
        number[rows] = np.nan
    spo2 = np.flatnonzero(np.isin(items, [220277, 50817]) & (rng.random(n) < 0.02))
    number[spo2] = np.round(number[spo2] / 100, 2)
    text[spo2] = number[spo2].astype(str)
    dirty = rng.random(n)
    bad_text = np.flatnonzero(dirty < 0.003)
    text[bad_text], number[bad_text] = "see note", np.nan
    impossible = np.flatnonzero((dirty >= 0.003) & (dirty < 0.005))
    number[impossible] *= 100
    text[impossible] = number[impossible].astype(str)
    return text, number, unit


def generate_builtin(root: Path, chart_rows: int, seed: int, chunk_stays: int = 200) -> None:
    """Write icu/icustays, icu/chartevents, hosp/labevents in the PhysioNet layout (gzip CSV)."""
    rng = np.random.default_rng(seed)
    (root / "icu").mkdir(parents=True, exist_ok=True)
    (root / "hosp").mkdir(parents=True, exist_ok=True)
    n_stays = max(200, chart_rows // 4_300)
    subject = 10_000_000 + np.cumsum(rng.random(n_stays) < 0.75)
    hadm = 20_000_000 + np.arange(n_stays) * 3
    stay = 30_000_000 + np.arange(n_stays) * 7
    intime = (4_260_000_000 + rng.integers(0, 2_800_000_000, n_stays)).astype(np.int64)
    later = np.flatnonzero(subject[1:] == subject[:-1]) + 1  # a subject's next stay
    for i in later:  # in order: chains of stays stay in order
        intime[i] = intime[i - 1] + 86_400 * int(rng.integers(45, 200))
    los = (86_400 * np.clip(rng.lognormal(0.9, 0.8, n_stays), 0.3, 40)).astype(np.int64)
    outtime = intime + los
    with gzip.open(root / "icu" / "icustays.csv.gz", "wb", compresslevel=1) as sink:
        sink.write(b"subject_id,hadm_id,stay_id,first_careunit,last_careunit,intime,outtime,los\n")
        units = np.full(n_stays, "MICU", dtype=object)
        columns = {"subject_id": subject, "hadm_id": hadm, "stay_id": stay}
        columns |= {"first_careunit": units, "last_careunit": units}
        columns |= {"intime": _times(intime), "outtime": _times(outtime)}
        _write(sink, columns | {"los": np.round(los / 86_400, 4)})
    share = los / los.sum()
    per_stay = rng.multinomial(chart_rows, share)
    lab_per_stay = rng.multinomial(int(chart_rows * LAB_RATIO), share)
    other_items = 224_000 + np.arange(150) * 17
    chart_path, lab_path = root / "icu" / "chartevents.csv.gz", root / "hosp" / "labevents.csv.gz"
    with (
        gzip.open(chart_path, "wb", compresslevel=1) as chart,
        gzip.open(lab_path, "wb", compresslevel=1) as lab,
    ):
        chart.write((_CHART_HEADER + "\n").encode())
        lab.write((_LAB_HEADER + "\n").encode())
        lab_id = 0
        for lo in range(0, n_stays, chunk_stays):
            idx = np.arange(lo, min(lo + chunk_stays, n_stays))
            owner = np.repeat(idx, per_stay[idx])
            _chart_chunk(rng, chart, owner, other_items, (subject, hadm, stay, intime, los))
            owner = np.repeat(idx, lab_per_stay[idx])
            lab_id = _lab_chunk(rng, lab, owner, lab_id, (subject, hadm, intime, los))


def _chart_chunk(
    rng: np.random.Generator,
    sink: Any,
    owner: np.ndarray,
    other_items: np.ndarray,
    stays: tuple[np.ndarray, ...],
) -> None:
    subject, hadm, stay, intime, los = stays
    n = len(owner)
    if not n:
        return
    t = intime[owner] + (rng.random(n) * los[owner]).astype(np.int64)
    t[rng.random(n) < 0.01] += 86_400 * 15  # after the stay: outside any stay
    order = np.lexsort((t, owner))
    owner, t = owner[order], t[order]
    ours = rng.random(n) < 0.2
    item = np.where(ours, _pick(rng, _VARIABLE_ITEMS, n), other_items[rng.integers(0, 150, n)])
    number = np.round(rng.normal(50, 20, n), 0)
    text = number.astype(str).astype(object)
    wordy = (rng.random(n) < 0.3) & ~ours
    text[wordy], number[wordy] = "Intact", np.nan
    unit = np.full(n, "", dtype=object)
    rows = np.flatnonzero(ours)
    text[rows], number[rows], unit[rows] = _values(rng, item[rows], _VARIABLE_ITEMS)
    claimed = stay[owner].copy()
    mismatch = rng.random(n) < 0.002
    claimed[mismatch] = stay[np.clip(owner[mismatch] + 1, 0, len(stay) - 1)]
    keep = np.sort(np.concatenate([np.arange(n), np.flatnonzero(rng.random(n) < 0.005)]))
    _write(
        sink,
        {
            "subject_id": pa.array(subject[owner][keep], mask=(rng.random(len(keep)) < 2e-4)),
            "hadm_id": hadm[owner][keep],
            "stay_id": claimed[keep],
            "caregiver_id": rng.integers(1_000, 99_999, len(keep)),
            "charttime": _times(t[keep]),
            "storetime": _times(t[keep] + rng.integers(60, 3_600, len(keep))),
            "itemid": item[keep],
            "value": _texts(text[keep]),
            "valuenum": _numbers(number[keep]),
            "valueuom": _texts(unit[keep], mask=unit[keep] == ""),
            "warning": np.zeros(len(keep), dtype=np.int64),
        },
    )


def _lab_chunk(
    rng: np.random.Generator,
    sink: Any,
    owner: np.ndarray,
    first_id: int,
    stays: tuple[np.ndarray, ...],
) -> int:
    subject, hadm, intime, los = stays
    m = len(owner)
    if not m:
        return first_id
    t = intime[owner] + (rng.random(m) * 2.0 * los[owner]).astype(np.int64) - los[owner] // 2
    order = np.lexsort((t, owner))
    owner, t = owner[order], t[order]
    ours = rng.random(m) < 0.08
    item = np.where(ours, _pick(rng, _LAB_ITEMS, m), 50_900 + rng.integers(0, 80, m))
    number = np.round(rng.normal(100, 30, m), 1)
    text = number.astype(str).astype(object)
    rows = np.flatnonzero(ours)
    text[rows], number[rows], _ = _values(rng, item[rows], _LAB_ITEMS)
    ids = first_id + np.arange(m)
    empty = pa.nulls(m, pa.string())
    _write(
        sink,
        {
            "labevent_id": ids,
            "subject_id": subject[owner],
            "hadm_id": hadm[owner],
            "specimen_id": ids,
            "itemid": item,
            "order_provider_id": np.full(m, "P12345", dtype=object),
            "charttime": _times(t),
            "storetime": _times(t + 1_800),
            "value": _texts(text),
            "valuenum": _numbers(number),
            "valueuom": np.full(m, "mg/dL", dtype=object),
            "ref_range_lower": np.full(m, 70.0),
            "ref_range_upper": np.full(m, 100.0),
            "flag": empty,
            "priority": np.full(m, "ROUTINE", dtype=object),
            "comments": empty,
        },
    )
    return first_id + m


# --- children --------------------------------------------------------------------------------


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def child_floor(root: Path, block_size: int) -> dict[str, Any]:
    """Every batch of both files, all columns, typed with the schema (inferring types is slower,
    and fails on real exports: a text ``value`` after a first block of numbers)."""
    from mindkd.mimic.schemas import table_schema

    start = time.perf_counter()
    rows = 0
    for table in ("chartevents", "labevents"):
        schema = table_schema(table)
        reader = pa_csv.open_csv(
            str(root / schema.relpath),
            read_options=pa_csv.ReadOptions(block_size=block_size),
            convert_options=pa_csv.ConvertOptions(column_types=schema.column_types),
        )
        for batch in reader:
            rows += batch.num_rows
    seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": seconds, "cpu": _cpu_seconds(), "peak_rss": _peak_rss_bytes()}


def child_stage(root: Path, block_size: int, n_buckets: int, out: Path) -> dict[str, Any]:
    import logging

    from mindkd.io.event_parts import EventPartsDataset
    from mindkd.io.raw import MimicEventsDataset, MimicTableDataset
    from mindkd.processing.events import clean_events
    from mindkd.processing.ingest import Lookback, ingest_events

    logging.basicConfig(level=logging.WARNING)
    admissions = root / "hosp/admissions.csv.gz"
    start = time.perf_counter()
    stream = ingest_events(
        MimicEventsDataset(str(root / "icu/chartevents.csv.gz"), "chartevents", block_size).load(),
        MimicEventsDataset(str(root / "hosp/labevents.csv.gz"), "labevents", block_size).load(),
        MimicTableDataset(str(root / "icu/icustays.csv.gz"), "icustays").load(),
        n_buckets=n_buckets,
        admissions=(  # the look-back as the pipeline runs it (ehr.lookback_hours: 24)
            MimicTableDataset(str(admissions), "admissions").load() if admissions.exists() else None
        ),
        lookback=Lookback(),
    )
    raw_store = EventPartsDataset(str(out / "events_raw"))
    raw_store.save(stream)
    pass1 = time.perf_counter() - start
    rss1 = _peak_rss_bytes()
    clean_store = EventPartsDataset(str(out / "events_clean"))
    clean_store.save(clean_events(raw_store.load()))
    seconds = time.perf_counter() - start
    stats = clean_store.load().stats
    sources = stats["ingest"]["sources"]
    return {
        "rows": sum(s["rows_read"] for s in sources.values()),
        "rows_kept_pass1": sum(s["rows_kept"] for s in sources.values()),
        "rows_out": stats["rows_out"],
        "seconds": seconds,
        "pass1_seconds": pass1,
        "pass2_seconds": seconds - pass1,
        "peak_rss_pass1": rss1,
        "peak_rss": _peak_rss_bytes(),
        "cpu": _cpu_seconds(),
        "largest_bucket": max(stats["ingest"]["rows_per_bucket"]),
        "n_buckets": stats["n_buckets"],
    }


def run_child(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        env=_child_env() | {"TQDM_DISABLE": "1"},
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"child {args} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- report ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3M,30M", help="chartevents rows, e.g. 3M,30M")
    parser.add_argument(
        "--block-size", type=int, default=DEFAULT_BLOCK_SIZE, help="CSV block bytes"
    )
    parser.add_argument("--n-buckets", type=int, default=32, help="least number of buckets")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the best is kept")
    parser.add_argument("--cache", type=Path, default=ROOT / "data" / "benchmarks")
    parser.add_argument("--generator", choices=["auto", "demo", "builtin"], default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=["floor", "stage"], help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child == "floor":
        print(json.dumps(child_floor(args.root, args.block_size)))
        return
    if args.child == "stage":
        print(json.dumps(child_stage(args.root, args.block_size, args.n_buckets, args.out)))
        return

    sizes = [_parse_size(s) for s in args.sizes.split(",")]
    load_before = os.getloadavg()
    results = []
    for rows in sizes:
        root, kind = ensure_data(rows, args.cache, args.generator, args.seed)
        floors, stages = [], []
        for _ in range(args.repeat):
            common = ["--root", str(root), "--block-size", str(args.block_size)]
            floors.append(run_child(["--child", "floor", *common]))
            stage_args = ["--child", "stage", *common, "--n-buckets", str(args.n_buckets)]
            with tempfile.TemporaryDirectory(prefix="ehr-bench-") as out:
                stages.append(run_child([*stage_args, "--out", out]))
        floor = min(floors, key=lambda r: r["seconds"])
        stage = min(stages, key=lambda r: r["seconds"])
        stage["peak_rss"] = max(s["peak_rss"] for s in stages)
        results.append((rows, kind, floor, stage))
    load_after = os.getloadavg()
    report(results, args, load_before, load_after)


def report(
    results: list[tuple[int, str, dict[str, Any], dict[str, Any]]],
    args: argparse.Namespace,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    print()
    print(
        f"ehr ingestion + cleaning benchmark: block size {args.block_size >> 20} MiB, "
        f">= {args.n_buckets} buckets, best of {args.repeat}; {os.cpu_count()} CPUs, load average "
        f"{load_before[0]:.1f} before / {load_after[0]:.1f} after (machine shared with others)"
    )
    header = (
        f"{'chart rows':>10} {'data':>7} {'all rows':>10} {'floor s':>8} {'floor r/s':>10} "
        f"{'stage s':>8} {'pass1':>6} {'pass2':>6} {'stage r/s':>10} {'ratio':>6} "
        f"{'RSS stage':>10} {'RSS floor':>10}"
    )
    print(header)
    print("-" * len(header))
    for rows, kind, floor, stage in results:
        floor_rate = floor["rows"] / floor["seconds"]
        stage_rate = stage["rows"] / stage["seconds"]
        print(
            f"{_size_label(rows):>10} {kind:>7} {stage['rows']:>10,} {floor['seconds']:>8.1f} "
            f"{floor_rate / 1e6:>8.2f} M {stage['seconds']:>8.1f} {stage['pass1_seconds']:>6.1f} "
            f"{stage['pass2_seconds']:>6.1f} {stage_rate / 1e6:>8.2f} M "
            f"{stage_rate / floor_rate:>6.0%} {stage['peak_rss'] / GIB:>8.2f} G "
            f"{floor['peak_rss'] / GIB:>8.2f} G"
        )
    for rows, _, floor, stage in results:
        print(
            f"  {_size_label(rows)}: CPU seconds (all threads) floor {floor['cpu']:.1f}, stage "
            f"{stage['cpu']:.1f}: CPU-time ratio {floor['cpu'] / stage['cpu']:.0%} (less "
            "sensitive to the other users of the machine than wall time)"
        )
    for rows, _, _, stage in results:
        print(
            f"  {_size_label(rows)}: pass 1 kept {stage['rows_kept_pass1']:,} rows "
            f"in {stage['n_buckets']} buckets (largest {stage['largest_bucket']:,}); pass 2 wrote "
            f"{stage['rows_out']:,}; "
            f"peak RSS after pass 1 {stage['peak_rss_pass1'] / GIB:.2f} G"
        )
    small, large = results[0][3], results[-1][3]
    ratios = [r[3]["rows"] / r[3]["seconds"] / (r[2]["rows"] / r[2]["seconds"]) for r in results]
    rss_ratio = large["peak_rss"] / small["peak_rss"]
    rss_list = ", ".join(f"{r[3]['peak_rss'] / GIB:.2f} GiB" for r in results)
    rate = large["rows"] / large["seconds"]
    floor_rate = results[-1][2]["rows"] / results[-1][2]["seconds"]
    real_rows = REAL_CHART_ROWS + REAL_LAB_ROWS
    ratio_ok = "met" if min(ratios) >= 0.5 else "NOT met"
    rss_ok = "met" if large["peak_rss"] <= 2 * GIB else "NOT met"
    flat_ok = "met" if rss_ratio <= 1.3 else "NOT met"
    print()
    print(f"stage / floor rows/s: {', '.join(f'{r:.0%}' for r in ratios)} (>= 50%: {ratio_ok})")
    print(
        f"peak RSS of the stage: {rss_list}; {_size_label(results[-1][0])} / "
        f"{_size_label(results[0][0])} = {rss_ratio:.2f} (<= 2 GiB: {rss_ok}; <= 1.3: {flat_ok})"
    )
    print(
        f"projected for real MIMIC-IV ({REAL_CHART_ROWS / 1e6:.0f} M chartevents + "
        f"{REAL_LAB_ROWS / 1e6:.0f} M labevents rows) at {rate / 1e6:.2f} M rows/s: "
        f"{real_rows / rate / 60:.0f} min (bare read at the floor's rate: "
        f"{real_rows / floor_rate / 60:.0f} min)"
    )


if __name__ == "__main__":
    main()

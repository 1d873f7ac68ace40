"""Peak memory of the ehr stage when one ICU stay holds millions of events (issue #12).

Memory must be bounded by a fixed budget, not by the largest stay: real MIMIC-IV has stays of months
with hundreds of thousands of events, and a corrupt export can hold far more. This script

1. writes a small demo export once (``python -m mindkd.demo OUT --patients 50 --seed 0
   --no-images``), cached under ``data/benchmarks/``;
2. adds ``--rows`` chartevents rows (default 10⁷) of the 17 variables' items to one stay: the
   longest stay of the shared cohort that lasts at least 48 h, so both tasks read it. The rows are
   written vectorised (the value generator of ``benchmarks/ehr_ingest.py``: text, GCS text, unit
   mixes, dirty rows, 1 % exact duplicates), in random order, at one of four time layouts
   (``--layouts``):

   - ``first48``: every row inside ``[intime, intime + 48 h)``: dense charting inside both tasks'
     windows (about 58 rows per second of the stay);
   - ``stay``: spread over ``[intime, outtime]``;
   - ``after``: a corrupt ``outtime`` three years after ``intime`` (the stay's ``icustays`` row is
     rewritten) and every row after the longest task window (pheno's 240 h): rows that pass 1
     keeps (they lie in the stay) and no task reads;
   - ``hour0``: every row inside the first hour (about 2800 rows per second): the densest
     charting, where pass 2 must cut one hour of one stay by second;

3. runs the ehr stage in a fresh child process as the pipeline runs it (the nodes of
   ``mindkd.pipelines.ehr`` with the real-data parameters: ``pheno.max_hours = 240``): pass 1,
   pass 2, the shared cohort, then per task the cohort (``ihm`` scans the cleaned events) and the
   hourly tensors; it prints the wall time of each step, the peak RSS within it (Linux
   ``VmHWM``, reset between steps) and the peak so far (``ru_maxrss``), and the same for the
   export without the big stay.

Target: peak RSS <= 2 GiB whatever the size of the largest stay.

    python benchmarks/ehr_huge_stay.py                           # 10⁷ rows, the four layouts
    python benchmarks/ehr_huge_stay.py --rows 1e6 --layouts first48   # quick
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
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ehr_ingest import (  # a sibling script, not a package
    _VARIABLE_ITEMS,
    _child_env,
    _numbers,
    _parse_size,
    _pick,
    _size_label,
    _texts,
    _times,
    _values,
    _write,
)

ROOT = Path(__file__).resolve().parents[1]
GIB = 1 << 30
HOUR = 3_600
LAYOUTS = ("first48", "stay", "after", "hour0")
PHENO_MAX_HOURS = 240  # the real-data profile (conf/base/globals.yml)
IHM_HOURS = 48
CHUNK_ROWS = 1_000_000


# --- data ----------------------------------------------------------------------------------


def ensure_demo(cache: Path, patients: int, seed: int) -> Path:
    """The MIMIC-IV root of the cached demo export, written if missing."""
    folder = cache / f"ehr-huge-base-{patients}p-seed{seed}"
    if not (folder / "_complete").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        command = [sys.executable, "-m", "mindkd.demo", str(folder), "--patients", str(patients)]
        command += ["--seed", str(seed), "--no-images"]
        subprocess.run(command, check=True, env=_child_env(), capture_output=True)
        (folder / "_complete").write_text("{}")
    return folder / "mimic-iv"


def pick_stay(root: Path) -> pd.Series:
    """The longest stay of the shared cohort that lasts at least 48 h (both tasks read it)."""
    from mindkd.io.raw import MimicTableDataset
    from mindkd.processing.cohort import build_stay_cohort

    icustays = MimicTableDataset(str(root / "icu/icustays.csv.gz"), "icustays").load()
    patients = MimicTableDataset(str(root / "hosp/patients.csv.gz"), "patients").load()
    stays = build_stay_cohort(icustays, patients)
    stays = stays[stays["outtime"] - stays["intime"] >= pd.Timedelta(hours=IHM_HOURS)]
    return stays.loc[(stays["outtime"] - stays["intime"]).idxmax()]


def _seconds(value: Any) -> int:
    return int(pd.Timestamp(value).to_datetime64().astype("datetime64[s]").astype(np.int64))


def ensure_huge(base: Path, cache: Path, rows: int, layout: str, seed: int) -> tuple[Path, dict]:
    """A copy of ``base`` (links) whose chartevents hold ``rows`` more rows of one stay."""
    folder = cache / f"{base.parent.name}-{layout}-{_size_label(rows)}"
    root = folder / "mimic-iv"
    done = folder / "_complete"
    if done.is_file():
        return root, json.loads(done.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    for source in base.rglob("*.csv.gz"):
        target = root / source.relative_to(base)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source)
    stay = pick_stay(base)
    intime, outtime = _seconds(stay["intime"]), _seconds(stay["outtime"])
    if layout == "after":
        outtime = intime + 3 * 365 * 24 * HOUR  # a corrupt outtime: three years
        _rewrite_outtime(base, root, int(stay["stay_id"]), outtime)
    low, high = {
        "first48": (intime, intime + IHM_HOURS * HOUR - 1),
        "stay": (intime, outtime),
        "after": (intime + (PHENO_MAX_HOURS + 1) * HOUR, outtime),
        "hour0": (intime, intime + HOUR - 1),
    }[layout]
    start = time.perf_counter()
    chart = root / "icu/chartevents.csv.gz"
    chart.unlink()
    with gzip.open(chart, "wb", compresslevel=1) as sink:
        sink.write(gzip.decompress((base / "icu/chartevents.csv.gz").read_bytes()))
        rng = np.random.default_rng(seed)
        for first in range(0, rows, CHUNK_ROWS):
            _write_stay_rows(sink, rng, stay, min(CHUNK_ROWS, rows - first), (low, high))
    info = {
        "rows": rows,
        "layout": layout,
        "stay_id": int(stay["stay_id"]),
        "stay_hours": round((outtime - intime) / HOUR, 1),
        "from_hour": round((low - intime) / HOUR, 1),
        "to_hour": round((high - intime) / HOUR, 1),
    }
    done.write_text(json.dumps(info))
    print(f"  wrote {layout} in {time.perf_counter() - start:.0f} s: {info}", flush=True)
    return root, info


def _rewrite_outtime(base: Path, root: Path, stay_id: int, outtime: int) -> None:
    path = root / "icu/icustays.csv.gz"
    path.unlink()
    frame = pd.read_csv(base / "icu/icustays.csv.gz", dtype=str, keep_default_na=False)
    at = frame["stay_id"] == str(stay_id)
    frame.loc[at, "outtime"] = str(pd.Timestamp(outtime, unit="s"))
    frame.to_csv(path, index=False, compression={"method": "gzip", "compresslevel": 1})


def _write_stay_rows(
    sink: Any, rng: np.random.Generator, stay: pd.Series, n: int, span: tuple[int, int]
) -> None:
    """``n`` rows of the variables' items for ``stay`` at random seconds of ``span`` (inclusive)."""
    low, high = span
    unique = n - n // 100
    item = _pick(rng, _VARIABLE_ITEMS, unique)
    text, number, unit = _values(rng, item, _VARIABLE_ITEMS)
    t = rng.integers(low, high + 1, unique)
    again = rng.integers(0, unique, n - unique)  # 1 % exact duplicates, anywhere in the chunk
    rows = rng.permutation(np.concatenate([np.arange(unique), again]))
    _write(
        sink,
        {
            "subject_id": np.full(n, int(stay["subject_id"])),
            "hadm_id": np.full(n, int(stay["hadm_id"])),
            "stay_id": np.full(n, int(stay["stay_id"])),
            "caregiver_id": np.full(n, 12_345),
            "charttime": _times(t[rows]),
            "storetime": _times(t[rows] + 600),
            "itemid": item[rows],
            "value": _texts(text[rows]),
            "valuenum": _numbers(number[rows]),
            "valueuom": _texts(unit[rows], mask=unit[rows] == ""),
            "warning": np.zeros(n, dtype=np.int64),
        },
    )


# --- child: the stage, step by step ----------------------------------------------------------


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _step_peak() -> int | None:
    """Peak RSS since the last ``_reset_step_peak`` (Linux ``VmHWM``), None where unknown."""
    try:
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) * 1024


def _reset_step_peak() -> None:
    """Reset ``VmHWM`` (this also resets ``ru_maxrss`` of a live process: the stage's peak is
    the largest step peak)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def child_stage(root: Path, out: Path) -> dict[str, Any]:
    """The ehr pipeline's nodes in order; peak RSS and wall time at the end of each step."""
    import logging

    from mindkd.io.event_parts import EventPartsDataset
    from mindkd.io.raw import MimicEventsDataset, MimicTableDataset
    from mindkd.pipelines.ehr import nodes
    from mindkd.pipelines.ehr.params import EhrParams, SplitParams
    from mindkd.tasks import TaskParams

    logging.basicConfig(level=logging.WARNING)
    steps: list[dict[str, Any]] = []
    clock = time.perf_counter()

    def step(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        own = _step_peak()
        peak = max([own or _peak_rss()] + [s["peak_rss"] for s in steps])
        steps.append({"step": name, "seconds": now - clock, "peak_rss": peak, "step_peak": own})
        _reset_step_peak()
        clock = now

    def table(name: str, relpath: str) -> pd.DataFrame:
        return MimicTableDataset(str(root / relpath), name).load()

    ehr = EhrParams(categorical="continuous", scratch_dir=str(out))
    icustays = table("icustays", "icu/icustays.csv.gz")
    admissions = table("admissions", "hosp/admissions.csv.gz")
    patients = table("patients", "hosp/patients.csv.gz")
    diagnoses = table("diagnoses_icd", "hosp/diagnoses_icd.csv.gz")
    raw_store = EventPartsDataset(str(out / "events_raw"))
    raw_store.save(
        nodes.ingest_events(
            MimicEventsDataset(str(root / "icu/chartevents.csv.gz"), "chartevents").load(),
            MimicEventsDataset(str(root / "hosp/labevents.csv.gz"), "labevents").load(),
            icustays,
            admissions,
            ehr,
        )
    )
    step("pass 1 (ingest)")
    clean_store = EventPartsDataset(str(out / "events_clean"))
    clean_store.save(nodes.clean_events(raw_store.load(), ehr))
    step("pass 2 (clean)")
    clean = clean_store.load()
    stays, flow = nodes.build_stay_cohort(icustays, patients)
    splits = nodes.assign_subject_splits(
        patients, pd.DataFrame({"subject_id": pd.Series([], dtype="int64")}), SplitParams()
    )
    step("shared cohort")
    stored: dict[str, Any] = {}
    for task in (TaskParams(name="ihm"), TaskParams(name="pheno", max_hours=PHENO_MAX_HOURS)):
        cohort, _, _ = nodes.select_task_cohort(
            stays, flow, clean, admissions, patients, diagnoses, splits, task, ehr
        )
        step(f"{task.name} cohort")
        series = nodes.build_timeseries(clean, cohort, task, ehr)
        step(f"{task.name} tensors")
        stored[task.name] = {
            "stays": len(cohort),
            **{k: v for k, v in series.metadata.items() if k.startswith("events_")},
        }
        del series
    stats = clean.stats
    return {
        "steps": steps,
        "peak_rss": max(s["peak_rss"] for s in steps),
        "rows_read": sum(s["rows_read"] for s in stats["ingest"]["sources"].values()),
        "largest_bucket": max(stats["ingest"]["rows_per_bucket"]),
        "n_buckets": stats["n_buckets"],
        "rows_out": stats["rows_out"],
        "dropped": {k: v for k, v in stats["dropped"].items() if v},
        "tasks": stored,
    }


def run_child(root: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ehr-huge-") as out:
        done = subprocess.run(
            [sys.executable, __file__, "--child", "--root", str(root), "--out", out],
            capture_output=True,
            text=True,
            env=_child_env() | {"TQDM_DISABLE": "1"},
            check=False,
        )
    if done.returncode:
        raise RuntimeError(f"child on {root} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- report ----------------------------------------------------------------------------------


def report(name: str, info: dict[str, Any], result: dict[str, Any]) -> None:
    print()
    print(
        f"{name}: {result['rows_read']:,} event rows read, {result['n_buckets']} buckets, "
        f"largest {result['largest_bucket']:,} rows; {result['rows_out']:,} cleaned rows out"
    )
    if info:
        print(
            f"  big stay {info['stay_id']} ({info['stay_hours']} h): {info['rows']:,} rows "
            f"between hour {info['from_hour']} and {info['to_hour']}"
        )
    for step in result["steps"]:
        own = "" if step["step_peak"] is None else f"{step['step_peak'] / GIB:>5.2f} GiB in it, "
        print(
            f"  {step['step']:<18} {step['seconds']:>7.1f} s   peak RSS {own}so far "
            f"{step['peak_rss'] / GIB:>5.2f} GiB"
        )
    for task, counts in result["tasks"].items():
        print(f"  {task}: {counts}")
    verdict = "met" if result["peak_rss"] <= 2 * GIB else "NOT met"
    total = sum(s["seconds"] for s in result["steps"])
    print(
        f"  peak RSS of the stage: {result['peak_rss'] / GIB:.2f} GiB (<= 2 GiB: {verdict}); "
        f"{total:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="10M", help="rows added to the big stay, e.g. 10M, 1e6")
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help=f"of {', '.join(LAYOUTS)}")
    parser.add_argument("--patients", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=ROOT / "data" / "benchmarks")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_stage(args.root, args.out)))
        return

    rows = _parse_size(args.rows)
    layouts = [name.strip() for name in args.layouts.split(",") if name.strip()]
    unknown = sorted(set(layouts) - set(LAYOUTS))
    if unknown:
        parser.error(f"unknown layout(s) {unknown}; known: {', '.join(LAYOUTS)}")
    base = ensure_demo(args.cache, args.patients, args.seed)
    roots: list[tuple[str, Path, dict[str, Any]]] = [("demo export alone", base, {})]
    for name in layouts:
        root, info = ensure_huge(base, args.cache, rows, name, args.seed)
        roots.append((f"+ {_size_label(rows)} rows, {name}", root, info))
    load_before = os.getloadavg()
    results = [(name, info, run_child(root)) for name, root, info in roots]
    load_after = os.getloadavg()
    print(
        f"\nehr stage with one huge stay: {os.cpu_count()} CPUs, load average "
        f"{load_before[0]:.1f} before / {load_after[0]:.1f} after"
    )
    for name, info, result in results:
        report(name, info, result)


if __name__ == "__main__":
    main()

"""Scratch files are named after their process; the next build deletes those of killed runs (a real
process killed with SIGKILL here), never a live run's nor another kind's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from mindkd.io.scratch import new_scratch_file, remove_stale_scratch
from mindkd.processing.timeseries import discard_scratch, open_scratch

HOLD_SCRATCH = """
import sys
from mindkd.processing.timeseries import open_scratch

values = open_scratch((4, 3, 2), {folder!r}, "ehr_hourly_")
values[:] = 1.0
values.flush()
print(values.filename, flush=True)
sys.stdin.read()  # hold the scratch until killed
"""


def test_the_next_hourly_build_removes_a_killed_runs_scratch(tmp_path: Path) -> None:
    run = subprocess.Popen(
        [sys.executable, "-c", HOLD_SCRATCH.format(folder=str(tmp_path))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        killed = Path(run.stdout.readline().strip())
    finally:
        run.kill()  # SIGKILL: no finalizer, no cleanup
        run.communicate(timeout=60)
    assert killed.name.startswith(f"ehr_hourly_{run.pid}-") and killed.suffix == ".f32"
    assert killed.stat().st_size == 4 * 3 * 2 * 4  # left behind, full size
    live = tmp_path / f"ehr_hourly_{os.getpid()}-livexyz1.f32"  # this process: a live run
    other = tmp_path / f"cxr_images_{run.pid}-abcdef12.u8"  # the decode cleans its own
    for path in (live, other):
        path.write_bytes(b"\0" * 16)

    values = open_scratch((2, 2, 2), str(tmp_path), "ehr_hourly_")
    assert not killed.exists()
    assert live.exists() and other.exists()
    assert Path(values.filename).name.startswith(f"ehr_hourly_{os.getpid()}-")
    discard_scratch(values)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])


def test_names_that_are_not_scratch_are_left_alone(tmp_path: Path) -> None:
    keep = ["ehr_hourly_.f32", "ehr_hourly_abc.f32", "ehr_hourly_999999999-x.f64", "notes.txt"]
    for name in keep:
        (tmp_path / name).write_bytes(b"x")
    dead = tmp_path / "ehr_hourly_999999999-a_b1.f32"  # no such pid
    dead.write_bytes(b"x")
    assert remove_stale_scratch(tmp_path, "ehr_hourly_", ".f32") == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)
    descriptor, path = new_scratch_file("ehr_hourly_", ".f32", tmp_path)
    os.close(descriptor)
    assert Path(path).parent == tmp_path
    assert np.fromfile(path, dtype=np.uint8).size == 0


def test_a_killed_runs_scratch_folder_is_removed_by_the_next(tmp_path: Path) -> None:
    from mindkd.io.scratch import scratch_folder

    dead = tmp_path / "ehr_slices_999999999-abc123"  # no such pid: a killed run's spill folder
    (dead / "sub").mkdir(parents=True)
    (dead / "sub" / "part.parquet").write_bytes(b"x" * 100)
    live = tmp_path / f"ehr_slices_{os.getpid()}-def456"
    live.mkdir()
    with scratch_folder("ehr_slices_", tmp_path) as folder:
        assert folder.is_dir() and folder.name.startswith(f"ehr_slices_{os.getpid()}-")
        assert not dead.exists() and live.is_dir()
    assert not folder.exists()  # its own folder is gone on exit

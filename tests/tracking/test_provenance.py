"""Provenance tags: git state, the raw-data fingerprint, package versions, the kedro command."""

from __future__ import annotations

import builtins
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import mindkd
from mindkd.tracking.provenance import (
    data_fingerprint,
    git_state,
    is_sequential,
    kedro_command,
    package_versions,
    runtime_params_option,
)

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(path: Path, *args: str) -> str:
    command = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


@needs_git
def test_git_state_is_the_head_commit_and_turns_dirty_on_any_change(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    _git(tmp_path, "add", "a.py")
    _git(tmp_path, "commit", "-q", "-m", "one")
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert git_state(tmp_path) == {"commit": head, "dirty": "false"}
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_state(tmp_path) == {"commit": head, "dirty": "true"}
    _git(tmp_path, "checkout", "-q", "a.py")
    (tmp_path / "new.py").write_text("")
    assert git_state(tmp_path)["dirty"] == "true"


def test_git_state_outside_a_repository_is_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert git_state(tmp_path / "no-such-folder") == {}
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_state(tmp_path) == {}
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all
    assert git_state(tmp_path) == {}


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    ehr = tmp_path / "mimic-iv"
    cxr = tmp_path / "mimic-cxr-jpg"
    (ehr / "icu").mkdir(parents=True)
    (cxr / "files" / "p10" / "p10000032").mkdir(parents=True)
    (ehr / "icu" / "icustays.csv.gz").write_bytes(b"a" * 100)
    (ehr / "hosp.csv").write_bytes(b"b" * 10)
    (cxr / "files" / "p10" / "p10000032" / "x.jpg").write_bytes(b"c" * 50)
    return {"mimic_iv_dir": ehr, "mimic_cxr_jpg_dir": cxr}


def test_fingerprint_is_stable_and_counts_every_file(roots: dict[str, Path]) -> None:
    first, files = data_fingerprint(roots)
    assert files == 3
    assert len(first) == 16 and int(first, 16) >= 0
    assert data_fingerprint(dict(reversed(roots.items()))) == (first, 3)


def test_fingerprint_changes_with_size_mtime_added_or_removed_files(roots: dict[str, Path]) -> None:
    base, _ = data_fingerprint(roots)
    image = roots["mimic_cxr_jpg_dir"] / "files" / "p10" / "p10000032" / "x.jpg"
    image.write_bytes(b"c" * 51)
    resized, _ = data_fingerprint(roots)
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched, _ = data_fingerprint(roots)
    (roots["mimic_iv_dir"] / "extra.csv").write_bytes(b"")
    added, files = data_fingerprint(roots)
    assert len({base, resized, touched, added}) == 4 and files == 4
    (roots["mimic_iv_dir"] / "extra.csv").unlink()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert data_fingerprint(roots) == (resized, 3)


def test_fingerprint_never_reads_file_contents(
    roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    image = roots["mimic_cxr_jpg_dir"] / "files" / "p10" / "p10000032" / "x.jpg"
    before = data_fingerprint(roots)
    stat = image.stat()
    image.write_bytes(b"d" * 50)  # same size, other bytes, old mtime back
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"opened {args[0]}")

    monkeypatch.setattr(builtins, "open", no_open)
    assert data_fingerprint(roots) == before


def test_missing_root_is_fingerprinted_not_an_error(roots: dict[str, Path], tmp_path: Path) -> None:
    present, _ = data_fingerprint(roots)
    gone = {**roots, "mimic_cxr_jpg_dir": tmp_path / "absent"}
    missing, files = data_fingerprint(gone)
    assert files == 2 and missing != present
    assert data_fingerprint({}) == (data_fingerprint({})[0], 0)


def test_package_versions() -> None:
    versions = package_versions(("mindkd", "kedro", "no-such-package-xyz"))
    assert versions["mindkd"] == mindkd.__version__
    assert versions["kedro"].startswith("1.")
    assert versions["no-such-package-xyz"] == "missing"
    assert versions["python"].count(".") == 2


RUN_PARAMS = {
    "run_id": "2026-11-24T10.00.00.000Z",
    "env": "local",
    "tags": None,
    "from_nodes": None,
    "to_nodes": None,
    "node_names": None,
    "from_inputs": None,
    "to_outputs": None,
    "load_versions": None,
    "runtime_params": {},
    "pipeline_names": None,
    "namespaces": None,
    "runner": "None",
    "only_missing_outputs": False,
}


def test_kedro_command_of_a_plain_run() -> None:
    assert kedro_command(RUN_PARAMS) == "kedro run"


def test_kedro_command_keeps_every_option_and_the_runtime_params() -> None:
    run_params = {
        **RUN_PARAMS,
        "env": "test",
        "pipeline_names": ["teachers", "distill"],
        "namespaces": ["ihm"],
        "tags": ["distill_mind"],
        "to_outputs": ["ihm.distill.evaluation"],
        "load_versions": {"ihm.teacher_logits": "2026-11-01T00.00.00.000Z"},
        "runtime_params": {"ihm": {"distill": {"alpha": 0.3, "fit": {"seed": 2}}}, "x": "y"},
        "runner": "<kedro.runner.thread_runner.ThreadRunner object at 0x7f>",
        "only_missing_outputs": True,
    }
    assert kedro_command(run_params) == (
        "kedro run --env=test --pipelines=teachers,distill --namespaces=ihm --tags=distill_mind "
        "--to-outputs=ihm.distill.evaluation "
        "--load-versions=ihm.teacher_logits:2026-11-01T00.00.00.000Z --runner=ThreadRunner "
        '--only-missing-outputs --params="ihm.distill.alpha=0.3,ihm.distill.fit.seed=2,x=y"'
    )


def test_runtime_params_option_flattens_sorted() -> None:
    assert runtime_params_option(None) == ""
    assert runtime_params_option({"b": 1, "a": {"c": "x", "b": True}}) == "a.b=True,a.c=x,b=1"


@pytest.mark.parametrize(
    ("runner", "sequential"),
    [
        (None, True),
        ("None", True),
        ("<kedro.runner.sequential_runner.SequentialRunner object at 0x7f>", True),
        ("<kedro.runner.thread_runner.ThreadRunner object at 0x7f>", False),
        ("<kedro.runner.parallel_runner.ParallelRunner object at 0x7f>", False),
    ],
)
def test_is_sequential(runner: str | None, sequential: bool) -> None:
    assert is_sequential({"runner": runner}) is sequential


@needs_git
def test_the_files_a_run_writes_beside_the_project_do_not_make_it_dirty() -> None:
    """The MLflow store's lock (``tracking.locks.store_lock``) sits next to ``mlflow.db`` in the
    project root; untracked and not ignored, it marked every run ``git_dirty: true``."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    for name in (".mlflow.db.lock", ".mlflow-real-demo.db.lock", "mlflow.db", "data/x.parquet"):
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", name], cwd=root, check=False
        ).returncode
        assert ignored == 0, f"{name} is not ignored by .gitignore"

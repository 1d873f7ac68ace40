"""What a run was made from: code (git), raw data (a fingerprint), packages and the command.

Every function here is cheap and never fails a run: a project outside git has no git tags, a
missing data folder is fingerprinted as missing. Nothing here reads the contents of a data file.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("mindkd", "kedro", "kedro-mlflow", "mlflow", "torch")
_GIT_TIMEOUT_S = 10


def git_state(path: Path) -> dict[str, str]:
    """``{"commit": sha, "dirty": "true"|"false"}`` of the work tree holding ``path``; ``{}`` outside git.

    ``dirty`` counts modified, staged and untracked files (ignored ones, like ``data/``, do not).
    """
    try:
        commit = _git(path, "rev-parse", "HEAD")
        changes = _git(path, "status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit, "dirty": str(bool(changes)).lower()}


def _git(path: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(path), *args],
        capture_output=True,
        text=True,
        timeout=_GIT_TIMEOUT_S,
        check=True,
    )
    return done.stdout.strip()


def data_fingerprint(roots: Mapping[str, Path]) -> tuple[str, int]:
    """A short hash of every file's relative path, size and modification time under each root.

    ``roots`` maps a label (``mimic_iv_dir``) to a folder. Returns ``(hash, file count)``. Only
    directory entries are read (``os.scandir``), never file contents, so multi-GB exports cost one
    walk. The hash changes when a file is added, removed, resized or rewritten (its mtime); a copy
    that does not keep mtimes fingerprints differently. A missing root hashes as ``missing``.
    """
    digest = hashlib.sha256()
    files = 0
    for label in sorted(roots):
        root = Path(roots[label])
        if not root.is_dir():
            digest.update(f"{label}\tmissing\n".encode())
            continue
        for relative, size, mtime_ns in sorted(_walk(root, root)):
            digest.update(f"{label}\t{relative}\t{size}\t{mtime_ns}\n".encode())
            files += 1
    return digest.hexdigest()[:16], files


def _walk(root: Path, folder: Path) -> Iterator[tuple[str, int, int]]:
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=True):
                yield from _walk(root, Path(entry.path))
            elif entry.is_file(follow_symlinks=True):
                stat = entry.stat()
                relative = Path(entry.path).relative_to(root).as_posix()
                yield relative, stat.st_size, stat.st_mtime_ns


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` (``missing`` when one is not installed) and Python's."""
    versions = {"python": platform.python_version()}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "missing"
    return versions


def runtime_params_option(runtime_params: Mapping[str, Any] | None) -> str:
    """Runtime parameters as ``kedro run --params`` writes them: ``a.b=1,c=x`` (sorted keys)."""
    flat = _flatten(runtime_params or {})
    return ",".join(f"{key}={value}" for key, value in sorted(flat.items()))


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def kedro_command(run_params: Mapping[str, Any], default_env: str | None = "local") -> str:
    """The ``kedro run`` command line that repeats a session, from Kedro's ``run_params``.

    Unlike kedro-mlflow's ``kedro_command`` tag it keeps ``--namespaces``, ``--to-outputs``,
    ``--params``, ``--env`` (when not ``default_env``), ``--runner`` and ``--only-missing-outputs``.
    Lists in runtime parameters are written as Python lists: ``--params`` cannot express them, so
    such a command needs those keys in a config file.
    """
    parts = ["kedro", "run"]
    env = run_params.get("env")
    if env and env != default_env:
        parts.append(f"--env={env}")
    for option, key in (
        ("--pipelines", "pipeline_names"),
        ("--namespaces", "namespaces"),
        ("--tags", "tags"),
        ("--from-nodes", "from_nodes"),
        ("--to-nodes", "to_nodes"),
        ("--nodes", "node_names"),
        ("--from-inputs", "from_inputs"),
        ("--to-outputs", "to_outputs"),
    ):
        values = run_params.get(key)
        if values:
            parts.append(f"{option}={','.join(values)}")
    versions = run_params.get("load_versions")
    if versions:
        parts.append("--load-versions=" + ",".join(f"{k}:{v}" for k, v in versions.items()))
    runner = _runner_name(run_params.get("runner"))
    if runner and runner != "SequentialRunner":
        parts.append(f"--runner={runner}")
    if run_params.get("only_missing_outputs"):
        parts.append("--only-missing-outputs")
    params = runtime_params_option(run_params.get("runtime_params"))
    if params:
        parts.append(f'--params="{params}"')
    return " ".join(parts)


def _runner_name(runner: Any) -> str | None:
    """``SequentialRunner`` from Kedro's record of the runner (``None`` or ``<...Runner object at>``)."""
    if runner is None or str(runner) == "None":
        return None
    text = str(runner)
    for token in text.replace("<", " ").replace(">", " ").replace(".", " ").split():
        if token.endswith("Runner"):
            return token
    return text


def is_sequential(run_params: Mapping[str, Any]) -> bool:
    """Whether the session runs with Kedro's SequentialRunner (the default when none is given)."""
    return _runner_name(run_params.get("runner")) in (None, "SequentialRunner")

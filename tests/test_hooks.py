"""The project hook's parameter plumbing (the run organisation is tested through real sessions in
``tests/pipelines/test_mlflow_runs.py``)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader
from pydantic import BaseModel

from mindkd.hooks import TrackingHook, anchor_tracking_uri, plain_params, plain_tree

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class _Fit(BaseModel):
    epochs: int = 3
    monitor: str = "val/auroc"


class _Distill(BaseModel):
    alpha: float = 0.5
    fit: _Fit = _Fit()


@dataclass
class _Window:
    hours: int = 48


def test_plain_params_and_tree_turn_typed_values_into_dicts() -> None:
    assert plain_params(_Distill()) == {"alpha": 0.5, "fit": {"epochs": 3, "monitor": "val/auroc"}}
    assert plain_params(_Window()) == {"hours": 48}
    assert plain_params(_Window) is _Window  # a class is not a value
    tree = {"ihm": {"distill": _Distill(), "windows": [_Window(), 2]}, "seed": 1}
    assert plain_tree(tree) == {
        "ihm": {
            "distill": {"alpha": 0.5, "fit": {"epochs": 3, "monitor": "val/auroc"}},
            "windows": [{"hours": 48}, 2],
        },
        "seed": 1,
    }


def test_a_new_hook_owns_no_run() -> None:
    hook = TrackingHook()
    assert hook._primary is None and hook._runs == {} and not hook._switching


def _loader(conf: Path) -> OmegaConfigLoader:
    return OmegaConfigLoader(
        conf_source=str(conf),
        base_env="base",
        default_run_env="local",
        merge_strategy={"globals": "soft"},
    )


def test_a_relative_sqlite_store_is_anchored_at_the_project_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "project" / "conf"
    shutil.copytree(PROJECT_ROOT / "conf" / "base", conf / "base")
    (conf / "local").mkdir()
    elsewhere = tmp_path / "notebooks"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loader = _loader(conf)
    anchor_tracking_uri(loader, tmp_path / "project")
    uri = loader["mlflow"]["server"]["mlflow_tracking_uri"]
    assert uri == f"sqlite:///{(tmp_path / 'project' / 'mlflow.db').resolve()}"
    assert loader["mlflow"]["ui"]["host"] == "127.0.0.1"  # the rest of mlflow.yml is kept

    (conf / "local" / "globals.yml").write_text("mlflow_tracking_uri: sqlite:////srv/runs.db\n")
    loader = _loader(conf)
    anchor_tracking_uri(loader, tmp_path / "project")
    assert loader["mlflow"]["server"]["mlflow_tracking_uri"] == "sqlite:////srv/runs.db"
    assert not list(elsewhere.iterdir())  # nothing was created in the working directory


def test_a_signal_lost_in_a_finaliser_is_raised_at_the_next_node_boundary() -> None:
    """A Ctrl-C whose KeyboardInterrupt a ``__del__`` swallowed still stops the run."""
    import gc
    import signal

    from mindkd import hooks

    class Finaliser:
        def __del__(self) -> None:
            hooks._interrupt_on_sigint(signal.SIGINT, None)  # raised here, and dropped by Python

    hooks._INTERRUPTS.clear()
    try:
        Finaliser()
        gc.collect()
        assert hooks._INTERRUPTS == [signal.SIGINT]  # the run would have gone on
        with pytest.raises(KeyboardInterrupt):
            hooks._raise_if_interrupted()
        hooks._INTERRUPTS[:] = [signal.SIGTERM]
        with pytest.raises(SystemExit) as exited:
            hooks._raise_if_interrupted()
        assert exited.value.code == 128 + signal.SIGTERM
    finally:
        hooks._INTERRUPTS.clear()
    hooks._raise_if_interrupted()  # nothing received: nothing raised

"""The project hook's parameter plumbing (the run organisation is tested through real sessions in
``tests/pipelines/test_mlflow_runs.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from mindkd.hooks import TrackingHook, plain_params, plain_tree


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

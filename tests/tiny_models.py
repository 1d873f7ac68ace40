"""Runtime params that make teachers + distill seconds long (shared by the pipeline tests)."""

from __future__ import annotations

from typing import Any

from mindkd.tasks import TASKS


def _tiny_fit(**overrides: Any) -> dict[str, Any]:
    return {"epochs": 1, "progress": False, **overrides}


def tiny_model_params() -> dict[str, Any]:
    """Runtime params (nested, as Kedro wants them in Python) for a seconds-long teachers+distill run.

    One epoch everywhere, finetune-only CXR teachers, every network a few thousand parameters; the
    bootstrap and latency settings stay at their validated minimums (1000 resamples, 50 calls).
    """
    cxr_members = {
        "resnet18": {"settings": {"width": 0.125}},
        "resnet34": {"settings": {"width": 0.125}},
        "densenet": {
            "settings": {"growth_rate": 4, "num_init_features": 8, "block_config": [1, 1]}
        },
    }
    teachers = {
        "ehr": {
            "fit": _tiny_fit(),
            "members": {
                "lstm_small": {"settings": {"hidden": 8}},
                "lstm_large": {"settings": {"hidden": 8, "layers": 1, "dropout": 0.0}},
                "transformer": {"settings": {"d_model": 8, "heads": 2, "layers": 1}},
            },
        },
        "cxr": {"fit": _tiny_fit(), "members": cxr_members},
    }
    small = {
        "ehr_encoder": {"settings": {"hidden": 8}},
        "cxr_encoder": {"settings": {"width": 0.125}},
    }
    distill = {
        "max_teacher_fraction": 100.0,
        "student": {**small, "fusion_settings": {"hidden": 8}},
        "baselines": {
            "zero_filled": {**small, "fusion_settings": {"hidden": 8}},
            "medfuse": {
                "ehr_encoder": {"settings": {"hidden": 8, "layers": 1, "dropout": 0.0}},
                "cxr_encoder": {"settings": {"width": 0.125}},
                "token_dim": 8,
                "hidden": 8,
            },
        },
        "fit": _tiny_fit(),
    }
    return {
        "cxr_pretrain": {"recipe": "finetune_only", "members": cxr_members},
        **{task: {"teachers": teachers, "distill": distill} for task in TASKS},
    }

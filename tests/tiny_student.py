"""A tiny MIND student for serving and registry tests: its card from the distill stage's own
``DistillParams.model_spec``, random weights from ``build_network``, and prepared stays in the
pyfunc's format."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from mindkd.models.spec import EhrInput, ImageNormaliser, build_network
from mindkd.pipelines.distill.params import DistillParams
from mindkd.processing.normalise import CategoricalEncoding, feature_layout
from mindkd.tasks import TaskDefinition
from mindkd.training.spec import ModelSpec

IMAGE = 16
CHANNELS = 34  # ehr.categorical: continuous
NORMALISER = ImageNormaliser(mean=0.35, std=0.2, image_size=IMAGE, images=10)
IHM = TaskDefinition(name="ihm", kind="binary", labels=("y",), window="first_hours", hours=48)


def distill_params(routing: str = "fused", **student: Any) -> DistillParams:
    """Small student settings (a few thousand parameters), as parameters_distill.yml holds them."""
    ehr = {"name": "gru", "settings": {"hidden": 8}}
    cxr = {"name": "resnet18", "settings": {"width": 0.125, "stem": "small"}}
    model = {"ehr_encoder": ehr, "cxr_encoder": cxr, "fusion": "concat"}
    model |= {"fusion_settings": {"hidden": 8}, **student}
    return DistillParams.model_validate(
        {
            "student": model,
            "baselines": {
                "zero_filled": {"ehr_encoder": ehr, "cxr_encoder": cxr},
                "medfuse": {"ehr_encoder": ehr, "cxr_encoder": cxr, "token_dim": 8, "hidden": 8},
            },
            "fit": {"device": "cpu", "progress": False},
            "routing": routing,
        }
    )


def ehr_input(encoding: CategoricalEncoding = "continuous") -> EhrInput:
    """The EHR input of a ``<task>.timeseries`` store prepared with ``ehr.categorical: encoding``."""
    return EhrInput.model_validate(feature_layout(encoding).to_dict())


def student_card(
    task: TaskDefinition = IHM,
    params: DistillParams | None = None,
    variant: str = "mind",
    encoding: CategoricalEncoding = "continuous",
) -> dict[str, Any]:
    """The model card the distill stage writes as ``<task>.distill.<variant>.spec``."""
    spec = (params or distill_params()).model_spec(
        variant, task, {}, NORMALISER, ehr_input(encoding)
    )
    return spec.model_dump(mode="json")


def trained_weights(card: dict[str, Any], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights of the card's network, built by ``mindkd.models.spec.build_network``."""
    torch.manual_seed(seed)
    model = build_network(ModelSpec.model_validate(card))
    with torch.no_grad():  # batch-norm statistics away from the defaults, so they matter
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0.0, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    return {k: v.clone() for k, v in model.state_dict().items()}


def stays(
    n: int, paired: list[bool], seed: int = 0, hours: int = 6, channels: int = CHANNELS
) -> pd.DataFrame:
    """``n`` prepared stays (``channels`` columns per hour, the last 17 masks; lengths ``hours``
    down to 2), images where paired."""
    rng = np.random.default_rng(seed)
    masks = len(feature_layout("continuous").features) // 2
    rows = []
    for i in range(n):
        length = max(hours - i, 2)
        values = rng.normal(size=(length, channels)).astype(np.float32)
        values[:, channels - masks :] = rng.integers(0, 2, size=(length, masks))
        image = rng.integers(0, 256, size=(IMAGE, IMAGE), dtype=np.uint8) if paired[i] else None
        rows.append({"stay_id": 1000 + i, "timeseries": values, "image": image})
    return pd.DataFrame(rows)

"""Typed parameters of the ``tune`` pipeline (``parameters_tune.yml``, key ``<task>.tune``).

``TuneParams``: the study settings (``mindkd.training.tuning.StudySettings``: trials, sampler seed,
pruner), the same for every method, and ``spaces.<method>``: dotted keys of ``<task>.distill`` with
a ``Distribution`` each. A method may search only its own keys: MIND the top-level loss,
``combine``, ``routing``, ``fit.*`` and ``student.*``; a baseline ``baselines.<method>.*``.
``fit.seed`` is never searched. ``check_against`` (run by the project's parameter check before any
node) validates both ends of every range as a distill setting, so a misspelt or impossible key
fails at start-up.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from mindkd.pipelines.distill.params import DistillParams
from mindkd.training.spec import TUNED
from mindkd.training.tuning import Distribution, StudySettings, with_values

OWN_KEYS: dict[str, tuple[str, ...]] = {  # the keys (or key prefixes) each method may search
    "mind": (
        "alpha",
        "temperature",
        "distance",
        "fused_target",
        "lambda_",
        "weight_",
        "combine",
        "routing",
        "fit.",
        "student.",
    ),
    **{v: (f"baselines.{v}.",) for v in TUNED if v != "mind"},
}
NEVER = ("fit.seed",)


class TuneParams(StudySettings):
    """``<task>.tune``: the study settings, the same for every method, and each method's space."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spaces: dict[str, dict[str, Distribution]] = Field(
        description="method -> dotted key of <task>.distill -> distribution"
    )

    @model_validator(mode="after")
    def _own_keys(self) -> TuneParams:
        for method, space in self.spaces.items():
            if method not in TUNED:
                raise ValueError(f"spaces.{method}: not a method; methods: {TUNED}")
            if not space:
                raise ValueError(f"spaces.{method}: empty; remove it or give it keys")
            for key in space:
                if key in NEVER or not key.startswith(OWN_KEYS[method]):
                    raise ValueError(
                        f"spaces.{method}.{key}: {method} may search only its own keys "
                        f"({', '.join(OWN_KEYS[method])}…), never {', '.join(NEVER)}"
                    )
        return self

    def check_against(self, distill_params: DistillParams) -> None:
        """Every searched key exists in ``distill_params`` and each end of its range validates."""
        tree = distill_params.model_dump()
        for method, space in self.spaces.items():
            for key, dist in space.items():
                points = dist.choices if dist.choices is not None else (dist.low, dist.high)
                for point in points:
                    value = int(point) if dist.integer else point
                    try:
                        DistillParams.model_validate(with_values(tree, {key: value}))
                    except (KeyError, ValueError) as error:
                        raise ValueError(
                            f"spaces.{method}.{key} = {value!r}: not a valid distill setting "
                            f"({error})"
                        ) from error

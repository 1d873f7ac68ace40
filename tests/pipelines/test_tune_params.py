"""The tune block (``<task>.tune``) and the per-method settings it searches (``<task>.distill``).

A search key must be a real distill setting and the searched method's own; a baseline's own
settings reach its model card and no other model's; the zero-filled baseline fills a missing X-ray
with the image its setting names.
"""

from __future__ import annotations

import copy
import shutil
from typing import Any

import pytest
import torch
import yaml
from pydantic import ValidationError

from kedro_harness import PROJECT_ROOT
from mindkd import settings, tasks
from mindkd.models.batch import MultiModalBatch
from mindkd.models.spec import EhrInput, ImageNormaliser, build_network
from mindkd.pipelines.distill.params import DistillParams
from mindkd.pipelines.params import find_problems
from mindkd.pipelines.tune.params import TuneParams
from mindkd.tasks import TASKS

IMAGE = ImageNormaliser(mean=0.4, std=0.2, image_size=32, images=10)
EHR = EhrInput(encoding="continuous", features=tuple(f"c{i}" for i in range(5)))
SIZES = {"ensembles_total": 10**9}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    conf = tmp_path_factory.mktemp("conf") / "conf"
    shutil.copytree(PROJECT_ROOT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    loader = settings.CONFIG_LOADER_CLASS(str(conf), **settings.CONFIG_LOADER_ARGS, env="local")
    return loader["parameters"]


def _problems(base: dict[str, Any], task: str, tune: dict[str, Any]) -> list[str]:
    params = copy.deepcopy(base)
    params[task]["tune"] = tune
    return [str(p) for p in find_problems(params, tasks.TEACHER_MEMBERS)]


def _with_space(base: dict[str, Any], method: str, space: dict[str, Any]) -> dict[str, Any]:
    tune = copy.deepcopy(base["ihm"]["tune"])
    tune["spaces"][method] = space
    return tune


def test_the_committed_tune_block_gives_every_method_the_same_budget(base: dict[str, Any]) -> None:
    for task in TASKS:
        tune = TuneParams.model_validate(base[task]["tune"])
        assert set(tune.spaces) == {"mind", "no_kd", "zero_filled", "medfuse"}
        shared = {"lr", "weight_decay", "dropout"}
        ranges = {}
        for method, space in tune.spaces.items():
            named = {key.rsplit(".", 1)[-1].removeprefix("head_"): d for key, d in space.items()}
            assert shared <= set(named), f"{task}.tune.spaces.{method} misses one of {shared}"
            ranges[method] = sorted((n, named[n].low, named[n].high, named[n].log) for n in shared)
        assert len({tuple(r) for r in ranges.values()}) == 1, ranges


@pytest.mark.parametrize(
    ("method", "key"),
    [
        ("mind", "baselines.no_kd.fit.lr"),  # another method's setting
        ("no_kd", "fit.lr"),  # MIND's optimiser: a no-KD search would move MIND too
        ("zero_filled", "baselines.medfuse.dropout"),
        ("mind", "fit.seed"),  # the seed is not a hyperparameter
        ("mind", "evaluation.n_bootstrap"),
    ],
)
def test_a_method_may_search_only_its_own_settings(
    base: dict[str, Any], method: str, key: str
) -> None:
    problems = _problems(base, "ihm", _with_space(base, method, {key: {"low": 0.1, "high": 0.5}}))
    assert any(f"spaces.{method}.{key}" in p and "only its own keys" in p for p in problems)


@pytest.mark.parametrize(
    ("key", "dist", "shown"),
    [
        ("fit.lrr", {"low": 1e-4, "high": 1e-3}, "fit.lrr"),  # misspelt: would be ignored
        ("student.head_dropout", {"low": 0.0, "high": 1.0}, "= 1.0"),  # outside [0, 1)
        ("distance", {"choices": ["bce", "cosine"]}, "'cosine'"),
    ],
)
def test_a_searched_key_must_be_a_valid_distill_setting_at_every_end_of_its_range(
    base: dict[str, Any], key: str, dist: dict[str, Any], shown: str
) -> None:
    problems = _problems(base, "pheno", _with_space(base, "mind", {key: dist}))
    assert any(p.startswith("pheno") and shown in p for p in problems), problems


def test_an_unknown_method_or_an_empty_space_is_refused(base: dict[str, Any]) -> None:
    tune = copy.deepcopy(base["ihm"]["tune"])
    tune["spaces"]["mind_v2"] = {"alpha": {"low": 0.1, "high": 0.2}}
    assert any("spaces.mind_v2: not a method" in p for p in _problems(base, "ihm", tune))
    assert any("empty" in p for p in _problems(base, "ihm", _with_space(base, "no_kd", {})))


# ------------------------------------------------------------------ the settings reach the cards
def _distill(base: dict[str, Any], **baselines: Any) -> DistillParams:
    """The committed ihm distill block without the baselines' own settings, then ``baselines``."""
    params = copy.deepcopy(base["ihm"]["distill"])
    params["baselines"].pop("no_kd", None)
    for block in params["baselines"].values():
        block.pop("fit", None)
    for name, update in baselines.items():
        params["baselines"].setdefault(name, {}).update(update)
    return DistillParams.model_validate(params)


def _card(params: DistillParams, variant: str) -> Any:
    task = tasks.TaskParams.model_validate({"name": "ihm"}).definition
    return params.model_spec(variant, task, SIZES, IMAGE, EHR)


def test_a_baselines_own_settings_reach_its_card_and_no_other(base: dict[str, Any]) -> None:
    plain = _distill(base)
    tuned = _distill(
        base,
        no_kd={"head_dropout": 0.37, "fit": {"lr": 2.5e-3}},
        zero_filled={"fit": {"weight_decay": 0.02}},
        medfuse={"fit": {"lr": 4e-4, "weight_decay": 0.003}},
    )
    no_kd, mind = _card(tuned, "no_kd"), _card(tuned, "mind")
    assert (no_kd.head_dropout, no_kd.fit.lr) == (0.37, 2.5e-3)
    assert no_kd.fit.weight_decay == plain.fit.weight_decay  # not overridden: the shared value
    assert no_kd.loss.alpha == 0.0
    assert _card(tuned, "zero_filled").fit.weight_decay == 0.02
    assert _card(tuned, "zero_filled").fit.lr == plain.fit.lr
    assert (_card(tuned, "medfuse").fit.lr, _card(tuned, "medfuse").fit.weight_decay) == (
        4e-4,
        0.003,
    )
    # MIND's card is the same with or without the baselines' settings
    assert mind == _card(plain, "mind")
    # and a no-KD student without its own settings is MIND's student with alpha = 0
    plain_no_kd = _card(plain, "no_kd")
    assert plain_no_kd.head_dropout == plain.student.head_dropout
    assert plain_no_kd.fit == plain.fit


def test_a_baseline_fit_override_takes_only_optimiser_keys(base: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="seed"):
        _distill(base, no_kd={"fit": {"seed": 3}})


# ------------------------------------------------------------------ the zero-filled image
def _zero_filled(base: dict[str, Any], missing_image: str) -> torch.nn.Module:
    params = _distill(base, zero_filled={"missing_image": missing_image})
    card = _card(params, "zero_filled")
    assert card.missing_image == missing_image
    torch.manual_seed(0)
    return build_network(card).eval()


def _batch(images: torch.Tensor | None) -> MultiModalBatch:
    torch.manual_seed(1)
    ehr = torch.randn(2, 6, 5)
    index = torch.arange(2)
    return MultiModalBatch(
        size=2,
        ehr=ehr,
        ehr_lengths=torch.tensor([6, 6]),
        ehr_index=index,
        cxr=images,
        cxr_index=None if images is None else index,
    )


@pytest.mark.parametrize(("missing_image", "pixel"), [("black", 0.0), ("mean", IMAGE.mean)])
def test_a_missing_xray_is_the_image_the_setting_names(
    base: dict[str, Any], missing_image: str, pixel: float
) -> None:
    """``black``: raw pixels 0; ``mean``: the train-mean grey. The model given no image must
    predict exactly what it predicts given that image, normalised as every image is."""
    model = _zero_filled(base, missing_image)
    image = torch.full((2, 1, 32, 32), (pixel - IMAGE.mean) / IMAGE.std)
    with torch.no_grad():
        missing = model(_batch(None))["fused"].logits
        given = model(_batch(image))["fused"].logits
        grey = model(_batch(torch.full((2, 1, 32, 32), 0.5)))["fused"].logits
    torch.testing.assert_close(missing, given)
    assert not torch.allclose(missing, grey)


def test_a_card_written_before_the_setting_builds_the_train_mean_image(
    base: dict[str, Any],
) -> None:
    card = _card(_distill(base), "zero_filled").model_dump(mode="json")
    del card["missing_image"]
    from mindkd.training.spec import ModelSpec

    old = ModelSpec.model_validate(card)
    assert old.missing_image is None and old.missing_fill == 0.0
    yaml.safe_dump(card)  # still a plain card

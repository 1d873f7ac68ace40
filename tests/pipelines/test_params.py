"""The project's parameter schema (``mindkd.pipelines.params``) on configs merged by the project's
own loader: the committed configs pass; unknown keys, invalid values and member slots other than
``mindkd.tasks.TEACHER_MEMBERS`` are all reported at once, with a suggestion and where each was set.

Real sessions and ``kedro run`` refusing such parameters: ``tests/test_parameter_check.py``.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from kedro_harness import PROJECT_ROOT
from mindkd import settings, tasks
from mindkd.pipelines.params import (
    ConfigSources,
    ParameterError,
    check_parameters,
    find_problems,
    project_params,
)
from mindkd.tasks import AVDIGITS, TASKS

MEMBERS = tasks.TEACHER_MEMBERS


def _loader(tmp: Path, local: dict[str, Any] | None = None, env: str = "local", **runtime: Any):
    """The project's loader (mindkd.settings) on a copy of conf/ with ``local`` as
    ``conf/local/parameters.yml``, and ``runtime`` as ``--params``."""
    conf = tmp / "conf"
    shutil.copytree(PROJECT_ROOT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    if local is not None:
        (conf / "local" / "parameters.yml").write_text(yaml.safe_dump(local))
    return settings.CONFIG_LOADER_CLASS(
        str(conf), **settings.CONFIG_LOADER_ARGS, env=env, runtime_params=runtime or None
    )


def _refusal(loader: Any) -> ParameterError:
    with pytest.raises(ParameterError) as caught:
        check_parameters(loader["parameters"], MEMBERS, ConfigSources.from_loader(loader))
    return caught.value


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _loader(tmp_path_factory.mktemp("base"))["parameters"]


# ------------------------------------------------------------------------ the committed configs
@pytest.mark.parametrize("env", ["local", "real_demo"])
def test_the_committed_configs_pass(tmp_path: Path, env: str) -> None:
    """conf/base alone (an empty conf/local) and conf/real_demo over conf/base; the real-scale file
    over conf/base is checked in tests/test_real_scale_config.py, loaded as that test loads it."""
    loader = _loader(tmp_path, env=env)
    assert find_problems(loader["parameters"], MEMBERS) == []
    validated = project_params().model_validate(loader["parameters"])
    assert set(type(validated).model_fields) == {
        "ehr",
        "split",
        "cxr",
        "cxr_pretrain",
        *TASKS,
        AVDIGITS,
    }
    monitor = validated.ihm.distill.fit.monitor  # type: ignore[attr-defined]
    assert monitor == ("val/loss" if env == "real_demo" else "val/auroc")


def test_the_schema_knows_each_task_namespace_and_its_four_blocks() -> None:
    schema = project_params()
    assert list(schema.model_fields) == ["ehr", "split", "cxr", "cxr_pretrain", *TASKS, AVDIGITS]
    assert "source" in schema.model_fields[AVDIGITS].annotation.model_fields  # its adapter
    for task in TASKS:
        assert list(schema.model_fields[task].annotation.model_fields) == [
            "task",
            "teachers",
            "distill",
            "tune",
        ]


# ------------------------------------------------------------------------ unknown keys
def test_a_misspelt_block_in_a_conf_file_names_key_suggestion_and_file(tmp_path: Path) -> None:
    error = _refusal(_loader(tmp_path, {"ihm": {"distil": {"alpha": 0.3}}}))
    local = (tmp_path / "conf" / "local" / "parameters.yml").as_posix()
    assert [str(p) for p in error.problems] == [
        "ihm.distil: unknown key; did you mean `ihm.distill`? (keys of ihm: task, teachers, "
        f"distill, tune) [set in {local}]"
    ]
    assert f"read from {(tmp_path / 'conf').as_posix()}/base + " in str(error)
    assert "nothing has run" in str(error)


@pytest.mark.parametrize(
    ("runtime", "key", "suggestion"),
    [
        ({"ihmm": {"distill": {"alpha": 0.3}}}, "ihmm", "did you mean `ihm`?"),
        (
            {"distill": {"alpha": 0.3}},
            "distill",
            "did you mean `avdigits.distill` or `ihm.distill` or `los.distill` or `pheno.distill`?",
        ),
        ({"teachers": {"cache": {"batch_size": 8}}}, "teachers", "`ihm.teachers` or"),
        ({"pheno": {"teacher": {"cache": {"batch_size": 8}}}}, "pheno.teacher", "`pheno.teachers`"),
        (
            {"ihm": {"distill": {"temprature": 3.0}}},
            "ihm.distill.temprature",
            "`ihm.distill.temperature`",
        ),
        ({"cxr": {"image_sise": 256}}, "cxr.image_sise", "did you mean `cxr.image_size`?"),
        (
            {"ihm": {"teachers": {"ehr": {"fitt": {"epochs": 1}}}}},
            "ihm.teachers.ehr.fitt",
            "did you mean `ihm.teachers.ehr.fit`?",
        ),
    ],
)
def test_an_unknown_key_at_any_level_from_params_is_named(
    tmp_path: Path, runtime: dict[str, Any], key: str, suggestion: str
) -> None:
    error = _refusal(_loader(tmp_path, **runtime))
    (problem,) = error.problems
    assert problem.key == key
    assert problem.message.startswith("unknown key; ") and suggestion in problem.message
    assert problem.sources and all(
        s.startswith((f"--params {key}.", f"--params {key}=")) for s in problem.sources
    )


def test_an_invalid_value_names_every_place_that_sets_it(tmp_path: Path) -> None:
    error = _refusal(_loader(tmp_path, ihm={"distill": {"alpha": 2}}))
    (problem,) = error.problems
    assert problem.key == "ihm.distill.alpha"
    assert problem.message == "Input should be less than or equal to 1 (got 2)"
    base_file = (tmp_path / "conf" / "base" / "parameters_distill.yml").as_posix()
    assert problem.sources == (base_file, "--params ihm.distill.alpha=2")


def test_every_problem_is_listed_in_one_error(tmp_path: Path) -> None:
    local = {"ihm": {"distil": {"alpha": 0.3}}, "pheno": {"distill": {"alpha": -1.0}}}
    error = _refusal(_loader(tmp_path, local, ihmm={"distill": {"alpha": 0.3}}, split={"sed": 1}))
    assert sorted(p.key for p in error.problems) == [
        "ihm.distil",
        "ihmm",
        "pheno.distill.alpha",
        "split.sed",
    ]
    assert str(error).count("\n  - ") == 4


def test_a_dotted_python_runtime_key_is_an_unknown_top_level_key(base: dict[str, Any]) -> None:
    """Kedro ignores ``runtime_params={"ihm.distill.alpha": 0.3}`` for ``ihm.distill.alpha``."""
    (problem,) = find_problems({**base, "ihm.distill.alpha": 0.3}, MEMBERS)
    assert problem.key == "ihm.distill.alpha"
    assert "did you mean `ihm.distill.alpha`, nested?" in problem.message


def test_a_missing_block_is_named(base: dict[str, Any]) -> None:
    params = copy.deepcopy(base)
    del params["pheno"]["teachers"]["report"]
    (problem,) = find_problems(params, MEMBERS)
    assert (problem.key, problem.message) == (
        "pheno.teachers.report",
        "missing (the pipelines need it)",
    )


# ------------------------------------------------------------------------ member slots
def test_an_extra_member_slot_is_refused(tmp_path: Path) -> None:
    gru_big = {"encoder": "gru", "settings": {"hidden": 8}}
    local = {"ihm": {"teachers": {"ehr": {"members": {"gru_big": gru_big}}}}}
    error = _refusal(_loader(tmp_path, local))
    (problem,) = error.problems
    assert problem.key == "ihm.teachers.ehr.members.gru_big"
    assert problem.message == (
        "no such member slot; the ehr slots are lstm_small, lstm_large, transformer "
        "(tasks.TEACHER_MEMBERS)"
    )


def test_a_cxr_member_must_be_the_network_its_slot_pretrains(tmp_path: Path) -> None:
    """The CXR slots are pre-trained once (``cxr_pretrain``) and fine-tuned per task: a task whose
    slot names another network would load weights of the wrong shape, or of another network."""
    local = {"los": {"teachers": {"cxr": {"members": {"resnet18": {"settings": {"width": 0.5}}}}}}}
    error = _refusal(_loader(tmp_path, local))
    (problem,) = error.problems
    assert problem.key == "los.teachers.cxr.members.resnet18.settings"
    assert "differs from `cxr_pretrain.members.resnet18.settings`" in problem.message
    assert problem.sources[-1] == (tmp_path / "conf" / "local" / "parameters.yml").as_posix()


def test_a_misspelt_or_missing_member_slot_is_refused(base: dict[str, Any]) -> None:
    params = copy.deepcopy(base)
    members = params["pheno"]["teachers"]["cxr"]["members"]
    members["densnet"] = members.pop("densenet")
    problems = {p.key: p.message for p in find_problems(params, MEMBERS)}
    assert problems == {
        "pheno.teachers.cxr.members.densnet": (
            "no such member slot; did you mean `pheno.teachers.cxr.members.densenet`?; the cxr "
            "slots are resnet18, resnet34, densenet (tasks.TEACHER_MEMBERS)"
        ),
        "pheno.teachers.cxr.members.densenet": (
            "missing member slot; the cxr slots are resnet18, resnet34, densenet "
            "(tasks.TEACHER_MEMBERS)"
        ),
    }

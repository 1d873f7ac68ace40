"""docs/real-scale/parameters.yml, copied into conf/local with ``profile: real``, as a user does it.

The project's conf is loaded through the loader of ``mindkd.settings`` (soft merge over conf/base),
validated by the pipelines' typed parameters, and every teacher member, the student and the baselines
are built (no forward pass) to check the sizes the file and docs/real-data.md state.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from kedro.config import AbstractConfigLoader
from kedro.validation.parameter_validator import ParameterValidator

from kedro_harness import PROJECT_ROOT
from mindkd import settings, tasks
from mindkd.models.registry import count_parameters, encoder_settings
from mindkd.models.spec import EhrInput, ImageNormaliser, MemberSpec
from mindkd.pipelines.cxr.pipeline import create_pipeline as cxr_pipeline
from mindkd.pipelines.distill.params import DistillParams
from mindkd.pipelines.distill.pipeline import create_pipeline as distill_pipeline
from mindkd.pipelines.ehr.pipeline import create_pipeline as ehr_pipeline
from mindkd.pipelines.params import find_problems
from mindkd.pipelines.teachers.pipeline import create_pipeline as teachers_pipeline
from mindkd.processing.normalise import feature_layout
from mindkd.tasks import get_task
from mindkd.training.spec import STUDENTS, VARIANTS
from mindkd.training.teachers import build_teacher
from torch_threads import one_torch_thread  # noqa: F401 - autouse fixture: one torch thread

REAL_SCALE = PROJECT_ROOT / "docs" / "real-scale" / "parameters.yml"
LOCAL_NAME = "parameters_real_scale.yml"  # the name docs/real-data.md tells users to copy to
TASKS = ("ihm", "pheno")
MILLION = 1e6
# The sizes below are those of the continuous input (34 columns per hour, conf/base's encoding).
CONTINUOUS = EhrInput.model_validate(feature_layout("continuous").to_dict())

# Parameter counts (encoder + head, ihm) stated in the file's header and in docs/real-data.md; pheno's
# 25 outputs per head add less than 0.5 % to any of them.
EXPECTED = {
    "ehr_ensemble": 4.21 * MILLION,
    "cxr_ensemble": 39.40 * MILLION,
    "densenet": 6.95 * MILLION,
    "student": 2.93 * MILLION,
    "medfuse": 22.83 * MILLION,
}


def _conf(root: Path, local_parameters: dict[str, Any]) -> Path:
    """A copy of the project's conf with ``profile: real`` and the given conf/local files."""
    conf = root / "conf"
    shutil.copytree(PROJECT_ROOT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    (conf / "local" / "globals.yml").write_text("profile: real\n")
    for name, content in local_parameters.items():
        target = conf / "local" / name
        if isinstance(content, Path):
            shutil.copy(content, target)
        else:
            target.write_text(yaml.safe_dump(content))
    return conf


def _loader(conf: Path) -> AbstractConfigLoader:
    """The project's config loader (class and arguments of mindkd.settings) on ``conf``."""
    return settings.CONFIG_LOADER_CLASS(str(conf), **settings.CONFIG_LOADER_ARGS)


def _validate(raw: dict[str, Any]) -> dict[str, Any]:
    pipelines = {
        "ehr": ehr_pipeline(),
        "cxr": cxr_pipeline(),
        "teachers": teachers_pipeline(),
        "distill": distill_pipeline(),
    }
    return ParameterValidator(pipelines).validate_raw_params(raw)


def _model_blocks(task_params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every block that defines a network, by path: teacher members, student, baselines.

    Works on the file's plain dicts and on validated parameters (typed blocks are dumped).
    """

    def plain(value: Any) -> Any:
        return value.model_dump() if hasattr(value, "model_dump") else value

    blocks: dict[str, dict[str, Any]] = {}
    for modality, slots in tasks.TEACHER_MEMBERS.items():
        members = task_params["teachers"][modality]["members"]
        for slot in slots:
            blocks[f"teachers.{modality}.members.{slot}"] = plain(members[slot])
    distill = task_params["distill"]
    student = distill.student if isinstance(distill, DistillParams) else distill["student"]
    baselines = distill.baselines if isinstance(distill, DistillParams) else distill["baselines"]
    blocks["distill.student"] = plain(student)
    blocks["distill.baselines"] = plain(baselines)
    return blocks


def _mismatches(written: dict[str, Any], resolved: dict[str, Any]) -> list[str]:
    """Paths of the model blocks that did not resolve to exactly what the file writes."""
    expected, actual = _model_blocks(written), _model_blocks(resolved)
    return [path for path in expected if expected[path] != actual[path]]


def _encoders(block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(encoder name, settings) of a member block or of a student / baseline block."""
    if "encoder" in block:
        return [(block["encoder"], block["settings"])]
    if "ehr_encoder" in block:
        return [(block[k]["name"], block[k]["settings"]) for k in ("ehr_encoder", "cxr_encoder")]
    subs = [sub for sub in block.values() if isinstance(sub, dict)]  # baselines (no_kd has none)
    return [pair for sub in subs for pair in _encoders(sub)]


@pytest.fixture(scope="module")
def written() -> dict[str, Any]:
    return yaml.safe_load(REAL_SCALE.read_text())


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    conf = _conf(tmp_path_factory.mktemp("real_scale"), {LOCAL_NAME: REAL_SCALE})
    return _loader(conf)["parameters"]


@pytest.fixture(scope="module")
def validated(raw: dict[str, Any]) -> dict[str, Any]:
    return _validate(raw)


def test_profile_real_switches_the_data_sizes(validated: dict[str, Any]) -> None:
    assert validated["cxr"].image_size == 224
    assert validated["pheno"]["task"].max_hours == 240
    # ihm reads the first 48 h whatever the profile
    assert validated["ihm"]["task"].max_hours is None


def test_every_model_block_resolves_to_exactly_what_the_file_writes(
    written: dict[str, Any], validated: dict[str, Any]
) -> None:
    for task in TASKS:
        assert _mismatches(written[task], validated[task]) == [], task
        densenet = validated[task]["teachers"]["cxr"]["members"]["densenet"]
        assert isinstance(densenet, MemberSpec) and densenet.encoder == "densenet121"
        assert list(densenet.settings["block_config"]) == [6, 12, 24, 16]
        assert densenet.settings["growth_rate"] == 32
        assert densenet.settings["num_init_features"] == 64
    # the phases the file sets reach the typed fit settings
    ihm = validated["ihm"]
    assert ihm["teachers"]["ehr"]["fit"].epochs == 50
    assert validated["cxr_pretrain"]["fit"].epochs == 20
    assert ihm["teachers"]["cxr"]["fit"].lr == pytest.approx(1.0e-4)
    assert ihm["distill"].fit.epochs == 50 and ihm["distill"].fit.amp == "bf16"


def test_the_project_parameter_check_accepts_it(raw: dict[str, Any]) -> None:
    """The check every session runs first (mindkd.pipelines.params) passes the real-scale file."""
    assert find_problems(raw, tasks.TEACHER_MEMBERS) == []


def test_pheno_uses_the_same_models_as_ihm(raw: dict[str, Any], validated: dict[str, Any]) -> None:
    for stage in ("teachers", "distill"):
        assert raw["pheno"][stage] == raw["ihm"][stage], stage
    assert validated["pheno"]["distill"] == validated["ihm"]["distill"]
    assert _model_blocks(validated["pheno"]) == _model_blocks(validated["ihm"])


def test_a_partial_nested_setting_is_caught(
    tmp_path: Path, written: dict[str, Any], raw: dict[str, Any]
) -> None:
    """What the full blocks guard against: a partial ``settings`` keeps conf/base's demo values."""
    partial = yaml.safe_load(REAL_SCALE.read_text())
    for task in TASKS:
        partial[task]["teachers"]["cxr"]["members"]["densenet"]["settings"] = {"stem": "imagenet"}
        partial[task]["distill"]["student"]["fusion_settings"] = {"dropout": 0.0}
    resolved = _validate(_loader(_conf(tmp_path, {LOCAL_NAME: partial}))["parameters"])
    densenet = resolved["ihm"]["teachers"]["cxr"]["members"]["densenet"]
    assert list(densenet.settings["block_config"]) == [2, 4, 8, 6]  # the demo DenseNet
    assert _mismatches(written["ihm"], resolved["ihm"]) == [
        "teachers.cxr.members.densenet",
        "distill.student",
    ]


def test_every_encoder_setting_is_written(written: dict[str, Any]) -> None:
    """No encoder keyword is left to a default (``in_channels`` is fixed by the data)."""
    for task in TASKS:
        for path, block in _model_blocks(written[task]).items():
            for name, encoder_kwargs in _encoders(block):
                expected = set(encoder_settings(name)) - {"in_channels"}
                assert set(encoder_kwargs) == expected, f"{task}.{path} ({name})"
                assert encoder_kwargs.get("max_len", 512) >= 240  # pheno's real-scale hours


@pytest.mark.parametrize("task", TASKS)
def test_sizes_and_the_student_budget(task: str, validated: dict[str, Any]) -> None:
    definition = get_task(task)
    k = len(definition.labels)
    teachers = validated[task]["teachers"]
    sizes = {
        f"{modality}.{slot}": count_parameters(
            build_teacher(teachers[modality]["members"][slot], k, ehr_channels=CONTINUOUS.width)
        )
        for modality, slots in tasks.TEACHER_MEMBERS.items()
        for slot in slots
    }
    ehr = sum(n for name, n in sizes.items() if name.startswith("ehr."))
    cxr = sum(n for name, n in sizes.items() if name.startswith("cxr."))
    tolerance = 0.01
    assert ehr == pytest.approx(EXPECTED["ehr_ensemble"], rel=tolerance)
    assert cxr == pytest.approx(EXPECTED["cxr_ensemble"], rel=tolerance)
    assert cxr > 35 * MILLION and 3 * MILLION < ehr < 6 * MILLION
    assert sizes["cxr.densenet"] == pytest.approx(EXPECTED["densenet"], rel=tolerance)
    assert 11 * MILLION < sizes["cxr.resnet18"] < 11.5 * MILLION  # ResNet-18 at width 1
    assert 21 * MILLION < sizes["cxr.resnet34"] < 21.5 * MILLION  # ResNet-34 at width 1

    params: DistillParams = validated[task]["distill"]
    image = ImageNormaliser(mean=0.5, std=0.25, image_size=224, images=0)
    # specify builds each model and raises StudentTooLargeError above max_teacher_fraction
    specs = {
        v: params.model_spec(v, definition, {"ensembles_total": ehr + cxr}, image, CONTINUOUS)
        for v in VARIANTS
    }
    assert params.max_teacher_fraction == pytest.approx(0.1)
    for variant in STUDENTS:
        assert specs[variant].parameters <= 0.1 * (ehr + cxr), variant
        assert specs[variant].parameters == pytest.approx(EXPECTED["student"], rel=tolerance)
    assert specs["zero_filled"].parameters == pytest.approx(EXPECTED["student"], rel=tolerance)
    assert specs["medfuse"].parameters == pytest.approx(EXPECTED["medfuse"], rel=tolerance)


def test_a_local_file_setting_the_same_key_is_refused(tmp_path: Path) -> None:
    """Kedro refuses one key in two files of conf/local; keys the file does not set merge in."""
    clash = {"ihm": {"teachers": {"ehr": {"fit": {"epochs": 5}}}}}
    conf = _conf(tmp_path / "clash", {LOCAL_NAME: REAL_SCALE, "parameters_teachers.yml": clash})
    with pytest.raises(ValueError, match=r"Duplicate keys found .*ihm\.teachers\.ehr\.fit\.epochs"):
        _ = _loader(conf)["parameters"]

    extra = {"ihm": {"distill": {"lambda_ehr": 0.3}}, "cxr": {"scratch_dir": "/scratch"}}
    conf = _conf(tmp_path / "extra", {LOCAL_NAME: REAL_SCALE, "parameters_mine.yml": extra})
    raw = _loader(conf)["parameters"]
    assert (
        raw["ihm"]["distill"]["lambda_ehr"] == 0.3 and raw["pheno"]["distill"]["lambda_ehr"] == 1.0
    )
    assert raw["cxr"]["scratch_dir"] == "/scratch"
    assert raw["ihm"]["distill"]["student"]["cxr_encoder"]["settings"]["width"] == 0.5

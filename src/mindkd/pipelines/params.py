"""The project's whole parameter tree as one typed schema, checked before any node runs.

Kedro validates a typed block only where a node of the selected pipelines takes it (``params:<key>``),
so a block no node reads (``ihm.distil``, ``ihmm``, a top-level ``distill``) would be ignored and the
run would go on with the defaults. ``ProjectParams`` composes the stages' typed blocks into the whole
tree, and every level forbids unknown keys::

    ehr                  EhrParams        pipelines/ehr/params.py
    split                SplitParams      pipelines/ehr/params.py
    cxr                  CxrParams        pipelines/cxr/params.py
    cxr_pretrain         CxrPretrainParams pipelines/teachers/params.py (shared CXR pre-training)
    <task>               TaskBlock        one per task namespace (mindkd.tasks.TASKS)
    <task>.task          TaskParams       tasks.py
    <task>.teachers      TeachersParams   pipelines/teachers/params.py
    <task>.distill       DistillParams    pipelines/distill/params.py
    <task>.tune          TuneParams       pipelines/tune/params.py (every searched key must be
                                          a valid setting of <task>.distill)
    avdigits             AvDigitsTaskBlock a TaskBlock (no tune) plus ``source``, the AV-digits
                                          adapter (pipelines/avdigits/params.py)

``find_problems`` also requires the member slots under ``<task>.teachers.<modality>.members`` and
``cxr_pretrain.members`` to be exactly those of ``mindkd.tasks.TEACHER_MEMBERS`` (the teachers pipeline
has one namespace per slot: a slot of another name would never be trained), and each task's CXR slot
to name the encoder and settings of its ``cxr_pretrain`` slot (it fine-tunes those weights).
``mindkd.hooks.ParameterCheckHook`` runs ``check_parameters`` on the merged parameters (conf files
and ``--params``) when the Kedro context is created, whichever pipelines, namespaces or nodes are
selected: a problem stops the session before the catalog, the MLflow run or any node, with every
problem listed once and where each key was set.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, create_model, model_validator

from mindkd.pipelines.avdigits.params import AvDigitsSource
from mindkd.pipelines.cxr.params import CxrParams
from mindkd.pipelines.distill.params import DistillParams
from mindkd.pipelines.ehr.params import EhrParams, SplitParams
from mindkd.pipelines.teachers.params import CxrPretrainParams, TeachersParams
from mindkd.pipelines.tune.params import TuneParams
from mindkd.tasks import AVDIGITS, TASKS, TaskParams

CONF_SUFFIXES = (".yml", ".yaml", ".json")  # the files OmegaConfigLoader reads
_MISSING = object()


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SharedParams(_Block):
    """The blocks outside the task namespaces: ingestion, splits, X-ray decoding, pre-training."""

    ehr: EhrParams
    split: SplitParams
    cxr: CxrParams
    cxr_pretrain: CxrPretrainParams


class TaskBlock(_Block):
    """Everything under one task namespace (``ihm``, ``pheno``)."""

    task: TaskParams
    teachers: TeachersParams
    distill: DistillParams
    tune: TuneParams

    @model_validator(mode="after")
    def _searchable(self) -> TaskBlock:
        if self.tune is not None:
            self.tune.check_against(self.distill)
        return self


class AvDigitsTaskBlock(TaskBlock):
    """``avdigits``: a task namespace with its own source adapter (``source``); no tuning study."""

    tune: TuneParams | None = None  # type: ignore[assignment]
    source: AvDigitsSource


@cache
def project_params(tasks: tuple[str, ...] = TASKS) -> type[SharedParams]:
    """``ProjectParams``: the shared blocks, one ``TaskBlock`` per task namespace, and ``avdigits``."""
    blocks: dict[str, Any] = {task: (TaskBlock, ...) for task in tasks}
    blocks[AVDIGITS] = (AvDigitsTaskBlock, ...)
    return create_model("ProjectParams", __base__=SharedParams, **blocks)


@dataclass(frozen=True)
class Problem:
    """One parameter the project cannot use: its full dotted key, what is wrong, where it was set."""

    key: str
    message: str
    sources: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = f" [set in {', '.join(self.sources)}]" if self.sources else ""
        return f"{self.key}: {self.message}{where}"


class ParameterError(ValueError):
    """Parameters the project does not know or cannot use; ``problems`` holds every one."""

    def __init__(self, problems: Sequence[Problem], read_from: str) -> None:
        self.problems = list(problems)
        super().__init__(
            f"{len(self.problems)} problem(s) in the parameters read from {read_from}; nothing "
            "has run. Every key must be one of the typed blocks of mindkd.pipelines.params "
            "(change or remove the key where it is set):"
            + "".join(f"\n  - {problem}" for problem in self.problems)
        )


@dataclass(frozen=True)
class ConfigSources:
    """Where a parameter key is set: the parameter files of each environment, then ``--params``.

    ``files`` are ``(label, tree)`` in merge order; ``runtime`` is Kedro's ``runtime_params``.
    """

    folders: tuple[str, ...] = ()
    files: tuple[tuple[str, Any], ...] = ()
    runtime: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_loader(cls, loader: Any) -> ConfigSources:
        """The sources an ``OmegaConfigLoader`` merges (conf_source, base and run env, patterns)."""
        conf = Path(str(loader.conf_source))
        run_env = loader.env or loader.default_run_env
        envs = [env for env in dict.fromkeys([loader.base_env, run_env]) if env]
        patterns = loader.config_patterns.get("parameters", [])
        files = []
        for env in envs if conf.is_dir() else []:
            found = {p for pattern in patterns for p in (conf / env).glob(pattern)}
            for path in sorted(p for p in found if p.is_file() and p.suffix in CONF_SUFFIXES):
                files.append((_label(path), _read(path)))
        folders = tuple(_label(conf / env) for env in envs)
        return cls(folders, tuple(files), dict(getattr(loader, "runtime_params", None) or {}))

    def describe(self) -> str:
        """The sources merged, in order: ``conf/base + conf/local + --params``."""
        return " + ".join([*self.folders, *(["--params"] if self.runtime else [])]) or "the caller"

    def __call__(self, key: str) -> tuple[str, ...]:
        parts = key.split(".")
        found = [label for label, tree in self.files if _get(tree, parts) is not _MISSING]
        value = _get(self.runtime, parts)
        if value is not _MISSING:
            found += [f"--params {name}={leaf}" for name, leaf in _leaves(key, value)]
        return tuple(found)


def find_problems(
    params: Mapping[str, Any],
    members: Mapping[str, Sequence[str]],
    tasks: Sequence[str] = TASKS,
) -> list[Problem]:
    """Every problem of the merged parameter tree ``params``: unknown or missing keys, invalid
    values, member slots other than ``members`` (``mindkd.tasks.TEACHER_MEMBERS``)."""
    schema = project_params(tuple(tasks))
    problems = []
    try:
        schema.model_validate(params)
    except ValidationError as exc:
        problems += [_problem(schema, error) for error in exc.errors(include_url=False)]
    return problems + _slot_problems(params, members, tasks)


def check_parameters(
    params: Mapping[str, Any],
    members: Mapping[str, Sequence[str]],
    sources: ConfigSources | None = None,
    tasks: Sequence[str] = TASKS,
) -> None:
    """Raise ``ParameterError`` listing every problem of ``params`` (see ``find_problems``)."""
    sources = sources or ConfigSources()
    problems = [
        Problem(p.key, p.message, sources(p.key)) for p in find_problems(params, members, tasks)
    ]
    if problems:
        raise ParameterError(problems, sources.describe())


# ------------------------------------------------------------------------------ messages
def _problem(schema: type[BaseModel], error: Mapping[str, Any]) -> Problem:
    loc = tuple(str(part) for part in error["loc"])
    key = ".".join(loc) or "<parameters>"
    if error["type"] == "extra_forbidden":
        return Problem(key, "unknown key" + _suggestion(schema, loc))
    if error["type"] == "missing":
        return Problem(key, "missing (the pipelines need it)")
    value = error.get("input")
    shown = f" (got {value!r})" if isinstance(value, str | int | float | bool) else ""
    return Problem(key, f"{error['msg']}{shown}")


def _suggestion(schema: type[BaseModel], loc: tuple[str, ...]) -> str:
    parent, name = loc[:-1], loc[-1]
    if ".".join(loc) in _known_paths(schema):  # {"ihm.distill.alpha": 0.3} from Python
        return f"; did you mean `{'.'.join(loc)}`, nested? Python runtime_params take nested dicts"
    siblings = _fields(_annotation_at(schema, parent))
    close = difflib.get_close_matches(name, siblings, n=3)
    candidates = [".".join((*parent, c)) for c in close]
    if not candidates:  # a key of another level, e.g. a task's `distill` at the top level
        paths = _known_paths(schema)
        tails = difflib.get_close_matches(name, sorted({p.rsplit(".", 1)[-1] for p in paths}), n=1)
        candidates = [p for p in paths if tails and p.rsplit(".", 1)[-1] == tails[0]][:4]
    where = f"keys of {'.'.join(parent)}" if parent else "top-level keys"
    valid = f" ({where}: {', '.join(siblings)})"
    if candidates:
        guess = "; did you mean " + " or ".join(f"`{c}`" for c in candidates) + "?"
        return guess + (valid if len(siblings) <= 8 else "")
    return valid


def _slot_problems(
    params: Mapping[str, Any], members: Mapping[str, Sequence[str]], tasks: Sequence[str]
) -> list[Problem]:
    blocks = [
        ([task, "teachers", modality, "members"], modality, slots)
        for task in (*tasks, AVDIGITS)
        for modality, slots in members.items()
    ]
    blocks.append((["cxr_pretrain", "members"], "cxr", members.get("cxr", ())))
    problems = []
    for path, modality, slots in blocks:
        given = _get(params, path)
        if not isinstance(given, Mapping):
            continue  # the schema reports a missing or malformed block
        prefix = ".".join(path)
        valid = f"the {modality} slots are {', '.join(slots)} (tasks.TEACHER_MEMBERS)"
        for slot in given:
            if slot not in slots:
                close = difflib.get_close_matches(str(slot), slots, n=1)
                hint = f"; did you mean `{prefix}.{close[0]}`?" if close else ""
                problems.append(Problem(f"{prefix}.{slot}", f"no such member slot{hint}; {valid}"))
        problems += [
            Problem(f"{prefix}.{slot}", f"missing member slot; {valid}")
            for slot in slots
            if slot not in given
        ]
    return problems + _pretrain_problems(params, members, tasks)


def _pretrain_problems(
    params: Mapping[str, Any], members: Mapping[str, Sequence[str]], tasks: Sequence[str]
) -> list[Problem]:
    """A task's CXR slot whose encoder or settings differ from the ``cxr_pretrain`` slot it
    fine-tunes (its weights would not fit, or silently come from another network)."""
    problems = []
    for slot in members.get("cxr", ()):
        shared = _get(params, ["cxr_pretrain", "members", slot])
        if not isinstance(shared, Mapping):
            continue
        for task in tasks:
            mine = _get(params, [task, "teachers", "cxr", "members", slot])
            if not isinstance(mine, Mapping):
                continue
            for key in ("encoder", "settings"):
                if mine.get(key) != shared.get(key):
                    problems.append(
                        Problem(
                            f"{task}.teachers.cxr.members.{slot}.{key}",
                            f"{mine.get(key)!r} differs from `cxr_pretrain.members.{slot}.{key}` "
                            f"({shared.get(key)!r}): the member fine-tunes that slot's pre-trained "
                            "weights; set both the same (or use another slot)",
                        )
                    )
    return problems


# ------------------------------------------------------------------------------ the schema's shape
def _child(annotation: Any, name: str) -> Any:
    """The annotation of key ``name`` under ``annotation`` (a model, a dict, a union of them)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        info = annotation.model_fields.get(name)
        return None if info is None else info.annotation
    if get_origin(annotation) is dict:
        return get_args(annotation)[1]
    for arg in get_args(annotation):
        child = _child(arg, name)
        if child is not None:
            return child
    return None


def _annotation_at(schema: type[BaseModel], loc: Sequence[str]) -> Any:
    annotation: Any = schema
    for name in loc:
        annotation = _child(annotation, name)
    return annotation


def _fields(annotation: Any) -> list[str]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


@cache
def _known_paths(schema: type[BaseModel]) -> list[str]:
    """Every dotted key of the schema's models (not the free keys of dicts), shallowest first."""

    def walk(model: type[BaseModel], prefix: str) -> Iterator[str]:
        for name, info in model.model_fields.items():
            path = f"{prefix}{name}"
            yield path
            for arg in (info.annotation, *get_args(info.annotation)):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    yield from walk(arg, f"{path}.")

    return sorted(dict.fromkeys(walk(schema, "")), key=lambda p: (p.count("."), p))


# ------------------------------------------------------------------------------ raw trees
def _get(tree: Any, parts: Sequence[str]) -> Any:
    for part in parts:
        if not isinstance(tree, Mapping) or part not in tree:
            return _MISSING
        tree = tree[part]
    return tree


def _leaves(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from _leaves(f"{prefix}.{key}", item)
    else:
        yield prefix, value


def _read(path: Path) -> Any:
    try:
        text = path.read_text()
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError):
        return None  # the config loader reports an unreadable file itself


def _label(path: Path) -> str:
    relative = os.path.relpath(path)
    return path.as_posix() if relative.startswith("..") else Path(relative).as_posix()

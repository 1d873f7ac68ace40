"""Experiment and run names, and which tasks and stages a pipeline touches."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from mindkd.tracking.runs import (
    chain_run_name,
    node_task,
    pipeline_stages,
    pipeline_tasks,
    task_experiment,
    task_run_name,
)

TASKS = ("ihm", "pheno")


def _identity(x: object) -> object:
    return x


def _stage(name: str, tasks: tuple[str, ...], shared: bool = False) -> Pipeline:
    """A stage like the project's: one node per task namespace, plus a shared node."""
    per_task = [
        Pipeline([Node(_identity, f"{name}_in", f"{name}_out", name=name)], namespace=task)
        for task in tasks
    ]
    shared_nodes = [Node(_identity, f"{name}_raw", f"{name}_in", name=f"{name}_shared")]
    return Pipeline([*per_task, *(shared_nodes if shared else [])])


STAGES = {
    "teachers": _stage("teach", TASKS),
    "ehr": _stage("ehr", TASKS, shared=True),
    "cxr": Pipeline([Node(_identity, "jpg", "images", name="decode")]),
    "distill": _stage("distill", TASKS),
}


def test_task_experiment() -> None:
    assert task_experiment("mindkd", "ihm") == "mindkd-ihm"


def test_node_task_is_the_top_level_namespace_when_it_is_a_task() -> None:
    ihm, pheno = STAGES["teachers"].nodes
    assert node_task(ihm, TASKS) == "ihm" and node_task(pheno, TASKS) == "pheno"
    assert node_task(STAGES["cxr"].nodes[0], TASKS) is None
    other = Pipeline([Node(_identity, "a", "b", name="n")], namespace="tools").nodes[0]
    assert node_task(other, TASKS) is None


def test_pipeline_tasks_and_stages_in_flow_order() -> None:
    everything = sum(STAGES.values(), Pipeline([]))
    assert pipeline_tasks(everything, TASKS) == ["ihm", "pheno"]
    assert pipeline_stages(everything, {**STAGES, "__default__": everything}) == [
        "ehr",
        "cxr",
        "teachers",
        "distill",
    ]
    ihm_only = everything.only_nodes_with_namespaces(["ihm"])
    assert pipeline_tasks(ihm_only, TASKS) == ["ihm"]
    assert pipeline_stages(ihm_only, STAGES) == ["ehr", "teachers", "distill"]
    assert pipeline_tasks(STAGES["cxr"], TASKS) == []
    # per task: only the stages with a node of that task (the shared ehr node is the chain's)
    data = STAGES["ehr"] + STAGES["cxr"]
    assert pipeline_stages(data, STAGES, task="pheno", tasks=TASKS) == ["ehr"]
    assert pipeline_stages(data, STAGES) == ["ehr", "cxr"]


PARAMS = {
    "ihm": {
        "distill": {
            "alpha": 0.5,
            "student": {"fusion": "concat"},
            "fit": {"seed": 0},
        }
    }
}


def test_run_names() -> None:
    assert task_run_name(["distill"], "ihm", PARAMS) == "distill ihm · concat · α=0.5 · seed 0"
    assert (
        task_run_name(["teachers", "distill"], "ihm", PARAMS)
        == "teachers+distill ihm · concat · α=0.5 · seed 0"
    )
    assert task_run_name(["teachers"], "ihm", PARAMS) == "teachers ihm"
    assert task_run_name(["distill"], "pheno", PARAMS) == "distill pheno"  # no settings known
    assert task_run_name(["cxr"], None, {}) == "cxr"
    tuned = {"ihm": {"distill": {**PARAMS["ihm"]["distill"], "alpha": 0.25}}}
    assert task_run_name(["distill"], "ihm", tuned) == "distill ihm · concat · α=0.25 · seed 0"
    assert chain_run_name(["ehr", "cxr", "pairing"]) == "chain (ehr+cxr+pairing)"

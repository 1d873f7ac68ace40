"""``python -m mindkd.tracking results``: seed runs chosen by their recorded settings and seeds."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow.entities import Metric, Param, RunTag

from mindkd.tracking import results
from mindkd.tracking.__main__ import main
from mindkd.tracking.runs import TAG_EVALUATED, TAG_LOGIT_CACHE


def _run(
    client: mlflow.MlflowClient,
    experiment: str,
    seed: int,
    mind: float,
    *,
    alpha: str = "0.5",
    cache: str = "v1",
    evaluated: bool = True,
    start: int,
) -> str:
    run = client.create_run(experiment, start_time=start)
    rid = run.info.run_id
    params = {"ihm.distill.fit.seed": str(seed), "ihm.distill.alpha": alpha}
    metrics = {}
    for subset in ("paired", "full"):
        for metric in ("auroc", "auprc"):
            for model, value in (
                ("mind", mind),
                ("no_kd", 0.6),
                ("zero_filled", 0.65),
                ("medfuse", 0.62),
                ("teachers", 0.8),
            ):
                key = f"ihm.distill.{model}.{subset}.routed.{metric}"
                metrics |= {key: value, f"{key}_low": value - 0.05, f"{key}_high": value + 0.05}
            for other, base in (
                ("no_kd", 0.6),
                ("zero_filled", 0.65),
                ("medfuse", 0.62),
                ("teachers", 0.8),
            ):
                suffix = "" if other == "no_kd" else f"_vs_{other}"
                key = f"ihm.distill.mind.{subset}.routed.delta_{metric}{suffix}"
                d = mind - base
                metrics |= {key: d, f"{key}_low": d - 0.02, f"{key}_high": d + 0.02}
    for model, size in (("mind", 7e5), ("teachers", 8e6), ("medfuse", 5e6)):
        metrics[f"ihm.distill.{model}.parameters"] = size
    metrics["ihm.distill.mind.latency_p50_ms"] = 0.5
    metrics["ihm.distill.mind.latency_p95_ms"] = 2.0
    tags = {TAG_LOGIT_CACHE: cache}
    if evaluated:
        tags[TAG_EVALUATED] = "true"
    client.log_batch(
        rid,
        metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    client.set_terminated(rid, "FINISHED")
    return rid


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, mlflow.MlflowClient, str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    return uri, client, client.create_experiment("mindkd-ihm")


def test_seeds_are_read_from_each_run_and_other_settings_are_left_out(store) -> None:
    uri, client, experiment = store
    # started in the order 2, 0, 1: a seed is what the run records, not where it comes
    _run(client, experiment, 2, 0.72, start=1)
    _run(client, experiment, 0, 0.70, start=2)
    _run(client, experiment, 1, 0.71, start=3)
    _run(client, experiment, 1, 0.99, start=4, alpha="0.3", evaluated=True)  # other settings
    _run(client, experiment, 1, 0.99, start=5, evaluated=False)  # never evaluated
    newest = _run(client, experiment, 1, 0.74, start=6)  # a re-run of seed 1: the newest counts
    seeds = results.select_seed_runs(client, "mindkd", "ihm", min_seeds=3)
    assert "tuning" not in results.collect(uri, "mindkd", ["ihm"], min_seeds=3)  # no study here
    assert seeds.seeds == [0, 1, 2]
    assert seeds.runs[1].info.run_id == newest
    assert seeds.metric("mind.full.routed.auroc") == [0.70, 0.74, 0.72]
    text = results.blocks([seeds])
    assert "0.720 ± 0.020" in text["summary"]  # mean ± sd of 0.70, 0.74, 0.72
    assert (
        "| ihm | full | AUROC | no-KD student | +0.120 ± 0.020 | 3/3 | 3/3 | 0/3 |"
        in text["claims"]
    )
    assert "| mind | full | 2 | 0.720 [0.670, 0.770]" in text["seeds"]
    assert "AUPRC" in text["claims"] and "AUPRC" not in text["headline"]
    assert "| ihm | full | AUROC | zero-filled | +0.070 ± 0.020 | 3/3 |" in text["headline"]


def test_too_few_seeds_with_the_newest_settings_is_an_error_naming_what_differs(store) -> None:
    _, client, experiment = store
    _run(client, experiment, 0, 0.70, start=1)
    _run(client, experiment, 1, 0.71, start=2)
    _run(client, experiment, 2, 0.72, start=3, cache="v2")  # newest: another logit cache
    with pytest.raises(results.ResultsError, match=r"(?s)1 seed\(s\) \(\[2\]\).*logit cache"):
        results.select_seed_runs(client, "mindkd", "ihm", min_seeds=3)


def test_the_command_fills_only_the_marked_blocks(store, tmp_path: Path) -> None:
    uri, client, experiment = store
    for seed in range(3):
        _run(client, experiment, seed, 0.7 + seed / 100, start=seed)
    page = tmp_path / "results.md"
    page.write_text(
        "# Results\nhand-written text\n<!-- results:claims begin -->\nold\n"
        "<!-- results:claims end -->\nmore text\n"
    )
    argv = ["--tracking-uri", uri, "--experiment", "mindkd", "results", "--task", "ihm"]
    assert main([*argv, "--min-seeds", "3", "--write", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("# Results\nhand-written text\n<!-- results:claims begin -->\n| task |")
    assert text.endswith("<!-- results:claims end -->\nmore text\n")
    assert "old" not in text
    page.write_text("<!-- results:seeds begin -->\n<!-- results:seeds end -->\n")  # empty block
    assert main([*argv, "--min-seeds", "3", "--write", str(page)]) == 0
    assert page.read_text().startswith("<!-- results:seeds begin -->\n#### ihm")
    assert page.read_text().endswith("|\n<!-- results:seeds end -->\n")
    assert main([*argv, "--min-seeds", "4", "--write", str(page)]) == 2
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    assert main([*argv, "--min-seeds", "3", "--write", str(plain)]) == 2


@pytest.mark.parametrize(
    ("lows", "highs", "verdict"),
    [
        ((0.1, 0.1, 0.1), (0.3, 0.3, 0.3), "MIND better: every"),
        ((0.1, 0.1, -0.1), (0.3, 0.3, 0.3), "MIND better in most"),
        ((0.1, -0.1, -0.1), (0.3, 0.3, 0.3), "MIND ahead where shown, but most"),
        ((-0.1, -0.1, -0.1), (0.3, 0.3, 0.3), "no difference shown"),
        ((0.1, -0.3, -0.1), (0.3, -0.1, 0.3), "mixed"),
        ((-0.3, -0.3, -0.3), (-0.1, -0.1, 0.3), "MIND worse in most"),
    ],
)
def test_the_verdict_follows_the_intervals(lows, highs, verdict: str) -> None:
    claim = results.Claim("ihm", "full", "auroc", "no_kd", (0.2, 0.0, 0.1), lows, highs)
    assert claim.verdict().startswith(verdict)


def test_the_tuning_block_alone_needs_no_seed_runs(store) -> None:
    uri, _, _ = store
    with pytest.raises(results.ResultsError, match="no tuning study of ihm"):
        results.collect(uri, "mindkd", ["ihm"], min_seeds=5, only=["tuning"])
    with pytest.raises(results.ResultsError, match="unknown block"):
        results.collect(uri, "mindkd", ["ihm"], min_seeds=5, only=["tuned"])


def test_the_mfh_block_puts_each_verdict_next_to_the_measured_gain(store) -> None:
    """γ̂ and the true γ averaged over seeds, the verdict from the run's thresholds, and the gain
    of the head that distils from the pair (MIND's own-modality heads, MCKD's cross pairs). The
    runs' own threshold (fails_below 0.03, not the default 0.2) makes 0.04 `partial`."""
    _, client, experiment = store
    for seed, gamma in enumerate((0.02, 0.04, 0.06)):
        rid = _run(client, experiment, seed, 0.7, start=seed)
        extra = {
            "ihm.distill.mfh.ehr_to_cxr.gamma": gamma,
            "ihm.distill.mfh.ehr_to_cxr.gamma_true": 0.0,
            "ihm.distill.mfh.ehr_to_ehr.gamma": 0.9,
            "ihm.distill.mckd.paired.cxr.delta_auroc": -0.01 * (seed + 1),
            "ihm.distill.mckd.paired.cxr.delta_auroc_low": -0.05,
            "ihm.distill.mckd.paired.cxr.delta_auroc_high": -0.001,
            "ihm.distill.mind.full.ehr.delta_auroc": 0.03,
            "ihm.distill.mind.full.ehr.delta_auroc_low": 0.01,
            "ihm.distill.mind.full.ehr.delta_auroc_high": 0.05,
        }
        client.log_batch(rid, metrics=[Metric(k, v, 0, 0) for k, v in extra.items()])
        client.log_batch(rid, params=[Param("ihm.distill.mfh.fails_below", "0.03")])
    seeds = results.select_seed_runs(client, "mindkd", "ihm", min_seeds=3)
    table = results.blocks([seeds])["mfh"]
    assert (
        "| ihm | ehr → cxr | MCKD | 0.040 ± 0.020 | partial | 0.00 | no help | "
        "-0.020 ± 0.010 (paired) | 0/3 | 3/3 |" in table
    )
    assert (
        "| ihm | ehr → ehr | MIND | 0.900 | helps | – | – | +0.030 ± 0.000 (full) | 3/3 | 0/3 |"
        in (table)
    )
    assert "cxr → cxr" not in table  # not measured: no row

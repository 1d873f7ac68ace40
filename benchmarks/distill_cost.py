"""What distillation costs per epoch: cached teacher targets against no KD and online teachers.

On synthetic tensors of demo shape (default: the ihm demo, ~600 train stays, 35 % with a 64 px
X-ray, 48 hourly steps of 34 channels), one run trains the default student of
``conf/base/parameters_distill.yml`` with ``mindkd.training.fit`` three ways and prints seconds
per epoch (median over epochs) and the ratios:

- ``no_kd``:   alpha = 0, no teacher targets in the batches (baseline a);
- ``cached``:  alpha > 0, the ensemble targets read with the batch (what the distill stage does);
- ``online``:  alpha > 0, every teacher member of ``conf/base/parameters_teachers.yml`` run on each
               batch (no grad, eval mode) to make the targets (what a cache avoids).

Epochs of the three modes are interleaved round by round, so load from other processes on a shared
machine slows them alike; ratios use each mode's least disturbed epoch (medians are printed too).
Target: cached / no_kd <= 1.15.

    python benchmarks/distill_cost.py [--stays 600] [--epochs 6] [--online-epochs 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import logging
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor, nn

from mindkd.models.batch import HeadOutput, MultiModalBatch
from mindkd.models.registry import build_encoder, count_parameters
from mindkd.models.spec import ImageNormaliser, MemberSpec, build_network
from mindkd.models.student import UnimodalClassifier
from mindkd.pipelines.distill.params import DistillParams
from mindkd.training.data import MultiModalDataset, SampleTable, make_loader
from mindkd.training.fit import FitConfig, RoutedEvaluator, fit
from mindkd.training.losses import MindLoss
from mindkd.training.spec import ModelSpec

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CHANNELS = 34


def _config(name: str) -> dict[str, Any]:
    return yaml.safe_load((PROJECT_ROOT / "conf" / "base" / name).read_text())["ihm"]


def _student_spec(params: DistillParams, alpha: float, image_size: int) -> ModelSpec:
    student = params.student
    return ModelSpec(
        variant="bench",
        architecture="multi_head",
        task="ihm",
        kind="binary",
        labels=("y",),
        ehr_encoder=student.ehr_encoder,
        cxr_encoder=student.cxr_encoder,
        fusion=student.fusion,
        fusion_settings=student.fusion_settings,
        head_dropout=student.head_dropout,
        loss=params.loss_config(alpha),
        fit=params.fit,
        image=ImageNormaliser(mean=0.5, std=0.25, image_size=image_size, images=1),
    )


def _dataset(
    n: int, paired: float, steps: int, size: int, *, seed: int, teacher: bool
) -> MultiModalDataset:
    """Synthetic samples: every one with EHR, a share with an image; targets when asked."""
    rng = np.random.default_rng(seed)
    has_image = rng.random(n) < paired
    values = rng.normal(size=(n, steps, CHANNELS)).astype(np.float32)
    images = rng.integers(0, 256, size=(int(has_image.sum()), size, size), dtype=np.uint8)
    cxr_row = np.full(n, -1, dtype=np.int64)
    cxr_row[has_image] = np.arange(int(has_image.sum()))
    labels = (rng.random((n, 1)) < 0.12).astype(np.float32)
    targets = {}
    if teacher:
        z = rng.normal(size=(n, 1)).astype(np.float32)
        targets = {"ehr": z, "cxr": np.where(has_image[:, None], z, np.nan).astype(np.float32)}
    table = SampleTable(np.arange(n), cxr_row, labels, targets)
    lengths = rng.integers(steps // 2, steps + 1, size=n)
    return MultiModalDataset(
        table, ehr_values=values, ehr_lengths=lengths, images=images, image_mean=0.5, image_std=0.25
    )


class OnlineTeachers(nn.Module):
    """The student, plus every teacher member run without gradients on each batch it sees.

    The teachers are kept out of the module tree (no parameters to optimise, nothing in the
    checkpoint), as an online-KD implementation would freeze them.
    """

    def __init__(self, student: nn.Module, teachers: dict[str, list[UnimodalClassifier]]) -> None:
        super().__init__()
        self.student = student
        self.num_outputs = 1
        object.__setattr__(self, "_teachers", teachers)
        self.targets: dict[str, Tensor] = {}

    def forward(self, batch: MultiModalBatch) -> dict[str, HeadOutput]:
        self.targets = {}
        with torch.no_grad():
            for modality, members in self._teachers.items():
                out = torch.full((batch.size, 1), float("nan"))
                logits = [m.eval()(batch).get(modality) for m in members]
                if logits and logits[0] is not None:
                    mean = torch.stack([h.logits for h in logits]).mean(dim=0)  # (n, K)
                    out[logits[0].index] = mean
                self.targets[modality] = out
        return self.student(batch)


def _teachers() -> dict[str, list[UnimodalClassifier]]:
    config = _config("parameters_teachers.yml")["teachers"]
    teachers: dict[str, list[UnimodalClassifier]] = {}
    for modality in ("ehr", "cxr"):
        for member in config[modality]["members"].values():
            spec = MemberSpec(**member)
            encoder = build_encoder(spec.encoder, **spec.settings)
            model = UnimodalClassifier(encoder, 1)
            model.requires_grad_(False)
            teachers.setdefault(modality, []).append(model)
    return teachers


class _Mode:
    """One way of training: a model, its loss and its loaders; ``epoch()`` times one more epoch.

    Each call is one ``mindkd.training.fit`` epoch (train pass + a small validation pass), so modes
    can be interleaved round by round and a busy machine slows them alike.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Any,
        train: MultiModalDataset,
        val: MultiModalDataset,
        cfg: FitConfig,
    ) -> None:
        self.model, self.loss_fn, self.cfg = model, loss_fn, cfg.model_copy(update={"epochs": 1})
        self.train = make_loader(train, cfg.batch_size, shuffle=True, seed=0, drop_last=True)
        self.val = make_loader(val, 256, shuffle=False)
        self.seconds: list[float] = []

    def epoch(self) -> None:
        result = fit(
            self.model, self.loss_fn, self.train, self.val, RoutedEvaluator("binary"), self.cfg
        )
        self.seconds.append(float(result.history[0]["seconds"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stays", type=int, default=600, help="train samples")
    parser.add_argument("--paired", type=float, default=0.35, help="share with an X-ray")
    parser.add_argument("--steps", type=int, default=48, help="hourly steps per stay")
    parser.add_argument("--size", type=int, default=64, help="image side in px")
    parser.add_argument("--epochs", type=int, default=6, help="epochs of no_kd and cached")
    parser.add_argument("--online-epochs", type=int, default=2, help="epochs with online teachers")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    params = DistillParams.model_validate(_config("parameters_distill.yml")["distill"])
    cfg = params.fit.fit_config().model_copy(
        update={"device": "cpu", "progress": False, "patience": None}
    )
    shape = (args.paired, args.steps, args.size)
    plain = _dataset(args.stays, *shape, seed=0, teacher=False)
    cached = _dataset(args.stays, *shape, seed=0, teacher=True)
    val = _dataset(64, *shape, seed=1, teacher=True)
    val_plain = _dataset(64, *shape, seed=1, teacher=False)

    no_kd_spec, spec = (_student_spec(params, a, args.size) for a in (0.0, params.alpha or 0.5))
    torch.manual_seed(0)
    mind = MindLoss("binary", spec.loss)
    teachers = _teachers()
    online = OnlineTeachers(build_network(spec), teachers)

    def online_loss(outputs: Mapping[str, HeadOutput], labels: Tensor, _: Any) -> Any:
        return mind(outputs, labels, online.targets)

    modes = {
        "no_kd": _Mode(
            build_network(no_kd_spec), MindLoss("binary", no_kd_spec.loss), plain, val_plain, cfg
        ),
        "cached": _Mode(build_network(spec), mind, cached, val, cfg),
        "online": _Mode(online, online_loss, plain, val_plain, cfg),
    }
    for round_ in range(args.epochs):  # interleaved: load on a shared machine hits every mode
        for name, mode in modes.items():
            if name != "online" or round_ < args.online_epochs:
                mode.epoch()
    results = {name: mode.seconds for name, mode in modes.items()}

    teacher_params = sum(count_parameters(m) for ms in teachers.values() for m in ms)
    print(
        f"distill cost per epoch: {args.stays} train stays, {args.paired:.0%} paired, "
        f"{args.steps} h, {args.size} px, {args.threads} threads, batch {cfg.batch_size}"
    )
    print(
        f"student {count_parameters(build_network(spec)):,} parameters; "
        f"teachers (6 members) {teacher_params:,}"
    )
    print("s/epoch: best (the least disturbed epoch) and median of the interleaved epochs")
    for name, seconds in results.items():
        shown = ", ".join(f"{s:.2f}" for s in seconds)
        print(
            f"  {name:7s} best {min(seconds):7.2f}  median {statistics.median(seconds):7.2f}"
            f"   (epochs: {shown})"
        )
    no_kd, with_cache, with_teachers = (min(results[k]) for k in ("no_kd", "cached", "online"))
    ratio = with_cache / no_kd
    print(f"cached / no_kd = {ratio:.3f}  (target <= 1.15: {'PASS' if ratio <= 1.15 else 'FAIL'})")
    print(f"online / no_kd = {with_teachers / no_kd:.2f}")
    print(f"online / cached = {with_teachers / with_cache:.2f}")


if __name__ == "__main__":
    main()

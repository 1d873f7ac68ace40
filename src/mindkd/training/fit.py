"""A reusable fit loop for every model of the project: teachers, students and baselines.

``fit`` trains with AdamW, an optional warm-up then cosine / plateau schedule, gradient clipping and
optional mixed precision on CUDA; it evaluates on the validation loader after every epoch, keeps the
weights of the best epoch by one monitored metric, stops early when that metric stops improving, and
returns the history as data (``FitResult``): tracking happens through the Kedro catalog, not here.

The loop's contracts:

* a loader yields ``(MultiModalBatch, targets)`` with ``targets = {"labels", "teacher", "position"}``
  (``mindkd.training.data.collate_multimodal``);
* ``model(batch) -> {head: HeadOutput}``;
* ``loss_fn(outputs, labels, teacher) -> {"loss": scalar with graph, <term>: scalar, ...}``
  (``MindLoss``); every returned term is averaged over the epoch's batches as ``train/<term>``;
* ``evaluate_fn(model, val_loader) -> {metric: float}``, logged as ``val/<metric>``
  (``RoutedEvaluator`` is the usual one).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mindkd.models.batch import HeadOutput, MultiModalBatch, TaskKind
from mindkd.models.student import HEADS, RoutedModel, Routing, route
from mindkd.training.data import MultiModalDataset, make_loader
from mindkd.training.device import resolve_device, to_device
from mindkd.training.metrics import auprc, auroc
from mindkd.training.seed import deterministic, seed_everything

logger = logging.getLogger(__name__)

LossFn = Callable[
    [Mapping[str, HeadOutput], Tensor, Mapping[str, Tensor] | None], Mapping[str, Tensor]
]
EvaluateFn = Callable[[nn.Module, Iterable[Any]], Mapping[str, float]]
EpochCallback = Callable[[int, float], None]  # (epoch, monitored value) after validation
StepHook = Callable[[nn.Module, int], None]  # (model, steps taken) after every optimiser step
Scheduler = Literal["cosine", "plateau", "none"]
AmpMode = Literal["off", "bf16", "fp16"]


class FitConfig(BaseModel):
    """Settings of ``fit``; unknown keys are rejected.

    Attributes:
        epochs: maximum number of epochs.
        batch_size: the batch size callers give ``make_loader`` (``fit`` warns if a loader differs).
        lr, weight_decay: AdamW settings (the only optimiser; ``optimizer: adamw``).
        scheduler: ``cosine`` (per-step decay to ``min_lr_ratio · lr`` after warm-up), ``plateau``
            (multiply the learning rate by ``plateau_factor`` after ``plateau_patience`` epochs without
            improvement of ``monitor``) or ``none``; ``warmup_epochs`` of per-step linear warm-up first.
        monitor, mode: the history key that selects the best epoch and drives early stopping
            (``val/<metric>`` from ``evaluate_fn`` or ``train/<term>``), maximised or minimised.
        patience: epochs without an improvement larger than ``min_delta`` before stopping; None = never.
        grad_clip_norm: clip the global gradient norm to this value; None = no clipping.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:<n>``.
        amp: ``bf16`` / ``fp16`` autocast for training steps on CUDA (ignored on the CPU); ``off``.
        seed: seeds random, numpy and torch at the start of ``fit`` and the loader order per epoch.
        deterministic: run under ``mindkd.training.seed.deterministic()``.
        progress: a tqdm bar per epoch.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    optimizer: Literal["adamw"] = "adamw"
    scheduler: Scheduler = "cosine"
    warmup_epochs: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)
    plateau_factor: float = Field(0.5, gt=0.0, lt=1.0)
    plateau_patience: int = Field(2, ge=0)
    monitor: str = "val/auroc"
    mode: Literal["max", "min"] = "max"
    patience: int | None = Field(5, ge=1)
    min_delta: float = Field(0.0, ge=0.0)
    grad_clip_norm: float | None = Field(1.0, gt=0.0)
    device: str = "auto"
    amp: AmpMode = "off"
    seed: int = Field(0, ge=0, lt=2**32)
    deterministic: bool = True
    progress: bool = True

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit()):
            return value
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<n>', got {value!r}")

    @field_validator("monitor")
    @classmethod
    def _known_prefix(cls, value: str) -> str:
        if not value.startswith(("val/", "train/")):
            raise ValueError(
                f"monitor must name a history key 'val/<metric>' or 'train/<term>', got {value!r}"
            )
        return value


class LoaderFitConfig(FitConfig):
    """``FitConfig`` plus the loader settings: the ``fit`` block of a pipeline's parameters."""

    eval_batch_size: int = Field(256, ge=1, description="batch size of validation and prediction")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes")

    def fit_config(self) -> FitConfig:
        """The settings ``fit`` takes (the loader settings left out)."""
        return FitConfig(**self.model_dump(include=set(FitConfig.model_fields)))


@dataclass
class FitResult:
    """What ``fit`` returns: the best epoch's weights (on the CPU) and the per-epoch history.

    ``history`` holds one dict per epoch: ``epoch``, ``train/<term>`` (means over the epoch's batches),
    ``val/<metric>``, ``lr`` (at the epoch's last step) and ``seconds``.
    """

    state_dict: dict[str, Tensor]
    history: list[dict[str, float]]
    best_epoch: int
    best_score: float
    stopped_early: bool = False
    monitor: str = "val/auroc"

    def history_frame(self) -> pd.DataFrame:
        """The history as a table, one row per epoch."""
        return pd.DataFrame(self.history)


class _LearningRate:
    """Per-step learning rate: linear warm-up, then cosine or constant, times a plateau scale."""

    def __init__(self, cfg: FitConfig, steps_per_epoch: int) -> None:
        self.cfg = cfg
        self.warmup_steps = cfg.warmup_epochs * steps_per_epoch
        self.total_steps = cfg.epochs * steps_per_epoch
        self.scale = 1.0
        self._best = math.nan
        self._bad_epochs = 0

    def at(self, step: int) -> float:
        cfg = self.cfg
        if step < self.warmup_steps:
            factor = (step + 1) / self.warmup_steps
        elif cfg.scheduler == "cosine":
            progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
            factor = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (
                1 + math.cos(math.pi * progress)
            )
        else:
            factor = 1.0
        return cfg.lr * factor * self.scale

    def end_epoch(self, epoch: int, score: float) -> None:
        """Plateau bookkeeping after an epoch (only for ``scheduler: plateau``, after warm-up)."""
        if self.cfg.scheduler != "plateau" or epoch <= self.cfg.warmup_epochs:
            return
        if _improved(score, self._best, self.cfg.mode, 0.0):
            self._best, self._bad_epochs = score, 0
            return
        self._bad_epochs += 1
        if self._bad_epochs > self.cfg.plateau_patience:
            self.scale *= self.cfg.plateau_factor
            self._bad_epochs = 0
            logger.info("plateau: learning rate scaled to %.3g x lr", self.scale)


def _improved(score: float, best: float, mode: str, min_delta: float) -> bool:
    if not math.isfinite(score):
        return False
    if not math.isfinite(best):
        return True
    return score > best + min_delta if mode == "max" else score < best - min_delta


@dataclass
class _Precision:
    """Autocast and gradient scaling for one device and amp setting."""

    dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None

    @classmethod
    def build(cls, amp: AmpMode, device: torch.device) -> _Precision:
        if amp == "off":
            return cls(None, None)
        if device.type != "cuda":
            logger.info("amp=%s is ignored on %s (autocast runs on CUDA only)", amp, device)
            return cls(None, None)
        if amp == "bf16":
            return cls(torch.bfloat16, None)
        return cls(torch.float16, torch.amp.GradScaler("cuda"))

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.dtype)


def fit(  # noqa: PLR0917 - the documented call: fit(model, loss_fn, train, val, evaluate_fn, cfg)
    model: nn.Module,
    loss_fn: LossFn,
    train_loader: DataLoader[Any],
    val_loader: Iterable[Any],
    evaluate_fn: EvaluateFn,
    cfg: FitConfig | Mapping[str, Any] | None = None,
    on_epoch: EpochCallback | None = None,
    on_step: StepHook | None = None,
) -> FitResult:
    """Train ``model`` and return the best epoch's weights (also loaded into ``model``) and history.

    ``on_epoch(epoch, score)`` is called after each epoch's validation with the monitored value;
    an exception it raises (a tuner's pruning signal) stops training and propagates.
    ``on_step(model, steps)`` runs after every optimiser step (MCKD's meta step,
    ``mindkd.training.mckd.MetaStep``). A loss that is an ``nn.Module`` moves to the device too.

    Seeds everything with ``cfg.seed`` at the start (seed before building the model too, for identical
    initial weights) and, with ``cfg.deterministic``, runs under torch's deterministic algorithms: two
    CPU runs with the same seed, model and data give the same history (apart from ``seconds``) and
    weights. The validation pass runs in full precision, in eval mode, without gradients. The model is
    left on the training device.
    """
    cfg = _as_fit_config(cfg)
    device = resolve_device(cfg.device)
    loader_batch = getattr(train_loader, "batch_size", None)
    if loader_batch is not None and loader_batch != cfg.batch_size:
        logger.warning(
            "train loader batch size %s differs from batch_size=%s", loader_batch, cfg.batch_size
        )
    with deterministic(cfg.deterministic):
        seed_everything(cfg.seed)
        model.to(device)
        if isinstance(loss_fn, nn.Module):
            loss_fn.to(device)
        trainer = _Trainer(model, loss_fn, cfg, device, len(train_loader), on_step=on_step)
        return trainer.run(train_loader, val_loader, evaluate_fn, on_epoch)


def _as_fit_config(cfg: FitConfig | Mapping[str, Any] | None) -> FitConfig:
    if cfg is None:
        return FitConfig()
    return cfg if isinstance(cfg, FitConfig) else FitConfig.model_validate(dict(cfg))


def cpu_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


class _Trainer:
    """The state of one ``fit`` call: model, loss, optimiser, schedule, precision, step count."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        cfg: FitConfig,
        device: torch.device,
        steps_per_epoch: int,
        *,
        on_step: StepHook | None = None,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.cfg = cfg
        self.device = device
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.schedule = _LearningRate(cfg, steps_per_epoch)
        self.precision = _Precision.build(cfg.amp, device)
        self.step = 0
        self.on_step = on_step
        logger.info(
            "fit: %d trainable parameters on %s, up to %d epochs of %d steps",
            sum(p.numel() for p in params),
            device,
            cfg.epochs,
            steps_per_epoch,
        )

    def run(
        self,
        train_loader: DataLoader[Any],
        val_loader: Iterable[Any],
        evaluate_fn: EvaluateFn,
        on_epoch: EpochCallback | None = None,
    ) -> FitResult:
        cfg = self.cfg
        history: list[dict[str, float]] = []
        best_state: dict[str, Tensor] | None = None
        best_epoch, best_score, bad_epochs, stopped_early = 0, math.nan, 0, False
        for epoch in range(1, cfg.epochs + 1):
            start = time.perf_counter()
            _set_epoch(train_loader, epoch - 1)
            record: dict[str, float] = {
                "epoch": float(epoch),
                **self.train_epoch(train_loader, epoch),
            }
            self.model.eval()
            with torch.no_grad():
                val_metrics = dict(evaluate_fn(self.model, val_loader))
            record.update({f"val/{k}": float(v) for k, v in val_metrics.items()})
            record["lr"] = self.optimizer.param_groups[0]["lr"]
            record["seconds"] = time.perf_counter() - start
            history.append(record)
            score = _monitored(record, cfg.monitor)
            _log_epoch(record, cfg)
            if on_epoch is not None:
                on_epoch(epoch, score)
            if _improved(score, best_score, cfg.mode, cfg.min_delta):
                best_epoch, best_score, bad_epochs = epoch, score, 0
                best_state = cpu_state(self.model)
            else:
                bad_epochs += 1
            self.schedule.end_epoch(epoch, score)
            if cfg.patience is not None and bad_epochs >= cfg.patience:
                stopped_early = epoch < cfg.epochs
                logger.info(
                    "early stop after epoch %d: best %s %.4f at epoch %d",
                    epoch,
                    cfg.monitor,
                    best_score,
                    best_epoch,
                )
                break
        if best_state is None:
            logger.warning("%s was never finite: keeping the last epoch's weights", cfg.monitor)
            best_epoch, best_state = len(history), cpu_state(self.model)
        self.model.load_state_dict(best_state)
        return FitResult(
            state_dict=best_state,
            history=history,
            best_epoch=best_epoch,
            best_score=best_score,
            stopped_early=stopped_early,
            monitor=cfg.monitor,
        )

    def train_epoch(self, loader: DataLoader[Any], epoch: int) -> dict[str, float]:
        """One pass over ``loader``; returns ``train/<term>``: the mean of each loss term."""
        self.model.train()
        sums: dict[str, Tensor] = {}
        counts: dict[str, int] = {}
        bar = tqdm(
            loader,
            desc=f"epoch {epoch}/{self.cfg.epochs}",
            unit="batch",
            leave=False,
            disable=not self.cfg.progress,
        )
        for cpu_batch, cpu_targets in bar:
            terms = self.train_step(cpu_batch, cpu_targets)
            for name, term in terms.items():
                value = term.detach().float()
                sums[name] = sums[name] + value if name in sums else value
                counts[name] = counts.get(name, 0) + 1
            if self.cfg.progress and self.step % 20 == 0:
                bar.set_postfix(loss=f"{float(terms['loss']):.4f}")  # a host sync every 20 steps
        if not sums:
            raise ValueError("the training loader yielded no batches")
        means = {f"train/{k}": float(v) / counts[k] for k, v in sums.items()}  # one sync per term
        if not math.isfinite(means["train/loss"]):
            raise FloatingPointError(
                f"the training loss became {means['train/loss']} in epoch {epoch}: lower `lr`, set "
                "`grad_clip_norm`, or check the inputs for NaN"
            )
        return means

    def train_step(
        self, cpu_batch: MultiModalBatch, cpu_targets: Mapping[str, Any]
    ) -> Mapping[str, Tensor]:
        batch = cpu_batch.to(self.device)
        targets = to_device(cpu_targets, self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = self.schedule.at(self.step)
        with self.precision.autocast():
            terms = self.loss_fn(self.model(batch), targets["labels"], targets.get("teacher"))
        self.optimizer.zero_grad(set_to_none=True)
        self._backward(terms["loss"])
        self.step += 1
        if self.on_step is not None:
            self.on_step(self.model, self.step)
        return terms

    def _backward(self, loss: Tensor) -> None:
        clip, scaler = self.cfg.grad_clip_norm, self.precision.scaler
        if scaler is not None:
            scaler.scale(loss).backward()
            if clip is not None:
                scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            scaler.step(self.optimizer)
            scaler.update()
            return
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.optimizer.step()


def _set_epoch(loader: DataLoader[Any], epoch: int) -> None:
    """Tell an epoch-aware sampler (``EpochSeededSampler``, ``DistributedSampler``) the epoch."""
    for sampler in (
        getattr(loader, "sampler", None),
        getattr(getattr(loader, "batch_sampler", None), "sampler", None),
    ):
        if sampler is not None and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
            return


def _monitored(record: Mapping[str, float], monitor: str) -> float:
    if monitor not in record:
        known = sorted(k for k in record if k.startswith(("val/", "train/")))
        raise ValueError(
            f"monitor={monitor!r} (config key `monitor`) is not in the history; known keys: {known}"
        )
    return float(record[monitor])


def _log_epoch(record: Mapping[str, float], cfg: FitConfig) -> None:
    shown = ["train/loss", *(k for k in record if k.startswith("val/") and k.count("/") == 1)]
    if cfg.monitor not in shown:
        shown.append(cfg.monitor)
    parts = "  ".join(f"{k} {record[k]:.4f}" for k in shown if k in record)
    logger.info(
        "epoch %d/%d  %s  lr %.3g  %.1fs",
        int(record["epoch"]),
        cfg.epochs,
        parts,
        record["lr"],
        record["seconds"],
    )


# ---------------------------------------------------------------------------------------------------
# Inference


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _has_custom_predict(model: nn.Module) -> bool:
    """Whether ``model.predict`` differs from routing its own forward outputs (``models.route``)."""
    impl = getattr(type(model), "predict", None)
    return impl is not None and impl is not RoutedModel.predict


def _batches(
    model: nn.Module, loader: Iterable[Any], routing: Routing
) -> Iterator[tuple[MultiModalBatch, Mapping[str, Any], dict[str, HeadOutput], Tensor]]:
    """``(batch, targets, head outputs, routed logits)`` for each batch, in eval mode without grad."""
    device = _model_device(model)
    for cpu_batch, cpu_targets in loader:
        batch = cpu_batch.to(device)
        targets = to_device(cpu_targets, device)
        outputs = model(batch)
        if _has_custom_predict(model):
            routed = model.predict(batch, routing)  # type: ignore[operator]
        else:
            k = getattr(model, "num_outputs", None) or int(targets["labels"].shape[1])
            routed = route(outputs, batch.size, k, routing, device=device)
        yield batch, targets, outputs, routed


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def predict(
    model: nn.Module, loader: Iterable[Any], routing: Routing = "fused"
) -> dict[str, np.ndarray]:
    """Logits of every sample the loader yields, in dataset order, as numpy arrays.

    Returns ``routed (N, K)`` (paired -> fused head, or the mean of heads with ``routing="mean"``;
    unimodal -> its own head), one ``(N, K)`` array per head seen (NaN rows where the head does not
    apply), ``labels (N, K)``, ``position (N,)`` (dataset indices, ascending) and, when the dataset has
    keys, ``keys (N,)``. Runs on the model's device, in eval mode, without gradients.
    """
    chunks: dict[str, list[np.ndarray]] = {"routed": [], "labels": [], "position": []}
    heads: dict[
        str, list[tuple[np.ndarray, np.ndarray]]
    ] = {}  # head -> [(batch positions, logits)]
    offset = 0
    with _eval_mode(model):
        for batch, targets, outputs, routed in _batches(model, loader, routing):
            chunks["routed"].append(routed.float().cpu().numpy())
            chunks["labels"].append(targets["labels"].float().cpu().numpy())
            chunks["position"].append(targets["position"].cpu().numpy())
            for head, out in outputs.items():
                rows = out.index.cpu().numpy() + offset
                heads.setdefault(head, []).append((rows, out.logits.float().cpu().numpy()))
            offset += batch.size
    if offset == 0:
        raise ValueError("the loader yielded no batches")
    result = {name: np.concatenate(parts) for name, parts in chunks.items()}
    k = result["routed"].shape[1]
    for head in (h for h in HEADS if h in heads):
        logits = np.full((offset, k), np.nan, dtype=np.float32)
        for rows, values in heads[head]:
            logits[rows] = values
        result[head] = logits
    order = np.argsort(result["position"], kind="stable")
    result = {name: values[order] for name, values in result.items()}
    keys = getattr(getattr(loader, "dataset", None), "keys", None)
    if keys is not None:
        result["keys"] = np.asarray(keys)[result["position"]]
    return result


def scores_for_metrics(logits: np.ndarray, kind: TaskKind) -> np.ndarray:
    """What ranking metrics read: the logits themselves (sigmoid tasks) or softmax probabilities."""
    if kind != "multiclass":
        return logits
    shifted = logits - logits.max(axis=1, keepdims=True)
    expd = np.exp(shifted)
    return expd / expd.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class RoutedEvaluator:
    """An ``evaluate_fn`` for ``fit``: AUROC / AUPRC of the routed logits, plus the loss terms.

    One pass over the loader; with ``loss_fn`` the validation loss terms are returned too (``loss``,
    ``task``, ``kd`` and per head; needs teacher targets in the loader when ``alpha > 0``). No bootstrap
    here: intervals belong to the final evaluation, not to every epoch.
    """

    kind: TaskKind
    routing: Routing = "fused"
    loss_fn: LossFn | None = None

    def __call__(self, model: nn.Module, loader: Iterable[Any]) -> dict[str, float]:
        logits: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        with _eval_mode(model):
            for _, targets, outputs, routed in _batches(model, loader, self.routing):
                logits.append(routed.float().cpu().numpy())
                labels.append(targets["labels"].float().cpu().numpy())
                if self.loss_fn is not None:
                    for name, value in self.loss_fn(
                        outputs, targets["labels"], targets.get("teacher")
                    ).items():
                        sums[name] = sums.get(name, 0.0) + float(value)
                        counts[name] = counts.get(name, 0) + 1
        y = np.concatenate(labels)
        scores = scores_for_metrics(np.concatenate(logits), self.kind)
        metrics = {"auroc": auroc(y, scores), "auprc": auprc(y, scores)}
        metrics.update({name: total / counts[name] for name, total in sums.items()})
        return metrics


def fit_datasets(  # noqa: PLR0917 - fit's order, with datasets for loaders
    model: nn.Module,
    loss_fn: LossFn,
    train: MultiModalDataset,
    val: MultiModalDataset,
    evaluate_fn: EvaluateFn,
    cfg: LoaderFitConfig,
    on_epoch: EpochCallback | None = None,
    on_step: StepHook | None = None,
) -> FitResult:
    """``fit`` on datasets: a seeded shuffled train loader and an ordered val loader from ``cfg``.

    The last train batch is dropped when it would be smaller than a full one, so batch norm never
    sees a batch of one.
    """
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"training needs train and val samples, got {len(train)}/{len(val)}")
    train_loader = make_loader(
        train,
        cfg.batch_size,
        shuffle=True,
        seed=cfg.seed,
        num_workers=cfg.num_workers,
        drop_last=len(train) > cfg.batch_size,  # no batch of one for batch norm
    )
    val_loader = make_loader(val, cfg.eval_batch_size, shuffle=False)
    return fit(
        model, loss_fn, train_loader, val_loader, evaluate_fn, cfg.fit_config(), on_epoch, on_step
    )

"""What a model costs to keep and to serve: parameters, bytes of its state dict, CPU latency.

Latency is measured per sample at batch size 1 on the CPU with a fixed number of torch threads
(restored afterwards): ``warmup`` untimed calls, then one timed call per input; p50 / p95 / mean in
milliseconds over the timed calls.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from mindkd.models.registry import count_parameters

logger = logging.getLogger(__name__)


def state_dict_bytes(state_dict: Mapping[str, Any]) -> int:
    """Size in bytes of ``torch.save(state_dict)``: what the weights take on disk."""
    buffer = io.BytesIO()
    torch.save(
        {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in state_dict.items()}, buffer
    )
    return buffer.getbuffer().nbytes


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)``; the previous value is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure_latency(
    fn: Callable[[Any], Any], inputs: Sequence[Any], *, warmup: int = 5, threads: int = 1
) -> dict[str, float]:
    """p50 / p95 / mean milliseconds of ``fn(x)`` over ``inputs`` (one call each, after warm-up)."""
    if not inputs:
        raise ValueError("measure_latency needs at least one input")
    timings = np.empty(len(inputs))
    with torch_threads(threads), torch.inference_mode():
        for i in range(warmup):
            fn(inputs[i % len(inputs)])
        for i, x in enumerate(inputs):
            start = time.perf_counter()
            fn(x)
            timings[i] = time.perf_counter() - start
    ms = timings * 1e3
    return {
        "latency_p50_ms": float(np.percentile(ms, 50)),
        "latency_p95_ms": float(np.percentile(ms, 95)),
        "latency_mean_ms": float(ms.mean()),
        "latency_samples": float(len(inputs)),
        "latency_threads": float(threads),
    }


def model_compression(
    model: nn.Module,
    predict: Callable[[Any], Any],
    inputs: Sequence[Any],
    *,
    teacher_parameters: int | None = None,
    warmup: int = 5,
    threads: int = 1,
) -> dict[str, float]:
    """Parameters, state-dict bytes, latency at batch 1 and the size next to the teachers'."""
    model.eval()
    parameters = count_parameters(model)
    out: dict[str, float] = {
        "parameters": float(parameters),
        "state_dict_bytes": float(state_dict_bytes(model.state_dict())),
        **measure_latency(predict, inputs, warmup=warmup, threads=threads),
    }
    out["teacher_fraction"] = (
        parameters / teacher_parameters if teacher_parameters else float("nan")
    )
    return out


def ensemble_compression(parameters: int, teacher_parameters: int | None) -> dict[str, float]:
    """The teacher ensembles' row: parameters, float32 bytes (an estimate), no latency measured.

    The distill stage never runs a teacher, so their latency is not measured here.
    """
    nan = float("nan")
    return {
        "parameters": float(parameters),
        "state_dict_bytes": float(4 * parameters),  # float32 weights, estimate
        "latency_p50_ms": nan,
        "latency_p95_ms": nan,
        "latency_mean_ms": nan,
        "latency_samples": 0.0,
        "latency_threads": nan,
        "teacher_fraction": parameters / teacher_parameters if teacher_parameters else nan,
    }

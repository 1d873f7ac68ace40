"""Where training runs: ``resolve_device("auto")`` picks CUDA when present, the CPU otherwise."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import torch

logger = logging.getLogger(__name__)

DeviceSpec = Literal["auto", "cpu", "cuda"]
_T = TypeVar("_T")


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """The torch device for ``spec``: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda[:n]``.

    Raises ``ValueError`` naming the config key ``device`` when CUDA is asked for but absent, or the
    spec is not a device this project runs on.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    if spec == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        logger.debug("device 'auto' resolved to %s", device)
        return device
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={spec!r} (config key `device`) but CUDA is not available on this machine: "
                "use 'auto' or 'cpu'"
            )
        return torch.device(spec)
    raise ValueError(
        f"device must be 'auto', 'cpu' or 'cuda[:n]' (config key `device`), got {spec!r}"
    )


def to_device(tree: _T, device: torch.device | str) -> _T:
    """``tree`` with every tensor moved to ``device``: tensors, mappings, lists and tuples, recursively.

    Objects with a ``to(device)`` method (e.g. ``MultiModalBatch``) are moved with it; anything else is
    returned as is.
    """
    non_blocking = torch.device(device).type == "cuda"
    if isinstance(tree, torch.Tensor):
        return tree.to(device, non_blocking=non_blocking)  # type: ignore[return-value]
    if isinstance(tree, Mapping):
        return {k: to_device(v, device) for k, v in tree.items()}  # type: ignore[return-value]
    if isinstance(tree, tuple | list):
        return type(tree)(to_device(v, device) for v in tree)
    move: Any = getattr(tree, "to", None)
    if callable(move):
        return move(device)
    return tree

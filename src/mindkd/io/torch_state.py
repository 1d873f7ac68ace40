"""``TorchStateDictDataset``: a torch state dict (or any tensor mapping) as one file, versionable.

Saves with ``torch.save`` through fsspec and loads with ``torch.load(..., weights_only=True)``, so
loading never unpickles arbitrary objects. Tensors are moved to the CPU before saving and loaded on
the CPU (``load_args: {map_location: ...}`` changes that). Save and load are symmetric: what a node
returns is what the next node receives, so a ``MemoryDataset`` can stand in for it in tests.

Catalog entry (works with ``versioned: true`` and dataset factories)::

    "{task}.teacher_{member}.weights":
      type: mindkd.io.torch_state.TorchStateDictDataset
      filepath: ${globals:data_root}/06_models/{task}/teachers/{member}.pt
      versioned: true
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from kedro.io.core import DatasetError, Version

from mindkd.io.fsspec_base import FsspecVersionedDataset, incomplete, staged

StateDict = dict[str, Any]


class TorchStateDictDataset(FsspecVersionedDataset[StateDict, StateDict]):
    """Kedro dataset for a state dict: ``torch.save`` on save, ``torch.load(weights_only=True)`` on load."""

    def __init__(
        self,
        *,
        filepath: str,
        load_args: dict[str, Any] | None = None,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        rebuild: str | None = None,
    ) -> None:
        super().__init__(
            filepath=filepath,
            version=version,
            credentials=credentials,
            fs_args=fs_args,
            metadata=metadata,
            rebuild=rebuild,
        )
        self._load_args = {"map_location": "cpu", **(load_args or {})}

    def load(self) -> StateDict:
        location = self._load_location()
        with self._fs.open(location, "rb") as handle:
            data = handle.read()
        try:
            return torch.load(io.BytesIO(data), weights_only=True, **self._load_args)
        except (RuntimeError, EOFError, OSError) as exc:  # a truncated or foreign file
            raise incomplete(location, f"torch cannot read it ({exc})", self._rebuild) from exc

    def save(self, data: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise DatasetError(
                f"TorchStateDictDataset saves a state dict (a mapping), got {type(data).__name__}; "
                "return `model.state_dict()` from the node, not the module"
            )
        buffer = io.BytesIO()
        torch.save(_to_cpu(data), buffer)
        location = self._save_location()
        if self._protocol == "file":
            with staged(Path(location)) as staging:  # renamed onto the file once complete
                staging.write_bytes(buffer.getvalue())
        else:
            with self._fs.open(location, "wb") as handle:
                handle.write(buffer.getvalue())
        self._invalidate_cache()


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, Mapping):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(item) for item in value)
    return value


def state_dict_sha256(state_dict: Mapping[str, Any]) -> str:
    """A digest of a state dict's names, dtypes, shapes and values (not of its file encoding).

    Two state dicts with equal tensors have equal digests whatever file, device or format held them.
    """
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        value = state_dict[name]
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            digest.update(f"{name}={value!r};".encode())
    return digest.hexdigest()

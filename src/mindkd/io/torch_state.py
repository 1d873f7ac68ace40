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
from copy import deepcopy
from pathlib import PurePosixPath
from typing import Any

import fsspec
import torch
from kedro.io.core import (
    AbstractVersionedDataset,
    DatasetError,
    Version,
    get_filepath_str,
    get_protocol_and_path,
)

StateDict = dict[str, Any]


class TorchStateDictDataset(AbstractVersionedDataset[StateDict, StateDict]):
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
    ) -> None:
        protocol, path = get_protocol_and_path(filepath, version)
        _fs_args = deepcopy(fs_args) or {}
        if protocol == "file":
            _fs_args.setdefault("auto_mkdir", True)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **_fs_args)
        self._load_args = {"map_location": "cpu", **(load_args or {})}
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(path),
            version=version,
            exists_function=self._fs.exists,
            glob_function=self._fs.glob,
        )

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}

    def load(self) -> StateDict:
        path = get_filepath_str(self._get_load_path(), self._protocol)
        with self._fs.open(path, "rb") as handle:
            return torch.load(io.BytesIO(handle.read()), weights_only=True, **self._load_args)

    def save(self, data: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise DatasetError(
                f"TorchStateDictDataset saves a state dict (a mapping), got {type(data).__name__}; "
                "return `model.state_dict()` from the node, not the module"
            )
        buffer = io.BytesIO()
        torch.save(_to_cpu(data), buffer)
        path = get_filepath_str(self._get_save_path(), self._protocol)
        with self._fs.open(path, "wb") as handle:
            handle.write(buffer.getvalue())
        self._invalidate_cache()

    def _exists(self) -> bool:
        try:
            path = get_filepath_str(self._get_load_path(), self._protocol)
        except DatasetError:
            return False
        return bool(self._fs.exists(path))

    def _release(self) -> None:
        super()._release()
        self._invalidate_cache()

    def _invalidate_cache(self) -> None:
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))


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

"""The encoder interface and the registries that build encoders and fusion modules by name.

Built-in components register themselves with a decorator when their module (``ehr``, ``cxr``,
``fusion``) is imported; every lookup first imports those modules, so what a name resolves to never
depends on what the caller happened to import.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, get_args

from torch import Tensor, nn

Modality = Literal["ehr", "cxr"]
MODALITIES: tuple[Modality, ...] = get_args(Modality)

#: The default ``in_channels`` of a standalone EHR encoder: 17 standardised values then 17 masks
#: (``ehr.categorical: continuous``). Pipelines and serving never rely on it: they build EHR encoders
#: with the width of the store they read (``with_ehr_channels``; docs/architecture.md).
EHR_CHANNELS = 34

F = TypeVar("F", bound=Callable[..., nn.Module])


class RegistryError(ValueError):
    """A component name, modality or keyword argument that the registry cannot resolve."""


class Encoder(nn.Module):
    """A modality encoder: ``forward_features(x, lengths) -> (B, num_features)``.

    EHR encoders take ``x (B, T, in_channels)`` and ``lengths (B,)`` in hours (``None``: every step
    is valid) and ignore every step past a sample's length. CXR encoders take
    ``x (B, in_channels, S, S)`` and ignore ``lengths``; the argument lets one call serve both.
    """

    modality: ClassVar[Modality]
    num_features: int
    in_channels: int

    def forward_features(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.forward_features(x, lengths)


@dataclass(frozen=True)
class _Entry:
    name: str
    factory: Callable[..., nn.Module]
    modality: Modality | None


class _Registry:
    """Name -> factory, with lazy import of the modules that hold the built-in entries."""

    def __init__(self, kind: str, builtin_modules: tuple[str, ...]) -> None:
        self.kind = kind
        self._builtin_modules = builtin_modules
        self._entries: dict[str, _Entry] = {}

    def add(self, entry: _Entry) -> None:
        if entry.name in self._entries:
            raise RegistryError(f"{self.kind} {entry.name!r} is already registered")
        self._entries[entry.name] = entry

    def entries(self) -> dict[str, _Entry]:
        for module in self._builtin_modules:
            importlib.import_module(module)
        return self._entries

    def get(self, name: str) -> _Entry:
        entries = self.entries()
        if name not in entries:
            raise RegistryError(
                f"unknown {self.kind} {name!r}; available: {', '.join(sorted(entries))}"
            )
        return entries[name]

    def build(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> nn.Module:
        entry = self.get(name)
        _check_kwargs(self.kind, name, entry.factory, kwargs)
        return entry.factory(*args, **kwargs)


def _check_kwargs(kind: str, name: str, factory: Callable[..., Any], kwargs: Iterable[str]) -> None:
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise RegistryError(
            f"{kind} {name!r} does not take {', '.join(unknown)}; "
            f"it takes: {', '.join(params) or 'nothing'}"
        )


_ENCODERS = _Registry("encoder", ("mindkd.models.ehr", "mindkd.models.cxr"))
_FUSIONS = _Registry("fusion", ("mindkd.models.fusion",))


def register_encoder(name: str, modality: Modality) -> Callable[[F], F]:
    """Register an encoder factory under ``name``; its keyword arguments are its settings."""
    if modality not in MODALITIES:
        raise RegistryError(f"modality must be one of {MODALITIES}, got {modality!r}")

    def decorator(factory: F) -> F:
        _ENCODERS.add(_Entry(name, factory, modality))
        return factory

    return decorator


def build_encoder(name: str, **kwargs: Any) -> Encoder:
    """Build the encoder registered as ``name`` with the given settings (unknown ones: an error)."""
    encoder = _ENCODERS.build(name, (), kwargs)
    assert isinstance(encoder, Encoder), f"factory {name!r} must return an Encoder"
    return encoder


def list_encoders(modality: Modality | None = None) -> list[str]:
    """Registered encoder names, sorted; only those of ``modality`` when given."""
    if modality is not None and modality not in MODALITIES:
        raise RegistryError(f"modality must be one of {MODALITIES} or None, got {modality!r}")
    entries = _ENCODERS.entries()
    return sorted(n for n, e in entries.items() if modality is None or e.modality == modality)


def encoder_modality(name: str) -> Modality:
    """The modality of the encoder registered as ``name``."""
    modality = _ENCODERS.get(name).modality
    assert modality is not None
    return modality


def encoder_settings(name: str) -> dict[str, Any]:
    """The settings the encoder ``name`` accepts, with their defaults."""
    factory = _ENCODERS.get(name).factory
    return {n: p.default for n, p in inspect.signature(factory).parameters.items()}


def with_ehr_channels(
    name: str, settings: Mapping[str, Any], channels: int | None
) -> dict[str, Any]:
    """The settings of encoder ``name`` with the EHR input width of the data it reads.

    For an EHR encoder, ``in_channels = channels`` (the columns per hour of the ``<task>.timeseries``
    store); a CXR encoder's settings come back unchanged. Raises ``RegistryError`` when an EHR
    encoder gets no width, or its settings already name another ``in_channels``.
    """
    if encoder_modality(name) != "ehr":
        return dict(settings)
    if channels is None:
        raise RegistryError(
            f"EHR encoder {name!r} needs the input width of its data (columns per hour of the "
            "<task>.timeseries store)"
        )
    given = settings.get("in_channels", channels)
    if given != channels:
        raise RegistryError(
            f"EHR encoder {name!r}: settings give in_channels={given} but the data has {channels} "
            "columns per hour; remove `in_channels` from the settings (the data fixes it)"
        )
    return {**settings, "in_channels": int(channels)}


def register_fusion(name: str) -> Callable[[F], F]:
    """Register a fusion class taking ``(ehr_features, cxr_features, num_outputs, **settings)``."""

    def decorator(factory: F) -> F:
        _FUSIONS.add(_Entry(name, factory, None))
        return factory

    return decorator


def build_fusion(
    name: str, ehr_features: int, cxr_features: int, num_outputs: int, **kwargs: Any
) -> nn.Module:
    """Build the fusion module registered as ``name`` for the given feature sizes."""
    return _FUSIONS.build(name, (ehr_features, cxr_features, num_outputs), kwargs)


def list_fusions() -> list[str]:
    """Registered fusion names, sorted."""
    return sorted(_FUSIONS.entries())


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``module`` (only those with ``requires_grad`` if asked)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)

"""Loading handler registries: the built-in ones and ``RECEIVER_HANDLERS`` import strings."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from .errors import HandlerLoadError
from .registry import Registry


def load_registry(spec: str) -> Registry:
    """``pkg.mod`` (its ``registry`` attribute) or ``pkg.mod:name`` to a `Registry`."""
    module_name, _, attribute = spec.partition(":")
    attribute = attribute or "registry"
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise HandlerLoadError(
            f"RECEIVER_HANDLERS: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    found = getattr(module, attribute, None)
    if not isinstance(found, Registry):
        raise HandlerLoadError(
            f"RECEIVER_HANDLERS: {spec!r} must name a receiver.Registry"
            f" (found {type(found).__name__})"
        )
    return found


def build_registry(specs: Iterable[str], builtins: bool = True) -> Registry:
    """One registry: the built-in handlers, then each custom module in order."""
    combined = Registry()
    if builtins:
        combined.include(load_registry("handlers"))
    for spec in specs:
        combined.include(load_registry(spec))
    return combined

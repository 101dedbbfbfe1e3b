"""Loading handler registries: the built-in ones and ``RECEIVER_HANDLERS`` import strings."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

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


def load_object(spec: str, setting: str) -> Any:
    """``pkg.mod:name`` to the object it names; errors name the setting."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not attribute:
        raise HandlerLoadError(f"{setting} must look like pkg.module:function, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise HandlerLoadError(f"{setting}: cannot import {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise HandlerLoadError(f"{setting}: {module_name!r} has no {attribute!r}") from None


def build_registry(specs: Iterable[str], builtins: bool = True) -> Registry:
    """One registry: the built-in handlers, then each custom module in order."""
    combined = Registry()
    if builtins:
        combined.include(load_registry("handlers"))
    for spec in specs:
        combined.include(load_registry(spec))
    return combined

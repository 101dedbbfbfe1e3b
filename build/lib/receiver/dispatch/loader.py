"""Loading handler registries: the built-in ones and ``RECEIVER_HANDLERS`` import strings."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from typing import Any

from ..errors import HandlerLoadError
from .registry import Registry


def import_user_module(name: str) -> Any:
    """Import one of the user's modules, found on ``sys.path`` or in the current directory
    (as ``python -m`` and uvicorn would: the ``mta-receiver`` script alone would not look
    there, so ``RECEIVER_HANDLERS=myapp.sms`` next to ``myapp/`` failed)."""
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.append(here)  # last: an installed package of the same name wins
    return importlib.import_module(name)


def load_registry(spec: str) -> Registry:
    """``pkg.mod`` (its ``registry`` attribute) or ``pkg.mod:name`` to a `Registry`."""
    module_name, _, attribute = spec.partition(":")
    attribute = attribute or "registry"
    try:
        module = import_user_module(module_name)
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
        module = import_user_module(module_name)
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
        combined.include(load_registry("receiver_handlers"))
    for spec in specs:
        combined.include(load_registry(spec))
    return combined

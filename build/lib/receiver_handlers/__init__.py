"""Built-in handlers, written with the same `receiver.Registry` API users get.

``registry`` combines every built-in module; the receiver always loads it.
"""

from __future__ import annotations

from receiver import Registry

from . import activity, fallback

registry = Registry()
registry.include(activity.registry)
registry.include(fallback.registry)

__all__ = ["registry"]

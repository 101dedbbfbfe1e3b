"""Start-up's objects are kept out of the garbage collector's full passes."""

from __future__ import annotations

import gc
from pathlib import Path

from .conftest import make_settings, running


def test_start_up_freezes_what_it_built(tmp_path: Path) -> None:
    """Once the receiver is ready, what start-up built is frozen: a full pass over it held
    every webhook in flight (bench/README.md)."""
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    with running(make_settings(tmp_path)) as server:
        assert gc.get_freeze_count() > 0
        assert server.client.get("/healthz").status_code == 200

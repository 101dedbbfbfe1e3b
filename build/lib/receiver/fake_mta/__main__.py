"""Entry point for ``python -m receiver.fake_mta``."""

from .cli import main

raise SystemExit(main())

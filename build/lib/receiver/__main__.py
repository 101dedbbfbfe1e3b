"""``python -m receiver`` is ``mta-receiver``."""

import sys

from .cli import main

sys.exit(main())

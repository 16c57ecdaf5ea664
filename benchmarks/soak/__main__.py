"""``python -m benchmarks.soak``: see benchmarks.soak.cli."""

from __future__ import annotations

import sys

from benchmarks.soak.cli import main

sys.exit(main())

"""Suite-wide settings."""

from __future__ import annotations

import os

# Console-script runs of `analyze` start a resident analyze server per source tree (tests/server,
# tests/core/test_entry.py): let them go soon after the suite instead of after 600 s. The rest
# of the suite runs `python -m osptrack.cli`, which is always direct: those tests pin the direct
# path that every served run falls back to, and tests/server compares the two.
os.environ.setdefault("OSPTRACK_SERVER_IDLE_EXIT", "30")

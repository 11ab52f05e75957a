"""Run a hypothesis property for a wall-clock budget, logging crashes instead of stopping.

Hypothesis is built to find one failure and shrink it; a fuzz campaign wants to keep going.
So the property is re-run in fresh batches with new seeds until the budget is spent; each
distinct failure (exception type + location) is written once to fuzz/crashes/<target>/.
"""

from __future__ import annotations

import argparse
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

CRASH_DIR = Path(__file__).parent / "crashes"


def campaign(name: str, strategy: st.SearchStrategy, check: Callable[[object], None]) -> None:
    parser = argparse.ArgumentParser(description=f"fuzz {name} for a time budget")
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--batch", type=int, default=2000, help="examples per hypothesis batch")
    args = parser.parse_args()
    executed = 0
    failures: dict[str, str] = {}

    def record(exc: BaseException, value: object) -> None:
        tb = traceback.extract_tb(exc.__traceback__)
        where = f"{tb[-1].filename}:{tb[-1].lineno}" if tb else "?"
        key = f"{type(exc).__name__}@{where}"
        if key in failures:
            return
        failures[key] = "".join(traceback.format_exception(exc)) + f"\ninput: {value!r}\n"
        out = CRASH_DIR / name
        out.mkdir(parents=True, exist_ok=True)
        (out / f"crash-{len(failures)}.txt").write_text(failures[key][:200_000])
        print(f"[{name}] NEW CRASH {key}", flush=True)

    def counted(value: object) -> None:
        # Crashes are recorded here, not raised: hypothesis would stop the batch at the first
        # failure, and a known bug would then starve the search for new ones.
        nonlocal executed
        executed += 1
        try:
            check(value)
        except Exception as exc:  # noqa: BLE001 - every crash is the finding
            record(exc, value)

    t0 = time.monotonic()
    batch_no = 0
    while time.monotonic() - t0 < args.seconds:
        # a batch may overrun the budget by its own length; keep batches short

        batch_no += 1

        @seed(int(time.time_ns() % (1 << 32)) + batch_no)
        @settings(
            max_examples=args.batch,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            # no shrink: a fuzz failure is logged with its raw input, and the loop moves on
            phases=[Phase.generate],
            report_multiple_bugs=False,
        )
        @given(strategy)
        def prop(value: object) -> None:
            counted(value)

        try:
            prop()
        except KeyboardInterrupt:  # stopped early: still print what was found
            break
        except Exception as exc:  # noqa: BLE001 - a crash in the harness itself
            record(exc, None)
    took = time.monotonic() - t0
    print(
        f"[{name}] seconds={took:.0f} examples={executed} rate={executed / max(took, 1e-9):.0f}/s "
        f"distinct_crashes={len(failures)}",
        flush=True,
    )
    for key in failures:
        print(f"[{name}]   {key}", flush=True)

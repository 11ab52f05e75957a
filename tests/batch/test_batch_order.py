"""The batch starts the largest archives first (LPT), so no worker slot idles at the tail."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fake_analyzer import FakeOptions

from osptrack.batch.model import BatchTarget, make_target
from osptrack.batch.order import GIVEN, LONGEST_FIRST, SDIST_BUILD_BYTES, estimated_cost, schedule_order
from osptrack.batch.runner import BatchOptions, run_batch
from osptrack.errors import BadInput


def _archive(folder: Path, name: str, size: int) -> str:
    path = folder / f"{name}-1.0.0.tgz"
    path.write_bytes(b"x" * size)  # the fake analyzer only hashes it; the order only stats it
    return str(path)


def _targets(tmp_path: Path, sizes: dict[str, int | None]) -> list[BatchTarget]:
    folder = tmp_path / "archives"
    folder.mkdir(exist_ok=True)
    return [
        make_target("npm", name, "1.0.0", archive=None if size is None else _archive(folder, name, size))
        for name, size in sizes.items()
    ]


def test_largest_archive_first_ties_and_unknown_sizes_keep_the_given_order(tmp_path: Path) -> None:
    targets = _targets(tmp_path, {"small": 10, "none": None, "big": 3000, "tie-a": 500, "tie-b": 500})
    missing = make_target("npm", "gone", "1.0.0", archive=str(tmp_path / "gone.tgz"))
    ordered = schedule_order([*targets, missing])
    assert [t.name for t in ordered] == ["big", "tie-a", "tie-b", "small", "none", "gone"]
    assert estimated_cost(missing) == 0 and estimated_cost(targets[1]) == 0


def test_given_order_is_kept_and_unknown_orders_are_refused(tmp_path: Path) -> None:
    targets = _targets(tmp_path, {"small": 10, "big": 3000})
    assert schedule_order(targets, GIVEN) == targets
    with pytest.raises(BadInput, match="unknown batch order"):
        schedule_order(targets, "random")
    with pytest.raises(BadInput, match="unknown batch order"):
        run_batch(targets, BatchOptions(out=str(tmp_path / "out"), order="random"))
    assert not (tmp_path / "out").exists()  # refused before anything was written


@pytest.mark.parametrize("order", [LONGEST_FIRST, GIVEN])
def test_the_batch_starts_attempts_in_the_scheduled_order(tmp_path: Path, state: Path, order: str) -> None:
    sizes: dict[str, int | None] = {"a-small": 100, "b-big": 90_000, "c-none": None, "d-mid": 5_000}
    targets = _targets(tmp_path, sizes)
    options = BatchOptions(
        out=str(tmp_path / "out"),
        workers=1,  # one slot: attempts start (and call the analyzer) strictly in order
        analyzer="fake_analyzer:analyze",
        analyze=FakeOptions(),
        order=order,
    )
    started = time.monotonic()
    summary = run_batch(targets, options)
    assert summary.finished == 4
    calls = [line.split()[1] for line in (state / "calls.log").read_text().splitlines()]
    expected = ["b-big", "d-mid", "a-small", "c-none"] if order == LONGEST_FIRST else list(sizes)
    assert calls == expected
    # The per-attempt instrumentation the benchmark reads: start times in scheduling order.
    starts = [a.started_s for a in summary.attempts]
    assert starts == sorted(starts) and started <= starts[0] <= time.monotonic()
    assert [a.target.name for a in summary.attempts] == expected
    assert all(a.cpu_host_s > 0 for a in summary.attempts)  # the worker ran analyze, it used CPU


def test_a_pypi_sdist_weighs_a_wheel_build_more_than_its_bytes(tmp_path: Path) -> None:
    folder = tmp_path / "archives"
    folder.mkdir()
    (folder / "tiny-1.0.tar.gz").write_bytes(b"x" * 100)
    (folder / "big-1.0-py3-none-any.whl").write_bytes(b"x" * 300_000)
    (folder / "lib-1.0.0.tgz").write_bytes(b"x" * 100)
    sdist = make_target("pypi", "tiny", "1.0", archive=str(folder / "tiny-1.0.tar.gz"))
    wheel = make_target("pypi", "big", "1.0", archive=str(folder / "big-1.0-py3-none-any.whl"))
    npm = make_target("npm", "lib", "1.0.0", archive=str(folder / "lib-1.0.0.tgz"))
    assert estimated_cost(sdist) == 100 + SDIST_BUILD_BYTES
    assert estimated_cost(wheel) == 300_000 and estimated_cost(npm) == 100  # an npm tarball is no sdist
    assert [t.name for t in schedule_order([npm, wheel, sdist])] == ["tiny", "big", "lib"]

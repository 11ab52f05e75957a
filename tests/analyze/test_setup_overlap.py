"""run.py starts the fake network in a thread while it stages the run (`_Starting`): its error
reaches the run, and the network is closed only once its start is over, whatever happens."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from osptrack.run import _Starting


class FakeNet:
    def __init__(self, fail: bool = False, delay: float = 0.0) -> None:
        self.fail, self.delay = fail, delay
        self.events: list[str] = []
        self.thread: str | None = None

    def start(self) -> None:
        self.thread = threading.current_thread().name
        time.sleep(self.delay)
        self.events.append("started")
        if self.fail:
            raise OSError("nft failed")

    def close(self) -> None:
        self.events.append("closed")


def test_start_runs_in_another_thread_and_wait_joins_it() -> None:
    net = FakeNet(delay=0.2)
    with _Starting(net) as starting:  # type: ignore[arg-type]
        assert net.events == []  # __enter__ did not wait for it
        starting.wait()
        assert net.events == ["started"]
    assert net.thread != threading.current_thread().name
    assert net.events == ["started", "closed"]


def test_a_failed_start_is_raised_by_wait() -> None:
    net = FakeNet(fail=True)
    with pytest.raises(OSError, match="nft failed"), _Starting(net) as starting:  # type: ignore[arg-type]
        starting.wait()
    assert net.events == ["started", "closed"]


def test_close_waits_for_a_start_still_running_when_the_run_fails() -> None:
    net = FakeNet(delay=0.3)
    with pytest.raises(ValueError), _Starting(net):  # type: ignore[arg-type]
        raise ValueError("staging failed")  # before wait(): the start is still running
    assert net.events == ["started", "closed"]  # closed after it started, never during


def test_begin_starts_once_and_a_network_closed_twice_is_fine() -> None:
    net = FakeNet(delay=0.1)
    starting = _Starting(net)  # type: ignore[arg-type]
    starting.begin()
    starting.begin()  # run.py begins it before the registry and the workspace, enters it after
    with starting:
        starting.wait()
    starting.__exit__(None, None, None)  # the early callback for a run that failed in between
    assert net.events == ["started", "closed", "closed"]


def test_the_network_starts_before_the_target_is_resolved_and_goes_on_bad_input(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """analyze() begins the fake network's start (a namespace: ip and nft processes) before it
    chooses the tracer and resolves the archive, which then overlap it; a target that does not
    resolve closes the network again and writes nothing."""
    from osptrack import run
    from osptrack.errors import BadInput
    from osptrack.sandbox.fakenet import FakeNetwork
    from osptrack.target import PackageRef

    started, closed, seen = threading.Event(), [], []
    monkeypatch.setattr(FakeNetwork, "start", lambda self: started.set())
    monkeypatch.setattr(FakeNetwork, "close", lambda self: closed.append(self))
    monkeypatch.setattr(run, "check_sandbox", lambda: None)

    def resolve(ref: PackageRef, options: run.AnalyzeOptions) -> None:
        seen.append(started.wait(5))  # the network's thread is running by now
        raise BadInput("nosuch==1.0 not found")

    monkeypatch.setattr(run, "resolve", resolve)
    out = tmp_path / "runs" / "out"
    with pytest.raises(BadInput, match="not found"):
        run.analyze(PackageRef("pypi", "nosuch", "1.0"), run.AnalyzeOptions(tracer="strace"), out)
    assert seen == [True]
    assert len(closed) == 1
    assert not (tmp_path / "runs").exists()

"""Running the `osptrack` console script against a server of the test's own (its own socket
folder, a short idle exit), and stopping that server afterwards by the pid it recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from processes import alive as alive  # re-exported for test_server.py
from processes import wait_for as wait_for

# The console script's own code (the venv's bin/osptrack), so every run is what a user's is.
CONSOLE_SCRIPT = "import sys\nfrom osptrack.entry import run\nsys.exit(run())\n"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the analyze server is root's only")


@dataclass
class Servers:
    dir: Path  # OSPTRACK_SERVER_DIR: short, as a socket path must be (108 bytes)
    note: Path
    script: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "OSPTRACK_SERVER"}
        env.update(OSPTRACK_SERVER_DIR=str(self.dir), OSPTRACK_SERVER_NOTE=str(self.note))
        env["OSPTRACK_SERVER_IDLE_EXIT"] = "60"
        env.update(extra)
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, str(self.script), *args]

    def run(
        self, *args: str, cwd: Path, timeout: float = 180, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args), cwd=cwd, env=self.env(**extra), capture_output=True, text=True,
            timeout=timeout, preexec_fn=default_sigint,
        )  # fmt: skip

    def notes(self) -> list[str]:
        return self.note.read_text().splitlines() if self.note.exists() else []

    def pids(self) -> dict[Path, int]:
        out = {}
        for pid_file in self.dir.glob("analyze-*.pid"):
            try:
                out[pid_file] = int(pid_file.read_text())
            except (OSError, ValueError):
                continue
        return out

    def wait_listening(self, count: int = 1, timeout: float = 60) -> int:
        """The pid of the newest listening server, once `count` have recorded theirs."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            socks = list(self.dir.glob("analyze-*.sock"))
            logs = " ".join(p.read_text() for p in self.dir.glob("analyze-*.log"))
            if len(pids) >= count and socks and logs.count("listening") >= count:
                return max(pids.values())
            if time.monotonic() > deadline:
                raise AssertionError(f"no analyze server listening in {self.dir}: {logs}")
            time.sleep(0.05)

    def warm(self, cwd: Path, **extra: str) -> int:
        """Start a server (the first run spawns it and runs direct) and wait until it listens."""
        proc = self.run("analyze", "cobol", "x==1", cwd=cwd, **extra)
        assert proc.returncode == 2, proc.stderr
        return self.wait_listening()


def default_sigint() -> None:
    # Ctrl-C as from a terminal: a backgrounded shell (CI) leaves SIGINT ignored, which a direct
    # run keeps ignored, and so does the server's child (it copies the client's dispositions).
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def servers() -> Iterator[Servers]:
    folder = Path(tempfile.mkdtemp(prefix="osps-", dir="/tmp"))
    script = folder / "osptrack"
    script.write_text(CONSOLE_SCRIPT)
    run_dir = folder / "run"
    yield Servers(dir=run_dir, note=folder / "note", script=script)
    # Stop the servers this test started (by the pids they recorded), then remove the folder.
    for pid in Servers(dir=run_dir, note=folder, script=script).pids().values():
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        wait_for(lambda pid=pid: not alive(pid), timeout=10)
    subprocess.run(["rm", "-rf", str(folder)], check=False)

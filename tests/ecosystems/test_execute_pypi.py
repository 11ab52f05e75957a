"""The PyPI execute phase calls what import alone never runs: public functions, constructors,
coroutines and generators, each with generated arguments and a per-call time limit."""

from __future__ import annotations

import json
import textwrap

import pytest

from builders import make_wheel
from osptrack.run import AnalyzeOptions, analyze
from osptrack.target import PackageRef

PORT = 8080

BEHAVIOUR = f"""
import socket, subprocess

def _behave(host):
    tag = host.split(".")[0]
    try:
        ip = socket.getaddrinfo(host, {PORT}, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
        s = socket.create_connection((ip, {PORT}), timeout=3)
        s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        s.close()
    except OSError as exc:
        print("osptrack-test: network failed", exc)
    subprocess.run(["sh", "-c", "echo " + tag + "-ran; id"], check=False)
"""

MODULE = BEHAVIOUR + textwrap.dedent(
    """
    import time

    def hang_forever():  # first in source order: the per-call limit must let the rest run
        while True:
            time.sleep(1)

    def quit_now():  # neither may a hard exit end the phase early
        import os
        os._exit(3)

    def fetch_config(url, retries: int):
        _behave("py-exec-func.osptrack-test.example.com")
        return url * retries

    class Client:
        def __init__(self, endpoint, *, timeout: float):
            _behave("py-exec-class.osptrack-test.example.com")

    async def sync_later(path):
        _behave("py-exec-async.osptrack-test.example.com")

    def records(n):
        yield 1
        _behave("py-exec-gen.osptrack-test.example.com")
        yield 2

    def _private():
        _behave("py-exec-private.osptrack-test.example.com")
    """
)


@pytest.fixture(scope="module")
def pypi_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("pyexec")
    wheel = make_wheel(base, "osptrack-exec-demo", "1.0.0", {"osptrack_exec_demo/__init__.py": MODULE})
    ref = PackageRef("pypi", "osptrack-exec-demo", None, wheel)
    analyze(ref, AnalyzeOptions(phases=("install", "import", "execute"), timeout_s=120), base / "run")
    return json.loads((base / "run" / "result.json").read_text())


def hostnames(record: dict) -> set[str]:
    return {q["Hostname"] for d in record["DNS"] or [] for q in d["Queries"]}


@pytest.mark.sandbox
@pytest.mark.parametrize("tag", ["py-exec-func", "py-exec-class", "py-exec-async", "py-exec-gen"])
def test_execute_runs_functions_classes_coroutines_generators(pypi_run: dict, tag: str) -> None:
    execute = pypi_run["Analysis"]["execute"]
    assert execute["Status"] == "completed"
    assert f"{tag}.osptrack-test.example.com" in hostnames(execute)
    commands = [" ".join(c["Command"]) for c in execute["Commands"] or []]
    assert any(f"{tag}-ran" in c for c in commands), commands
    assert any(s["Port"] == PORT for s in execute["Sockets"] or [])


@pytest.mark.sandbox
def test_import_alone_runs_none_of_it_and_private_names_are_left_alone(pypi_run: dict) -> None:
    assert not {h for h in hostnames(pypi_run["Analysis"]["import"]) if h.startswith("py-exec")}
    assert "py-exec-private.osptrack-test.example.com" not in hostnames(pypi_run["Analysis"]["execute"])

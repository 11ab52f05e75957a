"""Call every public function and instantiate every public class of a distribution's modules.

Runs inside the sandbox with Debian's python3. Usage: pypi_execute.py DIST_NAME SITE_DIR.
This is package-analysis's execute phase: code that only runs when a user calls it (a
backdoored helper, a payload in a constructor) shows up here and nowhere else.

Each call gets generated arguments (from annotations, parameter names and defaults), a
per-call time limit (SIGALRM), and its result is drained: coroutines are awaited, generators
and async generators iterated a bounded number of steps. os._exit() is refused while calling.
"""

import asyncio
import importlib
import inspect
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pypi_import import dist_info, modules  # noqa: E402 - the harness folder is not a package

CALL_LIMIT_S = 3  # per call, in whole seconds (signal.alarm)
TOTAL_LIMIT_S = 120.0  # the whole phase budget; the sandbox timeout is the hard stop
MAX_CALLS = 2000
MAX_ITEMS = 100  # drained from one generator


class CallTimeout(BaseException):
    """BaseException so package code catching Exception cannot swallow the time limit."""


def _on_alarm(signum, frame):
    raise CallTimeout()


# Values by annotation, then by parameter-name hint; the last resort is a string.
BY_TYPE = {
    int: 1,
    float: 1.0,
    str: "osptrack",
    bytes: b"osptrack",
    bool: True,
    list: [],
    dict: {},
    tuple: (),
    set: set(),
}
BY_NAME: tuple[tuple[tuple[str, ...], object], ...] = (
    (("url", "uri", "endpoint", "host"), "http://osptrack.example/"),
    (("path", "file", "filename", "dir", "directory", "folder"), "/tmp/osptrack-arg"),
    (("n", "count", "size", "num", "number", "index", "port", "timeout", "length", "limit"), 1),
    (("data", "payload", "content", "body", "buf"), b"osptrack"),
    (("flag", "enabled", "verbose", "debug"), False),
    (("items", "values", "args", "seq", "lst"), []),
    (("kwargs", "options", "config", "params", "headers", "mapping"), {}),
)


def generated_value(param):
    ann = param.annotation
    if ann in BY_TYPE:
        value = BY_TYPE[ann]
        return value.copy() if hasattr(value, "copy") else value
    lowered = param.name.lower()
    for names, value in BY_NAME:
        if lowered in names or any(lowered.endswith("_" + n) for n in names):
            return value.copy() if hasattr(value, "copy") else value
    return "osptrack"


def generated_args(func):
    """Positional and keyword arguments for every parameter that has no default."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return [], {}
    args, kwargs = [], {}
    for param in sig.parameters.values():
        if param.default is not inspect.Parameter.empty:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.kind == param.KEYWORD_ONLY:
            kwargs[param.name] = generated_value(param)
        else:
            args.append(generated_value(param))
    return args, kwargs


def drain(result):
    """Run what a call returned far enough for its behaviour to happen."""
    if inspect.iscoroutine(result):
        return asyncio.run(result)
    if inspect.isasyncgen(result):

        async def pull():
            n = 0
            async for _ in result:
                n += 1
                if n >= MAX_ITEMS:
                    break

        return asyncio.run(pull())
    if inspect.isgenerator(result):
        for n, _ in enumerate(result):
            if n + 1 >= MAX_ITEMS:
                break
    return result


def call(label, func, stats):
    args, kwargs = generated_args(func)
    signal.alarm(CALL_LIMIT_S)
    try:
        drain(func(*args, **kwargs))
        stats["ok"] += 1
    except CallTimeout:
        stats["timeout"] += 1
        print(f"osptrack-execute: {label}: timed out", file=sys.stderr)
    except BaseException as exc:  # noqa: BLE001 - package code may raise anything, SystemExit too
        stats["raised"] += 1
        print(f"osptrack-execute: {label}: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
    finally:
        signal.alarm(0)


def public_callables(module):
    """Functions and classes the module itself defines (not re-exports), in source order."""
    names = getattr(module, "__all__", None)
    if not isinstance(names, (list, tuple)):
        names = [n for n in vars(module) if not n.startswith("_")]
    found = []
    for name in names:
        obj = getattr(module, name, None) if isinstance(name, str) else None
        if obj is None or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj):
            found.append((name, obj))
    return found


class ExitCalled(Exception):
    pass


def _refuse_exit(code=0):
    raise ExitCalled(f"os._exit({code}) called")


def main() -> int:
    dist, site = sys.argv[1], Path(sys.argv[2])
    real_exit = os._exit
    os._exit = _refuse_exit  # a package calling os._exit must not end the phase early
    sys.path.insert(0, str(site))
    info = dist_info(site, dist)
    if info is None:
        print(f"osptrack-execute: no installed distribution {dist!r}", file=sys.stderr)
        return 3
    signal.signal(signal.SIGALRM, _on_alarm)
    stats = {"ok": 0, "raised": 0, "timeout": 0, "modules": 0}
    started = time.monotonic()
    calls = 0
    for mod_name in modules(site, info):
        try:
            signal.alarm(CALL_LIMIT_S * 2)
            module = importlib.import_module(mod_name)
        except BaseException as exc:  # noqa: BLE001 - an import error is the import phase's business
            print(f"osptrack-execute: import {mod_name}: {type(exc).__name__}", file=sys.stderr)
            continue
        finally:
            signal.alarm(0)
        stats["modules"] += 1
        for name, obj in public_callables(module):
            if calls >= MAX_CALLS or time.monotonic() - started > TOTAL_LIMIT_S:
                break
            if inspect.isclass(obj) and inspect.isabstract(obj):
                continue
            calls += 1
            call(f"{mod_name}.{name}", obj, stats)
    print(
        f"osptrack-execute: {calls} calls in {stats['modules']} modules: {stats['ok']} returned, "
        f"{stats['raised']} raised, {stats['timeout']} timed out"
    )
    sys.stdout.flush()
    sys.stderr.flush()
    # Package code may have left threads or handlers behind that would keep us alive.
    real_exit(0)


if __name__ == "__main__":
    sys.exit(main())

"""The batch loop with a fake analyzer: layout, resume, retries, timeouts, crashes, rerun, manifest."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import orjson
import pytest
from collections_builder import alive, datadog_collection
from fake_analyzer import FakeOptions

from osptrack.batch.manifest import COLUMNS, Manifest
from osptrack.batch.model import BatchTarget, make_target
from osptrack.batch.runner import BatchOptions, BatchSummary, run_batch
from osptrack.batch.sources import load_targets
from osptrack.batch.store import Destination
from osptrack.errors import BadInput


def run(out: Path, targets: list[BatchTarget], **kw: object) -> BatchSummary:
    options = BatchOptions(
        out=str(out),
        analyzer="fake_analyzer:analyze",
        analyze=FakeOptions(phases=("install", "import")),
        **kw,  # type: ignore[arg-type]
    )
    return run_batch(targets, options)


def manifest_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_runs_land_in_eco_name_version_folders_with_one_row_each(tmp_path: Path, state: Path) -> None:
    targets = [
        make_target("npm", "a", "1.0.0"),
        make_target("npm", "@scope/b", "2.0.0"),
        make_target("pypi", "C_c", "1.0"),
    ]
    summary = run(tmp_path / "out", targets, workers=2)
    assert summary.finished == 3 and not summary.failed
    for rel in ("npm/a/1.0.0", "npm/@scope/b/2.0.0", "pypi/c-c/1.0"):
        folder = tmp_path / "out" / rel
        run_json = orjson.loads((folder / "run.json").read_bytes())
        assert sorted(p.name for p in folder.iterdir()) == sorted([*run_json["files"], "run.json"])
    rows = manifest_rows(tmp_path / "out")
    assert list(rows[0].keys()) == list(COLUMNS)
    assert sorted((r["ecosystem"], r["name"], r["version"], r["outcome"]) for r in rows) == [
        ("npm", "@scope/b", "2.0.0", "finished"),
        ("npm", "a", "1.0.0", "finished"),
        ("pypi", "c-c", "1.0", "finished"),
    ]
    assert all(
        r["install"] == "completed" and r["import"] == "completed" and r["execute"] == "" for r in rows
    )
    assert not any((tmp_path / "out" / ".tmp").iterdir())


def test_resume_skips_finished_and_writes_no_duplicate_rows(tmp_path: Path, state: Path) -> None:
    out = tmp_path / "out"
    first = [make_target("npm", "a", "1.0.0"), make_target("npm", "b", "1.0.0")]
    run(out, first)
    calls_before = (state / "calls.log").read_text().count("\n")
    summary = run(out, [*first, make_target("npm", "c", "1.0.0")])
    assert summary.already_finished == 2 and summary.finished == 1
    assert (state / "calls.log").read_text().count("\n") == calls_before + 1  # only c was analysed
    rows = manifest_rows(out)
    assert len(rows) == 3 and len({(r["name"], r["outcome"]) for r in rows}) == 3


def test_retries_then_gives_up_and_attempt_numbers_continue(tmp_path: Path, state: Path) -> None:
    out = tmp_path / "out"
    targets = [make_target("npm", "flaky-x", "1.0.0"), make_target("npm", "fail-y", "1.0.0")]
    summary = run(out, targets, retries=2)
    assert summary.finished == 1
    assert [r.target.name for r in summary.failed] == ["fail-y"]
    rows = manifest_rows(out)
    flaky = [(r["attempt"], r["outcome"]) for r in rows if r["name"] == "flaky-x"]
    fail = [(r["attempt"], r["outcome"]) for r in rows if r["name"] == "fail-y"]
    assert flaky == [("1", "failed"), ("2", "finished")]
    assert fail == [("1", "failed"), ("2", "failed"), ("3", "failed")]
    assert all("simulated analyzer failure" in r["error"] for r in rows if r["name"] == "fail-y")
    # Running again retries the failed one (a fresh budget), numbering on from the manifest.
    run(out, targets, retries=0)
    assert [r["attempt"] for r in manifest_rows(out) if r["name"] == "fail-y"] == ["1", "2", "3", "4"]


def test_hang_is_killed_at_the_package_limit_without_stalling_others(tmp_path: Path, state: Path) -> None:
    out = tmp_path / "out"
    targets = [make_target("npm", "hang-h", "1.0.0")] + [
        make_target("npm", f"ok{i}", "1.0.0") for i in range(4)
    ]
    started = time.monotonic()
    summary = run(out, targets, workers=2, retries=0, package_timeout_s=2.0)
    elapsed = time.monotonic() - started
    assert summary.finished == 4
    assert [(r.target.name, r.outcome) for r in summary.failed] == [("hang-h", "timeout")]
    assert elapsed < 15
    assert not (out / "npm" / "hang-h").exists()
    pids = [int(p) for p in (state / "pids.log").read_text().split()]
    assert pids and not [p for p in pids if alive(p)]
    # The worker was stopped with SIGTERM first, so the analyzer's cleanup ran (not just a SIGKILL).
    assert (state / "cleanup.log").read_text().split() == ["hang-h"]


def test_crashing_worker_is_recorded_and_retried(tmp_path: Path, state: Path) -> None:
    out = tmp_path / "out"
    summary = run(out, [make_target("npm", "crash-c", "1.0.0")], retries=1)
    rows = manifest_rows(out)
    assert [(r["attempt"], r["outcome"]) for r in rows] == [("1", "crashed"), ("2", "crashed")]
    assert "SIGKILL" in rows[0]["error"]
    assert summary.failed and not (out / "npm" / "crash-c").exists()


def test_rerun_replaces_a_finished_folder(tmp_path: Path, state: Path) -> None:
    out = tmp_path / "out"
    target = make_target("npm", "a", "1.0.0")
    run(out, [target])
    marker = out / "npm" / "a" / "1.0.0" / "stale-marker"
    marker.write_text("from the first run")
    summary = run(out, [target], rerun=True)
    assert summary.finished == 1 and not marker.exists()
    assert (out / "npm" / "a" / "1.0.0" / "run.json").is_file()
    assert [r["attempt"] for r in manifest_rows(out)] == ["1", "2"]


def test_finished_folder_without_a_row_is_recorded_once(tmp_path: Path, state: Path) -> None:
    out = tmp_path / "out"
    folder = out / "npm" / "a" / "1.0.0"
    folder.mkdir(parents=True)
    # A batch writes its manifest's header first: that is what makes `out` a batch folder.
    (out / "manifest.csv").write_text(",".join(COLUMNS) + "\n")
    (folder / "run.json").write_bytes(orjson.dumps({"phases": {"install": {"status": "completed"}}}))
    half = out / "npm" / "b" / "1.0.0"  # no run.json: not finished, analysed again
    half.mkdir(parents=True)
    (half / "result.json").write_text("{}")
    for _ in range(2):
        run(out, [make_target("npm", "a", "1.0.0"), make_target("npm", "b", "1.0.0")])
    rows = manifest_rows(out)
    assert [(r["name"], r["outcome"], r["install"]) for r in rows] == [
        ("a", "recovered", "completed"),
        ("b", "finished", "completed"),
    ]
    assert (half / "run.json").is_file() and (half / "result.json").read_text() != "{}"


def test_torn_manifest_line_is_dropped_and_repaired(tmp_path: Path, state: Path) -> None:
    out = tmp_path / "out"
    run(out, [make_target("npm", "a", "1.0.0")])
    with open(out / "manifest.csv", "a") as fh:
        fh.write("2026-01-01T00:00:00+00:00,npm,b,1.0")  # a kill mid-write
    run(out, [make_target("npm", "a", "1.0.0"), make_target("npm", "b", "1.0.0")])
    text = (out / "manifest.csv").read_text()
    assert text.endswith("\n") and "npm,b,1.0," not in text.replace("npm,b,1.0.0", "")
    assert [(r["name"], r["outcome"]) for r in manifest_rows(out)] == [("a", "finished"), ("b", "finished")]


def test_manifest_with_foreign_columns_is_bad_input(tmp_path: Path, state: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(BadInput, match="not an osptrack batch folder"):  # osptrack.outputs
        run(out, [make_target("npm", "a", "1.0.0")])
    assert (out / "manifest.csv").read_text() == "a,b,c\n1,2,3\n"


def test_second_batch_on_the_same_folder_is_refused(tmp_path: Path, state: Path) -> None:
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(BadInput, match="another osptrack batch"):
            run(out, [make_target("npm", "a", "1.0.0")])


def test_datadog_sample_is_staged_privately_and_removed(tmp_path: Path, state: Path) -> None:
    datadog_collection(tmp_path / "dd")
    targets = load_targets(tmp_path / "dd").targets
    out = tmp_path / "out"
    summary = run(out, targets)
    assert summary.finished == 3
    staged_dirs = [Path(p) for p in (state / "archive_dirs.log").read_text().split("\n") if p]
    for folder in staged_dirs:
        if folder.name == "stage":
            assert folder.parent.parent == out / ".tmp"  # DIR/.tmp/<uuid>/stage
            assert not folder.exists()  # gone with the attempt
    assert sum(1 for f in staged_dirs if f.name == "stage") == 2  # the tree samples were repacked
    assert not any((out / ".tmp").iterdir())
    assert not [p for p in (tmp_path / "dd").rglob("*") if p.is_file() and p.suffix not in (".zip", ".json")]


def test_fsspec_destination_uploads_run_json_last(tmp_path: Path) -> None:
    import fsspec

    dest = Destination("memory://osptrack-test-out")
    target = make_target("npm", "@s/a", "1.0.0")
    run_dir = tmp_path / "run"
    (run_dir / "sub").mkdir(parents=True)
    (run_dir / "result.json").write_text("{}")
    (run_dir / "sub" / "x.txt").write_text("x")
    (run_dir / "run.json").write_text('{"phases": {}}')
    fs = fsspec.filesystem("memory")
    order: list[str] = []
    real_put = fs.put_file

    def spy(lpath: str, rpath: str, **kw: object) -> None:
        order.append(rpath.rsplit("/", 1)[-1])
        real_put(lpath, rpath, **kw)

    fs.put_file = spy  # type: ignore[method-assign]
    try:
        assert dest.finished([target]) == set()
        assert dest.finalize(target, run_dir, replace=False)
        assert order[-1] == "run.json" and set(order) == {"result.json", "x.txt", "run.json"}
        assert dest.finished([target]) == {target.rel_dir}
        assert not dest.finalize(target, run_dir, replace=False)  # duplicate execution: left alone
    finally:
        del fs.put_file
        fs.rm("/osptrack-test-out", recursive=True)


def test_fsspec_manifest_is_rewritten_whole(tmp_path: Path) -> None:
    import fsspec

    from osptrack.batch.model import AttemptResult

    dest = Destination("memory://osptrack-test-manifest")
    try:
        with Manifest(dest, flush_every_s=0) as manifest:
            manifest.append(
                AttemptResult(make_target("npm", "a", "1.0.0"), "finished", 1, {"install": "completed"})
            )
        with Manifest(dest) as again:
            assert [(r.key, r.outcome) for r in again.rows] == [(("npm", "a", "1.0.0"), "finished")]
    finally:
        fsspec.filesystem("memory").rm("/osptrack-test-manifest", recursive=True)


def test_forked_workers_inherit_the_caches_every_analysis_fills(
    tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OSPTRACK_TRACER", "auto")  # the default, which checks eBPF
    summary = run(tmp_path / "out", [make_target("npm", "cacheprobe-a", "1.0.0")], workers=1)
    assert summary.finished == 1
    caches = orjson.loads((state / "caches.log").read_text())
    assert caches == {"ebpf_check": 1, "rules": 1, "bundles": 1}  # filled in the zygote, before the fork


def test_workers_fall_back_to_fresh_interpreters_when_the_zygote_is_gone(tmp_path: Path, state: Path) -> None:
    from osptrack.batch.worker import Job, run_isolated
    from osptrack.batch.zygote import PreloadedLauncher

    launcher = PreloadedLauncher("fake_analyzer:analyze")
    try:
        assert launcher._zygote is not None
        zygote_pid = launcher._zygote._proc.pid

        def job(name: str) -> Job:
            return Job(make_target("npm", name, "1.0.0"), FakeOptions(), str(tmp_path / "out"), 1, 30.0,
                       analyzer="fake_analyzer:analyze")  # fmt: skip

        first = run_isolated(job("a"), launcher=launcher)
        assert first.outcome == "finished"
        ppids = (state / "ppids.log").read_text().split()
        assert ppids == [str(zygote_pid)]  # forked by the zygote
        os.kill(zygote_pid, 9)
        launcher._zygote._proc.wait()
        second = run_isolated(job("b"), launcher=launcher)
        assert second.outcome == "finished"
        assert (state / "ppids.log").read_text().split()[1] == str(os.getpid())  # spawned by us
    finally:
        launcher.close()


def test_sandbox_errors_are_retried_only_when_asked(tmp_path: Path, state: Path) -> None:
    out = tmp_path / "out"
    target = make_target("npm", "sberr-s", "1.0.0")
    run(out, [target])  # first attempt: the fake's sandbox "breaks"; the folder is finished anyway
    run_json = out / "npm" / "sberr-s" / "1.0.0" / "run.json"
    assert orjson.loads(run_json.read_bytes())["phases"]["install"]["status"] == "error_analysis"
    assert run(out, [target]).already_finished == 1  # without the flag: resume skips it
    summary = run(out, [target], retry_errors=True)  # with it: analysed again and replaced
    assert summary.finished == 1 and summary.already_finished == 0
    assert orjson.loads(run_json.read_bytes())["phases"]["install"]["status"] == "completed"
    assert [(r["attempt"], r["install"]) for r in manifest_rows(out)] == [
        ("1", "error_analysis"),
        ("2", "completed"),
    ]


def test_sandbox_error_is_retried_within_the_same_batch(tmp_path: Path, state: Path) -> None:
    out = tmp_path / "out"
    summary = run(out, [make_target("npm", "sberr-t", "1.0.0")], retry_errors=True, retries=1)
    assert summary.finished == 1 and not summary.failed
    assert [(r["attempt"], r["install"]) for r in manifest_rows(out)] == [
        ("1", "error_analysis"),
        ("2", "completed"),
    ]
    run_json = orjson.loads((out / "npm" / "sberr-t" / "1.0.0" / "run.json").read_bytes())
    assert run_json["phases"]["install"]["status"] == "completed"


def test_replacing_a_finished_run_swaps_it_in_one_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from osptrack.batch import store

    dest = Destination(str(tmp_path / "out"))
    target = make_target("npm", "a", "1.0.0")
    final = tmp_path / "out" / "npm" / "a" / "1.0.0"
    final.mkdir(parents=True)
    (final / "run.json").write_text('{"old": true}')
    new = dest.new_attempt_dir() / "run"
    new.mkdir()
    (new / "run.json").write_text('{"old": false}')
    calls: list[tuple[Path, Path]] = []
    real = store._exchange

    def spy(a: Path, b: Path) -> bool:
        calls.append((a, b))
        # At the moment of the swap the finished run is still in place.
        assert (final / "run.json").read_text() == '{"old": true}'
        return real(a, b)

    monkeypatch.setattr(store, "_exchange", spy)
    assert not dest.finalize(target, new, replace=False)  # never replaced without asking
    assert dest.finalize(target, new, replace=True)
    assert calls == [(new, final)]
    assert (final / "run.json").read_text() == '{"old": false}'
    assert not new.exists()  # the old run went with the attempt folder


@pytest.mark.parametrize("launcher_kind", ["zygote", "spawn"])
def test_an_attempt_ends_when_its_worker_exits_not_at_the_next_check(
    tmp_path: Path, state: Path, launcher_kind: str
) -> None:
    """The scheduler thread waits on the worker's pidfd: with a check interval of an hour (the
    limit and Ctrl-C are checked that rarely) the attempt still ends as soon as the worker does.
    A sleep-and-check loop would sleep the hour; the thread is given a minute."""
    import threading

    from osptrack.batch.worker import Job, SpawnLauncher, run_isolated
    from osptrack.batch.zygote import PreloadedLauncher

    launcher = PreloadedLauncher("fake_analyzer:analyze") if launcher_kind == "zygote" else SpawnLauncher()
    results: list[object] = []
    job = Job(make_target("npm", "a", "1.0.0"), FakeOptions(), str(tmp_path / "out"), 1, 7200.0,
              analyzer="fake_analyzer:analyze")  # fmt: skip
    try:
        thread = threading.Thread(target=lambda: results.append(run_isolated(job, None, 3600.0, launcher)))
        thread.daemon = True  # a failing run must not keep pytest from exiting
        thread.start()
        thread.join(60.0)
        assert not thread.is_alive(), "the attempt waited for the next check, not for the worker"
        assert [r.outcome for r in results] == ["finished"]  # type: ignore[attr-defined]
    finally:
        launcher.close()


def test_a_launcher_wait_is_false_while_the_worker_runs_and_true_once_it_exited(
    tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pickle

    from osptrack.batch.worker import Job, SpawnLauncher

    monkeypatch.setenv("FAKE_SLOW_SLEEP", "1.5")
    launcher = SpawnLauncher()
    attempt = tmp_path / "attempt"
    attempt.mkdir()
    job = Job(make_target("npm", "slow-w", "1.0.0"), FakeOptions(), str(tmp_path / "out"), 1, 60.0,
              analyzer="fake_analyzer:analyze")  # fmt: skip
    (attempt / "job.pkl").write_bytes(pickle.dumps(job))
    pid = launcher.start(attempt / "job.pkl", attempt / "worker.log")
    try:
        assert launcher.wait(pid, 0.05) is False  # still sleeping in the fake analysis
        assert launcher.wait(pid, 60.0) is True
        assert launcher.exited(pid) is True
    finally:
        assert launcher.reap(pid) == 0


def test_forked_workers_inherit_the_preloaded_objects_frozen(tmp_path: Path, state: Path) -> None:
    """The zygote freezes what it preloaded before forking, so a worker's collections leave it be;
    a fresh interpreter (the fallback, Dask) has nothing frozen."""
    from osptrack.batch.runner import LocalExecutor

    assert run(tmp_path / "out", [make_target("npm", "a", "1.0.0")], workers=1).finished == 1
    executor = LocalExecutor(1, "fake_analyzer:analyze", preload=False)
    spawned = run_batch(
        [make_target("npm", "b", "1.0.0")],
        BatchOptions(out=str(tmp_path / "out2"), analyzer="fake_analyzer:analyze", analyze=FakeOptions()),
        executor=executor,
    )
    assert spawned.finished == 1
    forked_count, spawned_count = (int(n) for n in (state / "frozen.log").read_text().split())
    assert forked_count > 1000  # the preloaded modules: tens of thousands of objects
    assert spawned_count == 0

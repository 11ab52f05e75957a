"""The Sigma subset: modifiers, conditions, correlations, and the level rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from osptrack.errors import BadInput
from osptrack.verdict import Finding, judge_run_dir, load_verdict, rejudge_run_dir
from osptrack.verdict.engine import _parse_rule, evaluate, load_rules
from osptrack.verdict.levels import at_least, level_of, score_of
from synth_runs import Run


def rule(detection: dict, category: str = "file_event", **kw: object) -> object:
    return _parse_rule(
        {
            "id": "t",
            "title": "t",
            "level": "high",
            "logsource": {"category": category},
            "detection": detection,
            **kw,
        },
        "test.yml",
    )


def match(detection: dict, rec: dict) -> bool:
    r = rule(detection)
    return bool(r.match(rec))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("field", "value", "rec", "expected"),
    [
        ("path|endswith", "/.BASHRC", {"path": "/root/.bashrc"}, True),  # case-insensitive by default
        ("path|endswith|cased", "/.BASHRC", {"path": "/root/.bashrc"}, False),
        ("path|startswith", ["/etc/", "/root/"], {"path": "/root/x"}, True),
        ("argv|contains", "-e", {"argv": ["nc", "-e", "sh"]}, True),  # any element of a list field
        ("argv|contains|all", ["-e", "sh"], {"argv": ["nc", "-e", "sh"]}, True),
        ("argv|contains|all", ["-e", "bash"], {"argv": ["nc", "-e", "sh"]}, False),
        ("path|re", r"^/tmp/\d+$", {"path": "/tmp/123"}, True),
        ("path|glob", "/root/.config/*/x", {"path": "/root/.config/a/x"}, True),
        ("address|cidr", "169.254.0.0/16", {"address": "169.254.169.254"}, True),
        ("address|cidr", "169.254.0.0/16", {"address": "not-an-ip"}, False),
        ("bytes|gte", 10, {"bytes": 10}, True),
        ("bytes|gt", 10, {"bytes": 10}, False),
        ("bytes|gt", 0, {"bytes": True}, False),  # a bool is not a number
        ("hostname", None, {}, True),  # null matches a missing field
        ("hostname", None, {"hostname": "x"}, False),
        ("hostname|exists", True, {"hostname": "x"}, True),
        ("ok", True, {"ok": 1}, False),  # booleans compare by identity, not truthiness
        ("port", 443, {"port": 443}, True),
    ],
)
def test_modifiers(field: str, value: object, rec: dict, expected: bool) -> None:
    assert match({"sel": {field: value}, "condition": "sel"}, rec) is expected


def test_conditions() -> None:
    det = {"sel_a": {"x": 1}, "sel_b": {"y": 2}, "filter": {"z": 3}, "condition": "1 of sel_* and not filter"}
    assert match(det, {"x": 1})
    assert match(det, {"y": 2})
    assert not match(det, {"x": 1, "z": 3})
    det["condition"] = "all of sel_* or (filter and not sel_a)"
    assert match(det, {"x": 1, "y": 2})
    assert match(det, {"z": 3})
    assert not match(det, {"x": 1, "z": 3})
    assert match({"a": [{"x": 1}, {"y": 2}], "condition": "a"}, {"y": 2})  # a list of maps is OR


@pytest.mark.parametrize(
    "detection",
    [
        {"sel": {"x": 1}, "condition": "sel and"},
        {"sel": {"x": 1}, "condition": "nope"},
        {"sel": {"x": 1}, "condition": "(sel"},
        {"sel": {"x|re": "("}, "condition": "sel"},
        {"sel": {"x|frobnicate": "a"}, "condition": "sel"},
        {"sel": "just a string", "condition": "sel"},
        {"sel": {"x": 1}},
    ],
)
def test_bad_rules_are_bad_input(detection: dict) -> None:
    with pytest.raises(BadInput):
        rule(detection)


def test_bad_level_and_correlation_are_rejected() -> None:
    with pytest.raises(BadInput, match="level"):
        rule({"s": {"x": 1}, "condition": "s"}, level="severe")
    with pytest.raises(BadInput, match="correlation type"):
        _parse_rule({"id": "c", "title": "c", "level": "high", "correlation": {"type": "magic"}}, "x.yml")


def test_rule_folder_loads_and_ids_are_unique(tmp_path: Path) -> None:
    rules = load_rules()
    assert len({r.id for r in rules}) == len(rules) >= 20
    (tmp_path / "a.yml").write_text(
        "id: x\ntitle: x\nlevel: low\nlogsource: {category: c}\ndetection: {s: {a: 1}, condition: s}\n"
        "---\nid: x\ntitle: y\nlevel: low\nlogsource: {category: c}\ndetection: {s: {a: 1}, condition: s}\n"
    )
    with pytest.raises(BadInput, match="duplicate"):
        load_rules(tmp_path)
    (tmp_path / "a.yml").write_text(
        "id: c\ntitle: c\nlevel: high\ncorrelation: {type: event_count, rules: [missing]}\n"
    )
    with pytest.raises(BadInput, match="unknown rule"):
        load_rules(tmp_path)


def test_correlations() -> None:
    base_a = _parse_rule(
        {
            "id": "a",
            "title": "a",
            "level": "low",
            "logsource": {"category": "c"},
            "detection": {"s": {"k": "a"}, "condition": "s"},
        },
        "x",
    )
    base_b = _parse_rule(
        {
            "id": "b",
            "title": "b",
            "level": "low",
            "logsource": {"category": "c"},
            "detection": {"s": {"k": "b"}, "condition": "s"},
        },
        "x",
    )
    seq = _parse_rule(
        {
            "id": "seq",
            "title": "seq",
            "level": "high",
            "correlation": {
                "type": "temporal_ordered",
                "rules": ["a", "b"],
                "group-by": ["g"],
                "timespan": "5s",
            },
        },
        "x",
    )
    recs = [
        {"k": "a", "g": 1, "t": 0.0, "phase": "install"},
        {"k": "b", "g": 2, "t": 1.0, "phase": "install"},
        {"k": "b", "g": 1, "t": 9.0, "phase": "install"},
    ]
    assert not evaluate({"c": recs}, [base_a, base_b, seq])  # other group; too late; bases silenced
    recs.append({"k": "b", "g": 1, "t": 4.0, "phase": "install"})
    found = evaluate({"c": recs}, [base_a, base_b, seq])
    assert [f.rule for f in found] == ["seq"] and len(found[0].evidence) == 2
    count = _parse_rule(
        {
            "id": "n",
            "title": "n",
            "level": "medium",
            "correlation": {
                "type": "value_count",
                "rules": ["b"],
                "group-by": ["g"],
                "condition": {"field": "t", "gte": 2},
            },
        },
        "x",
    )
    assert [f.rule for f in evaluate({"c": recs}, [base_b, count])] == ["n"]


def test_toolchain_records_are_skipped_unless_asked() -> None:
    r = rule({"s": {"x": 1}, "condition": "s"})
    assert not evaluate({"file_event": [{"x": 1, "toolchain": True}]}, [r])
    r2 = rule({"s": {"x": 1}, "condition": "s"}, toolchain="include")
    assert evaluate({"file_event": [{"x": 1, "toolchain": True}]}, [r2])


def _f(severity: str, source: str = "rules") -> Finding:
    return Finding(rule="x", title="x", severity=severity, phase="install", evidence=[], source=source)


def test_levels_and_score() -> None:
    assert level_of([]) == "benign" and score_of([]) == 0
    assert level_of([_f("low"), _f("informational")]) == "benign"
    assert level_of([_f("medium")]) == "suspicious"
    assert level_of([_f("high")]) == "malicious"
    assert level_of([_f("critical", source="model")]) == "suspicious"  # a model alone is never malicious
    assert level_of([_f("critical", source="model"), _f("high")]) == "malicious"
    assert score_of([_f("medium")] * 3) == 60 and score_of([_f("critical"), _f("high")]) == 100
    assert at_least("malicious", "suspicious") and at_least("suspicious", "suspicious")
    assert not at_least("benign", "suspicious") and not at_least("suspicious", "malicious")


def test_extra_findings_hook_and_rejudge(tmp_path: Path) -> None:
    r = Run()
    r.exec(10, ["/usr/bin/python3", "setup.py"])
    folder = r.write(tmp_path / "run")
    assert load_verdict(folder).level == "benign"  # judged on the fly: this run.json has no verdict
    model = {
        "rule": "model-score",
        "title": "Classifier score 0.97",
        "severity": "high",
        "phase": "install",
        "source": "model",
        "evidence": [{"type": "fact", "summary": "top feature: install_dns=3"}],
    }
    v = rejudge_run_dir(folder, extra_findings=[model])
    assert v.level == "suspicious" and v.findings[-1].source == "model"
    stored = load_verdict(folder)
    assert stored.level == "suspicious" and stored.findings[-1].rule == "model-score"
    assert judge_run_dir(folder).level == "benign"  # the hook is explicit, never sticky


def test_records_that_read_alike_share_an_evaluation_and_only_those() -> None:
    """evaluate_records evaluates a rule once per distinct value of the fields it reads: records
    that differ only elsewhere share the answer; a value of another type (1 for true, a string
    for a list) or another toolchain flag does not; the same records with the memo off agree."""
    from osptrack.verdict import engine

    r = rule({"s": {"ok": True, "path|endswith": "/x"}, "l": {"argv": "-e"}, "condition": "s or l"})
    assert r.fields == ("argv", "ok", "path")  # type: ignore[attr-defined]
    recs = [
        {"ok": True, "path": "/a/x", "pid": 1},
        {"ok": True, "path": "/a/x", "pid": 2, "t": 5.0},  # same fields read: same answer
        {"ok": 1, "path": "/a/x"},  # 1 == True as a key, but not to the rule
        {"ok": 1.0, "path": "/a/x"},
        {"ok": True, "path": "/a/x", "toolchain": True},  # skipped: the toolchain's own
        {"ok": False, "path": "/a/x", "argv": ["nc", "-e"]},
        {"ok": False, "path": "/a/x", "argv": ["nc", "-e"], "pid": 3},
        {"ok": False, "path": "/a/x", "argv": "nc -e"},  # a string is not the list
        {"ok": False, "path": "/a/x", "argv": [["-e"]]},  # not keyed: evaluated on its own
        {"ok": False, "path": "/a/x", "argv": ["nc", "-x"]},
    ]
    for i, rec in enumerate(recs):
        rec["_ref"] = f"event:{i}"
    expected = ["event:0", "event:1", "event:5", "event:6"]

    def matched(memo_entries: int) -> list[str]:
        old = engine.MEMO_ENTRIES
        engine.MEMO_ENTRIES = memo_entries
        try:
            found = engine.evaluate_records((("file_event", rec) for rec in recs), [r])
        finally:
            engine.MEMO_ENTRIES = old
        return sorted(str(ev.ref) for f in found for ev in f.evidence)

    assert matched(engine.MEMO_ENTRIES) == expected
    assert matched(0) == expected  # the memo off: every record evaluated
    assert matched(1) == expected  # full after one entry: the rest evaluated

"""A small Sigma engine: detection rules over one category's records, and Sigma v2 correlation rules.

Supported (docs/rules.md, "Rule format"):
- `detection`: named selections (a map = AND of fields, a list of maps = OR), each field
  `name|modifier|...: value or [values]` (a list = any, `|all` = every); modifiers `contains`,
  `startswith`, `endswith`, `re`, `glob`, `cidr`, `exists`, `gt`/`gte`/`lt`/`lte`, `cased`.
  String comparisons are case-insensitive unless `cased` (as in Sigma); `re` is Python's `re.search`.
  A list-valued field (argv) matches when any element does. `null` matches a missing field.
- `condition`: `and`, `or`, `not`, parentheses, `1 of sel*`, `all of sel*`, `1 of them`.
- `correlation` (Sigma v2 meta-rules) over other rules' matches: `temporal_ordered` (the rules'
  matches in that order, same `group-by` values, within `timespan`), `event_count` and `value_count`
  (`condition: {gte: N}` / `{field: F, gte: N}` per group). `aliases` map one group-by name to
  a different field per rule. Rules referenced by a correlation emit no findings of their own
  unless the correlation says `generate: true`.
- Our one addition: records the toolchain makes on its own (`toolchain: true`) are skipped
  unless the rule says `toolchain: include`.
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from osptrack.errors import BadInput
from osptrack.verdict.model import SEVERITIES, Evidence, Finding

RULES_DIR = Path(__file__).parent / "rules"
EVIDENCE_CAP = 20
# Distinct records whose rule matches evaluate_records remembers per category: a build reads the
# same headers and modules again and again (pycparser's 4,834 file records are 1,006 distinct
# ones), and the bound keeps a run of 100,000 distinct paths from holding them all.
MEMO_ENTRIES = 20_000

Record = dict[str, Any]
Matcher = Callable[[Record], bool]


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: str | None  # Sigma's `level`; None only for building blocks
    description: str = ""
    category: str | None = None
    match: Matcher | None = None
    correlation: dict[str, Any] | None = None
    include_toolchain: bool = False
    tags: tuple[str, ...] = ()
    falsepositives: tuple[str, ...] = ()
    file: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    fields: tuple[str, ...] = ()  # the record fields `match` reads: nothing else decides it


# ---- loading -----------------------------------------------------------------------------------


# libyaml's safe loader when PyYAML has it: the pure-Python one takes ~0.2 s for the rule files,
# paid by every `osptrack analyze` process (same safe subset of YAML either way).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def load_rules(folder: Path = RULES_DIR) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    for path in sorted(folder.glob("*.yml")):
        try:
            docs = [d for d in yaml.load_all(path.read_text(), Loader=_SAFE_LOADER) if d]
        except yaml.YAMLError as exc:
            raise BadInput(f"rule file {path.name} is not valid YAML: {exc}") from exc
        for doc in docs:
            rules.append(_parse_rule(doc, path.name))
    ids = [r.id for r in rules]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise BadInput(f"duplicate rule id {', '.join(dupes)}")
    known = set(ids)
    for r in rules:
        for ref in (r.correlation or {}).get("rules", []):
            if ref not in known:
                raise BadInput(f"rule {r.id}: correlation names unknown rule {ref!r}")
    return tuple(rules)


def _parse_rule(doc: dict[str, Any], file: str) -> Rule:
    rid = doc.get("id") or doc.get("name")
    if not rid or not doc.get("title"):
        raise BadInput(f"rule in {file} needs an id and a title")
    severity = doc.get("level")
    if severity is not None and severity not in SEVERITIES:
        raise BadInput(f"rule {rid}: level {severity!r} is not one of {', '.join(SEVERITIES)}")
    common: dict[str, Any] = {
        "id": str(rid),
        "title": str(doc["title"]),
        "severity": severity,
        "description": str(doc.get("description") or "").strip(),
        "include_toolchain": doc.get("toolchain") == "include",
        "tags": tuple(doc.get("tags") or ()),
        "falsepositives": tuple(doc.get("falsepositives") or ()),
        "file": file,
        "raw": doc,
    }
    if "correlation" in doc:
        corr = dict(doc["correlation"])
        if corr.get("type") not in ("temporal_ordered", "event_count", "value_count"):
            raise BadInput(f"rule {rid}: correlation type {corr.get('type')!r} is not supported")
        return Rule(correlation=corr, **common)
    category = (doc.get("logsource") or {}).get("category")
    detection = doc.get("detection") or {}
    if not category or "condition" not in detection:
        raise BadInput(f"rule {rid}: needs logsource.category and detection.condition")
    specs = {k: v for k, v in detection.items() if k != "condition"}
    selections = {k: _compile_selection(v, str(rid)) for k, v in specs.items()}
    match = _compile_condition(str(detection["condition"]), selections, str(rid))
    fields = tuple(sorted({f for spec in specs.values() for f in _selection_fields(spec)}))
    return Rule(category=str(category), match=match, fields=fields, **common)


def _selection_fields(spec: Any) -> Iterable[str]:
    """The field names a selection's checks read (`name|modifier` keys of its maps)."""
    for part in spec if isinstance(spec, list) else [spec]:
        yield from (str(key).split("|", 1)[0] for key in part)


def _compile_selection(spec: Any, rid: str) -> Matcher:
    # Plain loops rather than any()/all() over a generator: a rule runs per distinct record,
    # and the generator's set-up was a good part of a cheap check's cost. Same order, same
    # short-circuit.
    if isinstance(spec, list):
        parts = [_compile_selection(s, rid) for s in spec]

        def one_of(rec: Record) -> bool:
            for part in parts:  # noqa: SIM110 - see above
                if part(rec):
                    return True
            return False

        return one_of
    if not isinstance(spec, dict):
        raise BadInput(f"rule {rid}: a selection is a map of fields or a list of maps")
    checks = [_compile_field(k, v, rid) for k, v in spec.items()]
    if len(checks) == 1:
        return checks[0]

    def every(rec: Record) -> bool:
        for check in checks:  # noqa: SIM110 - see above
            if not check(rec):
                return False
        return True

    return every


def _compile_field(key: str, value: Any, rid: str) -> Matcher:
    name, *mods = key.split("|")
    want_all = "all" in mods
    cased = "cased" in mods
    ops = [m for m in mods if m not in ("all", "cased")]
    op = ops[0] if ops else "equals"
    values = value if isinstance(value, list) else [value]
    if op == "exists":
        flag = bool(value)
        return lambda rec: (rec.get(name) is not None) == flag
    if op == "equals" and not want_all and not cased and values and all(isinstance(v, str) for v in values):
        # the common case (op: [write, rename], image_name: [sh, bash]): one set lookup
        wanted = frozenset(str(v).casefold() for v in values)

        def check_set(rec: Record) -> bool:
            got = rec.get(name)
            if isinstance(got, str):
                return got.casefold() in wanted
            return isinstance(got, list) and any(isinstance(g, str) and g.casefold() in wanted for g in got)

        return check_set
    tests = [_value_test(op, v, cased, rid) for v in values]
    if len(tests) == 1 and not want_all:
        test = tests[0]

        def check_one(rec: Record) -> bool:  # `check` with one value: a list field's any element
            got = rec.get(name)
            if isinstance(got, list):
                for item in got:  # noqa: SIM110 - as in _compile_selection
                    if test(item):
                        return True
                return False
            return test(got)

        return check_one

    def check(rec: Record) -> bool:
        got = rec.get(name)
        items = got if isinstance(got, list) else [got]

        def one(test: Callable[[Any], bool]) -> bool:
            return any(test(item) for item in items)

        return all(one(t) for t in tests) if want_all else any(one(t) for t in tests)

    return check


def _value_test(op: str, want: Any, cased: bool, rid: str) -> Callable[[Any], bool]:
    if want is None:
        return lambda got: got is None
    if op in ("gt", "gte", "lt", "lte"):
        num = float(want)
        cmp = {
            "gt": lambda g: g > num,
            "gte": lambda g: g >= num,
            "lt": lambda g: g < num,
            "lte": lambda g: g <= num,
        }[op]
        return lambda got: isinstance(got, int | float) and not isinstance(got, bool) and cmp(got)
    if isinstance(want, bool):
        return lambda got: got is want
    if isinstance(want, int | float):
        return lambda got: got == want
    text = str(want)
    if op == "re":
        try:
            rx = re.compile(text)
        except re.error as exc:
            raise BadInput(f"rule {rid}: bad regular expression {text!r}: {exc}") from exc
        return lambda got: isinstance(got, str) and rx.search(got) is not None
    if op == "glob":
        return lambda got: isinstance(got, str) and fnmatch.fnmatchcase(got, text)
    if op == "cidr":
        net = ipaddress.ip_network(text, strict=False)
        return lambda got: _in_net(got, net)
    fold: Callable[[str], str] = (lambda s: s) if cased else str.casefold
    w = fold(text)
    if op == "contains":
        return lambda got: isinstance(got, str) and w in fold(got)
    if op == "startswith":
        return lambda got: isinstance(got, str) and fold(got).startswith(w)
    if op == "endswith":
        return lambda got: isinstance(got, str) and fold(got).endswith(w)
    if op == "equals":
        return lambda got: isinstance(got, str) and fold(got) == w
    raise BadInput(f"rule {rid}: unknown modifier {op!r}")


def _in_net(got: Any, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return isinstance(got, str) and ipaddress.ip_address(got) in net
    except ValueError:
        return False


_TOKEN = re.compile(r"\(|\)|[^\s()]+")


def _compile_condition(text: str, selections: dict[str, Matcher], rid: str) -> Matcher:
    """Recursive descent over `or` < `and` < `not` < atoms (`x`, `1 of x*`, `all of them`, `( )`)."""
    tokens = _TOKEN.findall(text)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise BadInput(f"rule {rid}: condition {text!r} ends too early")
        pos += 1
        return tokens[pos - 1]

    def names(pattern: str) -> list[Matcher]:
        found = [m for n, m in selections.items() if pattern == "them" or fnmatch.fnmatchcase(n, pattern)]
        if not found:
            raise BadInput(f"rule {rid}: condition names no selection matching {pattern!r}")
        return found

    def atom() -> Matcher:
        tok = take()
        if tok == "(":
            inner = expr()
            if take() != ")":
                raise BadInput(f"rule {rid}: unbalanced parentheses in {text!r}")
            return inner
        if tok == "not":
            sub = atom()
            return lambda rec: not sub(rec)
        if tok in ("1", "all", "any") and peek() == "of":
            take()
            group = names(take())
            if tok == "all":
                return lambda rec: all(m(rec) for m in group)
            return lambda rec: any(m(rec) for m in group)
        if tok not in selections:
            raise BadInput(f"rule {rid}: condition names unknown selection {tok!r}")
        return selections[tok]

    def conj() -> Matcher:
        left = atom()
        while peek() == "and":
            take()
            right, prev = atom(), left
            left = functools.partial(lambda a, b, rec: a(rec) and b(rec), prev, right)
        return left

    def expr() -> Matcher:
        left = conj()
        while peek() == "or":
            take()
            right, prev = conj(), left
            left = functools.partial(lambda a, b, rec: a(rec) or b(rec), prev, right)
        return left

    result = expr()
    if pos != len(tokens):
        raise BadInput(f"rule {rid}: cannot parse condition {text!r}")
    return result


# ---- evaluation --------------------------------------------------------------------------------


def needs_toolchain(rules: Iterable[Rule]) -> bool:
    """Whether any rule looks at the toolchain's own records (facts.build can then skip them)."""
    return any(r.include_toolchain for r in rules)


def evaluate(facts: dict[str, list[Record]], rules: Iterable[Rule]) -> list[Finding]:
    return evaluate_records(((category, rec) for category, recs in facts.items() for rec in recs), rules)


def evaluate_records(records: Iterable[tuple[str, Record]], rules: Iterable[Rule]) -> list[Finding]:
    """`evaluate` over (category, record) pairs as they come: only the records a rule matches
    are kept (a correlation needs them all; a finding shows the first EVIDENCE_CAP by time)."""
    rules = list(rules)
    matches: dict[str, list[Record]] = {}
    by_category: dict[str, list[tuple[str, Matcher, bool]]] = {}
    fields: dict[str, set[str]] = {}
    for rule in rules:
        if rule.match is None or rule.category is None:
            continue
        matches[rule.id] = []
        by_category.setdefault(rule.category, []).append((rule.id, rule.match, rule.include_toolchain))
        fields.setdefault(rule.category, set()).update(rule.fields)
    # Which rules a record matches depends only on the fields they read (and `toolchain`), so
    # records that agree on those share one evaluation (_record_key).
    keyed = {category: tuple(sorted(names)) for category, names in fields.items()}
    memos: dict[str, dict[tuple[Any, ...], tuple[str, ...]]] = {category: {} for category in by_category}
    plain: set[tuple[type, ...]] = set()
    for category, rec in records:
        group = by_category.get(category)
        if group is None:
            continue
        memo = memos[category]
        key = _record_key(rec, keyed[category], plain)
        hit = memo.get(key) if key is not None else None
        if hit is None:
            toolchain = rec.get("toolchain")
            hit = tuple(rid for rid, match, include in group if (include or not toolchain) and match(rec))
            if key is not None and len(memo) < MEMO_ENTRIES:
                memo[key] = hit
        for rid in hit:
            matches[rid].append(rec)
    silenced: set[str] = set()
    for rule in rules:
        if rule.correlation is None:
            continue
        if not rule.correlation.get("generate"):
            silenced.update(rule.correlation.get("rules", []))
        matches[rule.id] = _correlate(rule, matches)
    findings: list[Finding] = []
    by_id = {r.id: r for r in rules}
    for rid, recs in matches.items():
        rule = by_id[rid]
        if not recs or rid in silenced or rule.severity is None:
            continue
        findings.extend(_findings(rule, recs))
    findings.sort(key=lambda f: (-SEVERITIES.index(f.severity), f.rule, f.phase))
    return findings


_SCALARS = frozenset({str, bool, int, float, type(None)})


def _record_key(rec: Record, fields: tuple[str, ...], plain: set[tuple[type, ...]]) -> tuple[Any, ...] | None:
    """What rules reading `fields` can see of `rec`, as a dict key; None when a value cannot be
    part of one. The values' types are part of it (True == 1 as keys, but `ok: true` does not
    match 1); a list of strings is keyed as (list, *items), any other container not at all.
    `plain`: the tuples of types seen so far that hold scalars only (checked once each)."""
    values = tuple(map(rec.get, fields))
    types = tuple(map(type, values))
    if types not in plain:
        if not _SCALARS.issuperset(types):
            return _listed_key(rec, values, types)
        plain.add(types)
    return (not rec.get("toolchain"), values, types)


def _listed_key(rec: Record, values: tuple[Any, ...], types: tuple[type, ...]) -> tuple[Any, ...] | None:
    keyed: list[Any] = []
    for value, kind in zip(values, types, strict=True):
        if kind is list and all(type(item) is str for item in value):
            keyed.append((list, *value))
        elif kind in _SCALARS:
            keyed.append(value)
        else:
            return None
    return (not rec.get("toolchain"), tuple(keyed), types)


def emitting(rules: Iterable[Rule]) -> list[Rule]:
    """The rules that can produce findings: with a level, and not a building block of a correlation."""
    rules = list(rules)
    silenced = {
        ref
        for r in rules
        if r.correlation and not r.correlation.get("generate")
        for ref in r.correlation["rules"]
    }
    return [r for r in rules if r.severity and r.id not in silenced]


def _correlate(rule: Rule, matches: dict[str, list[Record]]) -> list[Record]:
    corr = rule.correlation or {}
    refs: list[str] = list(corr.get("rules", []))
    group_by: list[str] = list(corr.get("group-by") or [])
    aliases: dict[str, dict[str, str]] = corr.get("aliases") or {}

    def key(rid: str, rec: Record) -> tuple[Any, ...]:
        return tuple(_hashable(rec.get(aliases.get(g, {}).get(rid, g))) for g in group_by)

    if corr["type"] == "temporal_ordered":
        span = _seconds(corr.get("timespan", "1h"))
        out: list[Record] = []
        first = refs[0]
        for start in matches.get(first, []):
            chain = [start]
            k = key(first, start)
            t = start.get("t") or 0.0
            for rid in refs[1:]:
                nxt = next(
                    (
                        r
                        for r in matches.get(rid, [])
                        if key(rid, r) == k
                        and (r.get("t") or 0.0) >= t
                        and (r.get("t") or 0.0) - (start.get("t") or 0.0) <= span
                    ),
                    None,
                )
                if nxt is None:
                    chain = []
                    break
                chain.append(nxt)
                t = nxt.get("t") or 0.0
            out.extend(r for r in chain if not any(r is o for o in out))
        return out
    cond = corr.get("condition") or {}
    groups: dict[tuple[Any, ...], list[Record]] = {}
    for rid in refs:
        for rec in matches.get(rid, []):
            groups.setdefault(key(rid, rec), []).append(rec)
    out = []
    for recs in groups.values():
        if corr["type"] == "value_count":
            n = len({_hashable(r.get(cond.get("field", ""))) for r in recs})
        else:
            n = len(recs)
        if _compare(n, cond):
            out.extend(recs)
    return out


def _compare(n: int, cond: dict[str, Any]) -> bool:
    checks = {"gt": n.__gt__, "gte": n.__ge__, "lt": n.__lt__, "lte": n.__le__, "eq": n.__eq__}
    return all(checks[k](v) for k, v in cond.items() if k in checks)


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _seconds(text: Any) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", str(text).strip())
    if not m:
        raise BadInput(f"timespan {text!r} is not like 30s, 5m, 1h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _findings(rule: Rule, recs: list[Record]) -> list[Finding]:
    by_phase: dict[str, list[Record]] = {}
    for rec in sorted(recs, key=lambda r: r.get("t") or 0.0):
        by_phase.setdefault(str(rec.get("phase") or "run"), []).append(rec)
    return [
        Finding(
            rule=rule.id,
            title=rule.title,
            severity=str(rule.severity),
            phase=phase,
            evidence=[to_evidence(r) for r in items[:EVIDENCE_CAP]],
            evidence_total=len(items),
            tags=list(rule.tags),
        )
        for phase, items in by_phase.items()
    ]


# ---- evidence ----------------------------------------------------------------------------------

_SKIP = {"_ref", "_type", "t", "phase", "pid", "exe", "argv", "toolchain", "payload"}


def to_evidence(rec: Record) -> Evidence:
    detail = {k: v for k, v in rec.items() if k not in _SKIP and v not in (None, "", [], False)}
    if rec.get("payload"):
        detail["payload"] = str(rec["payload"])[:512]
    argv = rec.get("argv")
    token = rec.get("token") or (rec.get("tokens") or [None])[0]
    return Evidence(
        type=str(rec.get("_type") or "fact"),
        summary=describe(rec),
        ref=rec.get("_ref"),
        t=rec.get("t"),
        phase=rec.get("phase"),
        pid=rec.get("pid"),
        exe=rec.get("image") or rec.get("exe"),
        argv=list(argv) if isinstance(argv, list) and argv else None,
        honeytoken=token,
        detail=detail,
    )


def describe(rec: Record) -> str:
    """One line per record, whatever its category."""
    if "command_line" in rec:
        return f"exec {rec['command_line'][:240]} (pid {rec.get('pid')}, by {rec.get('parent_image') or '?'})"
    if rec.get("_type") == "honeytoken":
        where = (
            f"{rec.get('hostname') or rec.get('dst')}:{rec.get('dst_port')}"
            if rec.get("dst_port")
            else rec.get("dst")
        )
        return (
            f"honeytoken {rec.get('token')} sent to {where} ({rec.get('encoding')}, {rec.get('flow_kind')})"
        )
    if "tokens" in rec:
        return f"read bait {rec.get('path')} ({', '.join(map(str, rec.get('tokens') or [])) or 'bait'}) by {rec.get('exe')}"
    if "qname" in rec:
        return f"DNS {rec.get('qtype')} {rec.get('qname')}"
    if "address" in rec:
        host = f" ({rec['hostname']})" if rec.get("hostname") else ""
        state = "" if rec.get("ok", True) else f" -> {rec.get('errno')}"
        return f"{rec.get('op')} {rec.get('address')}:{rec.get('port')}{host} by {rec.get('exe')}{state}"
    if "dst_port" in rec:
        req = f" {rec.get('http_method')} {rec.get('http_path')}" if rec.get("http_method") else ""
        return f"{rec.get('kind')} to {rec.get('hostname') or rec.get('dst')}:{rec.get('dst_port')}{req}, {rec.get('bytes')} bytes"
    if "path" in rec and "op" in rec:
        to = f" -> {rec['path2']}" if rec.get("path2") else ""
        state = "" if rec.get("ok", True) else f" ({rec.get('errno')})"
        return f"{rec.get('op')} {rec.get('path')}{to}{state} by {rec.get('exe')}"
    if rec.get("_ref", "").startswith("fact:phases") and "alive_at_end" not in rec:
        who = " ".join(rec.get("argv") or []) or rec.get("exe") or f"{rec.get('count', '?')} process(es)"
        return f"still running when {rec.get('phase')} ended: {who[:200]}"
    if rec.get("executed"):
        what = rec.get("path") or rec.get("url") or rec.get("detail") or "proof received"
        return f"second stage executed in {rec.get('phase') or '?'}: {what}"
    return ", ".join(f"{k}={v}" for k, v in rec.items() if not k.startswith("_"))[:240]

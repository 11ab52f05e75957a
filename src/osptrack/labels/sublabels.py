"""Behaviour sub-labels from OSV text, IOCs and references, each with the rule that fired.

Three kinds of rule, applied in this order (docs/labels.md lists every one):

1. *Template* rules: exact template sentences that sources paste into many records (GHSA's
   "should be considered fully compromised", package-analysis's reasons). They fire a label and
   the sentence is then removed, so its words cannot fire keyword rules too.
2. *Boilerplate* is removed without firing anything (headers, disclaimers, "Malicious code in X").
3. *Keyword* rules run on what is left, then on IOCs and on article reference slugs.

A label is reported once, with the first rule that fired for it (templates beat keywords beat
IOCs beat references): the strongest evidence names the label.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

# Taxonomy order is also output order, so equal inputs give equal lists.
TAXONOMY = (
    "c2",
    "command_exec",
    "exfiltration",
    "credential_theft",
    "reverse_shell",
    "backdoor",
    "dropper",
    "infostealer",
    "crypto_miner",
    "clipboard_hijack",
    "typosquat",
    "protestware",
    "destructive",
    "full_compromise",
)
BEHAVIOUR_LABELS = frozenset(TAXONOMY) - {"full_compromise"}


@dataclass(frozen=True)
class Rule:
    id: str
    label: str
    pattern: re.Pattern[str]


def _rx(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE | re.DOTALL)


def _line(text: str) -> re.Pattern[str]:
    """A whole-line pattern (markdown headers, rules)."""
    return re.compile(text, re.IGNORECASE | re.MULTILINE)


# 1. Template sentences: fire, then get removed.
TEMPLATE_RULES: tuple[Rule, ...] = (
    Rule(
        "template:ghsa-fully-compromised",
        "full_compromise",
        _rx(
            r"Any computer that has this package installed or running should be considered fully compromised\."
            r"(?:.*?there is no guarantee that removing the package will remove all malicious software"
            r" resulting from installing it\.)?"
        ),
    ),
    Rule(
        "template:pa-malicious-domain",
        "c2",
        _rx(
            r"(?:the package )?communicates with (?:a|an unknown) (?:domain|host) associated with malicious activity\.?"
        ),
    ),
    Rule(
        "template:pa-malicious-commands",
        "command_exec",
        _rx(r"(?:the package )?executes one or more commands associated with malicious behaviou?r\.?"),
    ),
)

# 2. Boilerplate: removed, fires nothing.
BOILERPLATE: tuple[re.Pattern[str], ...] = (
    _rx(r"_-= Per source details\. Do not edit below this line\.=-_"),
    _line(r"^## Source: [\w.-]+ \([0-9a-f]*\)\s*$"),
    _line(r"^#+ *(?:Original Description|Overview|Details|Impact|How to fix it|Analysis of the crate)\s*$"),
    _rx(r"It is considered malicious because:"),
    _rx(r"This package is considered malicious because"),
    _rx(r"The OpenSSF Package Analysis project identified '[^']*' @ \S+ \([^)]*\) as malicious\."),
    _rx(r"Malicious code in \S+ \([^)]*\)"),
    _rx(r"The package `[^`]*` \([^)]*\) version \S+ contains malicious code\."),
    _rx(r"PyPI has since removed `[^`]*`\."),
    _rx(r"Security researchers at [\w ]+? discovered"),
    _rx(r"This package was flagged as malicious by \w+\."),
    _rx(r"Users should avoid installing or using this package\."),
    _rx(
        r"Please note that this package was created by an unknown source\..*?legitimate affiliation with the brand\."
    ),
    _rx(r"This advisory has been withdrawn.*?preserve external references\."),
    _rx(r"False positive caused by problematic ingestion\."),
    _line(r"^-{3,}\s*$"),
)

# 3. Keyword rules on the cleaned text. Phrases rather than single words where a word alone is
# ambiguous ("key", "token", "shell" appear in harmless descriptions).
KEYWORD_RULES: tuple[Rule, ...] = (
    Rule("kw:c2", "c2", _rx(r"\bC2\b|\bC&C\b|command[- ]and[- ]control|\bbeacon\b|cobalt strike")),
    Rule(
        "kw:c2-comms",
        "c2",
        _rx(
            r"communicates? with (?:an? )?(?:unknown|remote|external|attacker[- ]controlled|suspicious) (?:host|server|domain)"
        ),
    ),
    Rule("kw:rat", "c2", _rx(r"\bRAT\b|remote access (?:tool|trojan)|remote control|quasarrat|gh0st ?rat")),
    Rule(
        "kw:command-exec",
        "command_exec",
        _rx(
            r"execut\w*\s+(?:\w+[\s-]+){0,4}?(?:commands?|scripts?|shell|powershell|code\b)"
            r"|runs? (?:\w+ ){0,2}commands?|remote code execution|\bRCE\b|download cradle"
            r"|base64-encoded (?:commands?|scripts?)|(?:pre|post)[- ]?install (?:hook|script)"
        ),
    ),
    Rule(
        "kw:exfiltration",
        "exfiltration",
        _rx(
            r"exfil\w*|(?:send|sent|sends|upload\w*|transmit\w*|post\w*) (?:\w+ ){0,6}?to (?:a |an |the )?"
            r"(?:remote|external|attacker|unknown|c&c|c2|discord|telegram|slack|webhook)"
            r"|steal\w* (?:\w+ ){0,2}(?:source code|data|files|information|ip address)"
            r"|collects? (?:\w+ ){0,2}(?:system|host|machine|user) (?:data|information)|webhook|data theft"
        ),
    ),
    Rule(
        "kw:credential-theft",
        "credential_theft",
        _rx(
            r"credential|password|private keys?|\bmnemonic|api keys?|access keys?|\bsecrets\b"
            r"|session (?:data|tokens?|cookies)|\btokens?\b.{0,40}\b(?:steal|exfil|harvest|grab)"
            r"|(?:steal|exfil|harvest|grab)\w*.{0,40}\btokens?\b|environment variables|wallet (?:files|keys)"
            r"|crypto\w*[- ]steal\w*|(?:steal|drain)\w* (?:\w+ ){0,2}wallets?"
        ),
    ),
    Rule(
        "kw:reverse-shell",
        "reverse_shell",
        _rx(r"reverse[- ]shell|remote shell|bind[- ]shell|backdoor port|metasploit|\bnetcat\b|\bnc -e\b"),
    ),
    Rule("kw:backdoor", "backdoor", _rx(r"back ?doo?r|authorized_keys")),
    Rule(
        "kw:dropper",
        "dropper",
        _rx(
            r"download\w* (?:\w+ ){0,3}?(?:and (?:execut|run)\w*|payload|binary|executable|malware|stage)"
            r"|second[- ]stage|further payloads|\bdropper\b|\bloader\b|download(?:er)? functionality"
            r"|bundled PE payload|fetch\w* (?:\w+ ){0,3}code from a remote"
        ),
    ),
    Rule(
        "kw:infostealer",
        "infostealer",
        _rx(
            r"info(?:rmation)?[- ]?steal\w*|\bstealer\b|spyware|harvest browser|browser (?:data|databases)"
            r"|keylog\w*|log keystrokes|screenshots|beavertail|w4sp"
        ),
    ),
    Rule("kw:crypto-miner", "crypto_miner", _rx(r"crypto[- ]?min\w*|\bminer\b|xmrig|monero")),
    Rule("kw:clipboard", "clipboard_hijack", _rx(r"clipboard|clipper")),
    Rule(
        "kw:typosquat",
        "typosquat",
        _rx(r"typo[- ]?squat\w*|impersonat\w*|starjack\w*|masquerad\w*|homoglyph|intentionally similar"),
    ),
    Rule("kw:protestware", "protestware", _rx(r"protestware|peacenotwar|\bprotest\b")),
    Rule(
        "kw:destructive",
        "destructive",
        _rx(r"destructive|wipe[sr]? |delete\w* (?:\w+ ){0,3}(?:directories|files|folders)|ransomware"),
    ),
)

# IOCs: structure, not prose.
_PAYLOAD_EXT = re.compile(r"\.(?:exe|ps1|bat|cmd|vbs|dll|scr|msi|sh|elf|bin|jar|apk|dmg)$", re.IGNORECASE)
# Out-of-band endpoints that only receive data (interaction catchers, bot APIs, webhooks).
_EXFIL_HOSTS = re.compile(
    r"(?:^|\.)(?:api\.telegram\.org|hooks\.slack\.com|webhook\.site|oastify\.com"
    r"|oast\.(?:fun|live|site|online|me|pro)|requestbin\.net|pipedream\.net|canarytokens\.com|interact\.sh"
    r"|burpcollaborator\.net)$",
    re.IGNORECASE,
)
_WEBHOOK_PATH = re.compile(r"/api/webhooks/|/webhook", re.IGNORECASE)


@dataclass(frozen=True)
class SubLabels:
    labels: tuple[str, ...]
    rules: tuple[str, ...]


class _Collector:
    def __init__(self) -> None:
        self.fired: dict[str, str] = {}

    def add(self, label: str, rule_id: str) -> None:
        self.fired.setdefault(label, rule_id)

    def result(self) -> SubLabels:
        labels = tuple(lab for lab in TAXONOMY if lab in self.fired)
        extra = tuple(sorted(lab for lab in self.fired if lab not in TAXONOMY))
        ordered = labels + extra
        return SubLabels(ordered, tuple(self.fired[lab] for lab in ordered))


def strip_templates(text: str, collector: _Collector | None = None) -> str:
    """Remove template sentences (recording what they mean) and boilerplate; return the rest."""
    for rule in TEMPLATE_RULES:
        if rule.pattern.search(text):
            if collector is not None:
                collector.add(rule.label, rule.id)
            text = rule.pattern.sub(" ", text)
    for pattern in BOILERPLATE:
        text = pattern.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()


def _apply_keywords(text: str, prefix: str, collector: _Collector) -> None:
    if not text:
        return
    for rule in KEYWORD_RULES:
        if rule.pattern.search(text):
            collector.add(rule.label, f"{prefix}{rule.id}")


def split_url(url: str) -> tuple[str, str]:
    """(lower-cased hostname, path) of a URL, scheme optional; ("", "") when it cannot be parsed.

    IOC lists hold hostile, sometimes malformed text; one bad URL must not lose the record.
    """
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        return (parts.hostname or "").lower(), parts.path
    except ValueError:
        return "", ""


def _apply_iocs(iocs: Mapping[str, Sequence[str]], collector: _Collector) -> None:
    for url in iocs.get("url", ()):
        host, path = split_url(url)
        if _PAYLOAD_EXT.search(path):
            collector.add("dropper", "ioc:payload-url")
        elif _EXFIL_HOSTS.search(host) or _WEBHOOK_PATH.search(path):
            collector.add("exfiltration", "ioc:exfil-endpoint")
    for domain in iocs.get("domain", ()):
        if _EXFIL_HOSTS.search(domain.lower().rstrip(".")):
            collector.add("exfiltration", "ioc:exfil-endpoint")
    # A listed domain or IP is a host the package talks to: the same evidence as package-analysis's
    # "communicates with a domain associated with malicious activity".
    if iocs.get("domain") or iocs.get("ip"):
        collector.add("c2", "ioc:malicious-host")


_SLUG_SPLIT = re.compile(r"[-_/+]+")
_PAGE_SUFFIX = re.compile(r"\.(?:html?|php|aspx?)$", re.IGNORECASE)
_REGISTRY_HOSTS = ("github.com", "osv.dev", "npmjs.com", "pypi.org", "rubygems.org", "nuget.org")


def reference_text(references: Iterable[Mapping[str, Any]]) -> str:
    """Words from article/web reference URL paths (blog titles), not advisories or registries."""
    words: list[str] = []
    for ref in references:
        if not isinstance(ref, Mapping) or ref.get("type") not in ("ARTICLE", "WEB", "REPORT"):
            continue
        host, path = split_url(str(ref.get("url") or ""))
        if not host or host.endswith(_REGISTRY_HOSTS):
            continue
        words.append(_SLUG_SPLIT.sub(" ", _PAGE_SUFFIX.sub("", path)))
    return " ".join(words).strip()


def derive(
    texts: Iterable[str],
    iocs: Mapping[str, Sequence[str]] | None = None,
    references: Iterable[Mapping[str, Any]] = (),
    extra: Iterable[tuple[str, str]] = (),
) -> SubLabels:
    """Sub-labels for one record: `texts` (summary, details, ...), IOCs by kind, references.

    `extra` lets a source add (label, rule_id) pairs from structured fields it understands.
    """
    collector = _Collector()
    for label, rule_id in extra:
        collector.add(label, rule_id)
    for label, rule_id in _text_rules(tuple(_cache_key(t) for t in texts if t)):
        collector.add(label, rule_id)
    if iocs:
        _apply_iocs(iocs, collector)
    refs = reference_text(references)
    if refs:
        for label, rule_id in _keyword_rules(refs, "ref:"):
            collector.add(label, rule_id)
    return collector.result()


# Most records are the same template text with a different package name or source hash. Taking
# those out first (they are boilerplate anyway) lets identical texts share one rule evaluation.
_VARIABLE_PARTS = (
    _line(r"^## Source: ([\w.-]+) \([0-9a-f]*\)\s*$"),
    _rx(r"Malicious code in \S+ \([^)]*\)"),
    _rx(r"The OpenSSF Package Analysis project identified '[^']*' @ \S+ \([^)]*\) as malicious\."),
)


def _cache_key(text: str) -> str:
    for pattern in _VARIABLE_PARTS:
        if pattern.search(text):
            text = pattern.sub(" ", text)
    return text


@lru_cache(maxsize=4096)
def _text_rules(texts: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    collector = _Collector()
    cleaned = [strip_templates(t, collector) for t in texts]
    _apply_keywords(" \n ".join(c for c in cleaned if c), "", collector)
    return tuple(collector.fired.items())


@lru_cache(maxsize=4096)
def _keyword_rules(text: str, prefix: str) -> tuple[tuple[str, str], ...]:
    collector = _Collector()
    _apply_keywords(text, prefix, collector)
    return tuple(collector.fired.items())


def osptrack_sub_label(labels: Iterable[str]) -> str:
    """Map to OSPtrack's `Sub_Label` vocabulary (the paper's Table II).

    OSPtrack's own metrics file labels GHSA's "fully compromised" records "root shell" and
    package-analysis's domain / command reasons "C2" / "command exec". A record with several gets
    the most specific: C2, then root shell (also for reverse shells and shell backdoors), then
    command exec.
    """
    present = set(labels)
    if "c2" in present:
        return "C2"
    if present & {"reverse_shell", "backdoor", "full_compromise"}:
        return "root shell"
    if "command_exec" in present:
        return "command exec"
    return "na"

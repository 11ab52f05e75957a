"""Every sub-label rule, the boilerplate stripping, and the OSPtrack mapping."""

from __future__ import annotations

import pytest
from labels_fixtures import GHSA_TEMPLATE, SEPARATOR

from osptrack.labels.sublabels import (
    BEHAVIOUR_LABELS,
    KEYWORD_RULES,
    TAXONOMY,
    derive,
    osptrack_sub_label,
    strip_templates,
)


def labels_of(*texts: str, **kw) -> dict[str, str]:
    got = derive(texts, **kw)
    return dict(zip(got.labels, got.rules, strict=True))


def test_ghsa_template_is_full_compromise_and_its_secrets_word_does_not_leak() -> None:
    details = f"{SEPARATOR}\n## Source: ghsa-malware (abc123)\n{GHSA_TEMPLATE}\n"
    assert labels_of("Malicious code in x (npm)", details) == {
        "full_compromise": "template:ghsa-fully-compromised"
    }
    # The same word outside the template does fire: the rule is not simply missing.
    assert "credential_theft" in labels_of("It uploads the secrets of the developer")


def test_package_analysis_templates() -> None:
    details = (
        f"{SEPARATOR}\n## Source: ossf-package-analysis (ff00)\n"
        "The OpenSSF Package Analysis project identified 'evil' @ 1.0.0 (npm) as malicious.\n\n"
        "It is considered malicious because:\n\n"
        "- The package communicates with a domain associated with malicious activity.\n"
        "- The package executes one or more commands associated with malicious behavior.\n"
    )
    assert labels_of(details) == {
        "c2": "template:pa-malicious-domain",
        "command_exec": "template:pa-malicious-commands",
    }


def test_boilerplate_is_removed_entirely() -> None:
    text = (
        "Malicious code in evil-pkg (PyPI)"
        f"{SEPARATOR}\n## Source: ossf-package-analysis (ff00)\n"
        "The OpenSSF Package Analysis project identified 'evil-pkg' @ 1.0 (pypi) as malicious.\n"
        "It is considered malicious because:\n---\n## Original Description\n"
    )
    assert strip_templates(text) == ""


@pytest.mark.parametrize(
    ("text", "label", "rule"),
    [
        ("establishes C2 via Discord", "c2", "kw:c2"),
        ("a Go-variant of the Cobalt Strike beacon", "c2", "kw:c2"),
        ("communicates with an unknown host via a Telegram channel", "c2", "kw:c2-comms"),
        ("delivery of QuasarRAT", "c2", "kw:rat"),
        ("runs commands in a pre-install script", "command_exec", "kw:command-exec"),
        ("Base64-encoded commands are executed from __init__.py", "command_exec", "kw:command-exec"),
        ("exfils sensitive data to a attacker-controlled domain", "exfiltration", "kw:exfiltration"),
        ("sends it to a remote server", "exfiltration", "kw:exfiltration"),
        ("steals cloud service credentials", "credential_theft", "kw:credential-theft"),
        ("exfiltrate user private keys", "credential_theft", "kw:credential-theft"),
        ("download and execute a reverse shell script", "reverse_shell", "kw:reverse-shell"),
        ("opens up arbitrary backdoor port", "reverse_shell", "kw:reverse-shell"),
        ("adds the attacker's public SSH key to authorized_keys", "backdoor", "kw:backdoor"),
        ("download a second stage payload", "dropper", "kw:dropper"),
        ("used as a loader to download and run another malicious payload", "dropper", "kw:dropper"),
        ("executing spyware and information-stealing malware", "infostealer", "kw:infostealer"),
        ("contains the BeaverTail infostealer", "infostealer", "kw:infostealer"),
        ("payload execute a cryptomining malware", "crypto_miner", "kw:crypto-miner"),
        ("manipulate clipboard and replace crypto wallet address", "clipboard_hijack", "kw:clipboard"),
        ("Malicious Typosquatting packages campaign", "typosquat", "kw:typosquat"),
        ("This package impersonates the popular 'cookie-parser' package", "typosquat", "kw:typosquat"),
        ("protestware that overwrites files", "protestware", "kw:protestware"),
        (
            "has destructive functionality to delete development-related directories",
            "destructive",
            "kw:destructive",
        ),
    ],
)
def test_keyword_rules(text: str, label: str, rule: str) -> None:
    assert labels_of(text).get(label) == rule


def test_every_keyword_rule_is_exercised() -> None:
    # Guards the table above: a new rule without a test fails here.
    tested = {
        "kw:c2", "kw:c2-comms", "kw:rat", "kw:command-exec", "kw:exfiltration", "kw:credential-theft",
        "kw:reverse-shell", "kw:backdoor", "kw:dropper", "kw:infostealer", "kw:crypto-miner",
        "kw:clipboard", "kw:typosquat", "kw:protestware", "kw:destructive",
    }  # fmt: skip
    assert {r.id for r in KEYWORD_RULES} == tested
    assert {r.label for r in KEYWORD_RULES} <= set(TAXONOMY)


@pytest.mark.parametrize(
    "text",
    [
        "Malicious code in secrets-manager (npm)",  # package name in the summary boilerplate
        "A harmless description of a logging library",
        "The package was published by a new account",
    ],
)
def test_no_label_from_neutral_text(text: str) -> None:
    assert labels_of(text) == {}


def test_iocs() -> None:
    got = labels_of(
        "",
        iocs={
            "url": ["https://dl.dropbox.com/s/x/payload.exe", "https://discord.com/api/webhooks/1/abc"],
            "domain": ["abc.oastify.com"],
        },
    )
    assert got == {
        "c2": "ioc:malicious-host",
        "exfiltration": "ioc:exfil-endpoint",
        "dropper": "ioc:payload-url",
    }
    # A plain page URL is neither a payload nor an exfil endpoint; a bare IP is a contacted host.
    assert labels_of("", iocs={"url": ["https://example.com/about"]}) == {}
    assert labels_of("", iocs={"ip": ["203.0.113.9"]}) == {"c2": "ioc:malicious-host"}


def test_references_are_weaker_evidence_with_own_prefix() -> None:
    refs = [
        {"type": "ARTICLE", "url": "https://blog.example.com/dozens-of-npm-packages-deploy-reverse-shell/"},
        {"type": "ADVISORY", "url": "https://github.com/advisories/GHSA-typo-squat"},  # not an article
        {"type": "PACKAGE", "url": "https://www.npmjs.com/package/typosquat-me"},
    ]
    assert labels_of("", references=refs) == {"reverse_shell": "ref:kw:reverse-shell"}
    # Text evidence wins over a reference for the same label.
    assert (
        labels_of("download and execute a reverse shell", references=refs)["reverse_shell"]
        == "kw:reverse-shell"
    )


def test_order_follows_taxonomy_and_rules_align() -> None:
    got = derive(["typosquat that exfiltrates credentials to a remote server over C2"])
    assert list(got.labels) == [lab for lab in TAXONOMY if lab in got.labels]
    assert len(got.rules) == len(got.labels)
    assert set(got.labels) == {"c2", "exfiltration", "credential_theft", "typosquat"}


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["c2", "command_exec", "full_compromise"], "C2"),
        (["full_compromise"], "root shell"),
        (["reverse_shell", "command_exec"], "root shell"),
        (["command_exec", "exfiltration"], "command exec"),
        (["infostealer", "dropper"], "na"),
        ([], "na"),
    ],
)
def test_osptrack_vocabulary(labels: list[str], expected: str) -> None:
    assert osptrack_sub_label(labels) == expected


def test_behaviour_labels_exclude_full_compromise() -> None:
    assert "full_compromise" not in BEHAVIOUR_LABELS
    assert BEHAVIOUR_LABELS | {"full_compromise"} == set(TAXONOMY)


def test_every_rule_is_documented() -> None:
    from pathlib import Path

    from osptrack.labels.sublabels import TEMPLATE_RULES

    doc = (Path(__file__).resolve().parents[2] / "docs" / "labels.md").read_text()
    rule_ids = [r.id for r in (*TEMPLATE_RULES, *KEYWORD_RULES)] + [
        "ioc:payload-url",
        "ioc:exfil-endpoint",
        "ioc:malicious-host",
        "osptrack:attack-type-root-shell",
        "osptrack:attack-type-command-exec",
    ]
    missing = [r for r in rule_ids if f"`{r}`" not in doc]
    assert missing == []
    assert all(f"`{label}`" in doc or label in doc for label in TAXONOMY)

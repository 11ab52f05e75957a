"""Version ordering per ecosystem and OSV range evaluation."""

from __future__ import annotations

import pytest

from osptrack.labels.versions import compare, in_range, is_all_versions


@pytest.mark.parametrize(
    ("eco", "low", "high"),
    [
        ("pypi", "1.9", "1.10"),
        ("pypi", "1.0rc1", "1.0"),
        ("pypi", "1.0", "1.0.post1"),
        ("pypi", "1.0.dev0", "1.0a1"),
        ("npm", "1.9.0", "1.10.0"),
        ("npm", "1.0.0-alpha", "1.0.0-alpha.1"),
        ("npm", "1.0.0-alpha.beta", "1.0.0-beta"),
        ("npm", "1.0.0-beta.2", "1.0.0-beta.11"),
        ("npm", "1.0.0-rc.1", "1.0.0"),
        ("crates.io", "0.1.9", "0.1.10"),
        ("go", "v1.2.3", "v1.10.0"),
        ("nuget", "1.0.0-beta", "1.0.0"),
        ("nuget", "1.0.0", "1.0.0.1"),
        ("nuget", "1.0.0-Alpha.2", "1.0.0-alpha.10"),
        ("rubygems", "1.0.a", "1.0"),
        ("rubygems", "1.0.0.pre", "1.0.0"),
        ("rubygems", "1.9", "1.10"),
        ("rubygems", "1.0.b1", "1.0.b2"),
        ("packagist", "1.0.0-beta1", "1.0.0-RC1"),
        ("packagist", "1.0.0-dev", "1.0.0-alpha"),
        ("packagist", "1.0.0", "1.0.0-patch1"),
        ("maven", "1.9", "1.10"),
    ],
)
def test_ordering(eco: str, low: str, high: str) -> None:
    assert compare(eco, low, high) == -1
    assert compare(eco, high, low) == 1
    assert compare(eco, low, low) == 0


@pytest.mark.parametrize(
    ("eco", "a", "b"),
    [
        ("pypi", "1.0", "1.0.0"),
        ("npm", "v1.2.3", "1.2.3"),
        ("npm", "1.2.3+build.5", "1.2.3"),  # build metadata has no precedence
        ("nuget", "1.0", "1.0.0.0"),
        ("rubygems", "1.0", "1.0.0"),
        ("rubygems", "1.0-rc1", "1.0.pre.rc1"),
        ("packagist", "v2.1", "2.1.0.0"),
    ],
)
def test_equal_spellings(eco: str, a: str, b: str) -> None:
    assert compare(eco, a, b) == 0


@pytest.mark.parametrize(("eco", "junk"), [("pypi", "not a version"), ("npm", "1.x"), ("nuget", "abc")])
def test_unparsable_is_none_not_a_guess(eco: str, junk: str) -> None:
    assert compare(eco, junk, "1.0.0") is None


def test_range_introduced_fixed() -> None:
    events = [{"introduced": "1.2.0"}, {"fixed": "1.10.0"}]
    assert in_range("npm", events, "1.2.0") is True
    assert in_range("npm", events, "1.9.9") is True
    assert in_range("npm", events, "1.10.0") is False
    assert in_range("npm", events, "1.1.9") is False


def test_range_last_affected_is_inclusive() -> None:
    events = [{"introduced": "0"}, {"last_affected": "2.0.0"}]
    assert in_range("pypi", events, "0.0.1") is True
    assert in_range("pypi", events, "2.0") is True
    assert in_range("pypi", events, "2.0.1") is False


def test_range_with_two_windows_in_any_event_order() -> None:
    # OSV does not require sorted events; the windows are [1.0, 1.5) and [2.0, 2.5).
    events = [{"introduced": "2.0.0"}, {"fixed": "1.5.0"}, {"fixed": "2.5.0"}, {"introduced": "1.0.0"}]
    got = {v: in_range("crates.io", events, v) for v in ("0.9.0", "1.2.0", "1.7.0", "2.1.0", "2.5.0")}
    assert got == {"0.9.0": False, "1.2.0": True, "1.7.0": False, "2.1.0": True, "2.5.0": False}


def test_range_uses_ecosystem_ordering_for_rubygems() -> None:
    events = [{"introduced": "1.0"}, {"fixed": "1.2"}]
    assert in_range("rubygems", events, "1.2.a") is True  # a prerelease of the fix is still affected
    assert in_range("rubygems", events, "1.0.a") is False


def test_range_unparsable_version_is_none() -> None:
    assert in_range("npm", [{"introduced": "1.0.0"}, {"fixed": "2.0.0"}], "latest") is None


def test_all_versions_detection() -> None:
    assert is_all_versions([{"type": "SEMVER", "events": [{"introduced": "0"}]}])
    assert is_all_versions([{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}])
    assert not is_all_versions([{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.0.1"}]}])
    assert not is_all_versions([{"type": "SEMVER", "events": [{"introduced": "1.0"}]}])
    assert not is_all_versions([{"type": "GIT", "events": [{"introduced": "0"}]}])
    assert not is_all_versions([])

"""Registry API request building and response parsing, on responses recorded by hand in the
shapes the registries document (these machines cannot reach rubygems.org, Packagist,
crates.io or nuget.org). Values are illustrative, never used as analysis results."""

from __future__ import annotations

import hashlib
import json

import pytest

from osptrack.ecosystems import registry_api as api
from osptrack.errors import BadInput

SHA = hashlib.sha256(b"gem bytes").hexdigest()


def test_requests_are_registry_urls_with_quoting_and_a_user_agent() -> None:
    assert api.metadata_request("gem", "rack").url == "https://rubygems.org/api/v1/gems/rack.json"
    assert (
        api.metadata_request("rubygems", "rack", "3.0.8").url
        == "https://rubygems.org/api/v2/rubygems/rack/versions/3.0.8.json"
    )
    assert (
        api.metadata_request("composer", "Monolog/Monolog").url
        == "https://repo.packagist.org/p2/monolog/monolog.json"
    )
    assert (
        api.metadata_request("crates-io", "serde-json", "1.0.0").url
        == "https://crates.io/api/v1/crates/serde-json/1.0.0"
    )
    assert (
        api.metadata_request("nuget", "Newtonsoft.Json").url
        == "https://api.nuget.org/v3-flatcontainer/newtonsoft.json/index.json"
    )
    assert dict(api.metadata_request("crates.io", "x").headers)["User-Agent"].startswith("osptrack/")
    dep = api.dependencies_request("nuget", "Newtonsoft.Json", "13.0.3-Beta1")
    assert dep is not None and dep.url.endswith("/newtonsoft.json/13.0.3-beta1/newtonsoft.json.nuspec")
    assert api.dependencies_request("rubygems", "rack", "1.0") is None


@pytest.mark.parametrize(
    ("eco", "name"), [("rubygems", "../etc"), ("packagist", "noslash"), ("crates.io", "a b")]
)
def test_hostile_names_never_become_urls(eco: str, name: str) -> None:
    with pytest.raises(BadInput):
        api.metadata_request(eco, name)


def test_rubygems_version_response() -> None:
    body = json.dumps(
        {
            "name": "rack",
            "version": "3.0.8",
            "platform": "ruby",
            "sha": SHA.upper(),
            "yanked": False,
            "gem_uri": "https://rubygems.org/gems/rack-3.0.8.gem",
            "dependencies": {
                "development": [{"name": "minitest", "requirements": "~> 5.0"}],
                "runtime": [{"name": "webrick", "requirements": ">= 1.8"}],
            },
        }
    ).encode()
    rel = api.parse_metadata("rubygems", "rack", "3.0.8", body)
    assert isinstance(rel, api.Release)
    assert (rel.filename, rel.archive_url, rel.sha256) == (
        "rack-3.0.8.gem",
        "https://rubygems.org/gems/rack-3.0.8.gem",
        SHA,
    )
    assert rel.dependencies == (("webrick", ">= 1.8"),)  # development dependencies never install
    native = json.loads(body)
    native["platform"] = "x86_64-linux"
    native_rel = api.parse_metadata("rubygems", "rack", "3.0.8", json.dumps(native).encode())
    assert isinstance(native_rel, api.Release) and native_rel.filename == "rack-3.0.8-x86_64-linux.gem"
    with pytest.raises(BadInput, match="asked for 9.9"):
        api.parse_metadata("rubygems", "rack", "9.9", body)
    with pytest.raises(BadInput, match="not JSON"):
        api.parse_metadata("rubygems", "rack", None, b"This rubygem could not be found.")


PACKAGIST_MINIFIED = {
    "minified": "composer/2.0",
    "packages": {
        "acme/tool": [
            {
                "name": "acme/tool",
                "version": "2.1.0-beta1",
                "version_normalized": "2.1.0.0-beta1",
                "dist": {
                    "type": "zip",
                    "url": "https://api.github.com/repos/acme/tool/zipball/b1",
                    "shasum": "",
                },
                "require": {"php": ">=8.1", "ext-json": "*", "psr/log": "^3.0"},
                "bin": ["bin/tool"],
            },
            {
                "version": "2.0.1",
                "version_normalized": "2.0.1.0",
                "dist": {
                    "type": "zip",
                    "url": "https://api.github.com/repos/acme/tool/zipball/a2",
                    "shasum": "a9993e364706816aba3e25717850c26c9cd0d89d",
                },
            },
            {
                "version": "1.0.0",
                "version_normalized": "1.0.0.0",
                "bin": "__unset",
                "require": {"php": ">=7.4"},
                "dist": {
                    "type": "zip",
                    "url": "https://api.github.com/repos/acme/tool/zipball/a1",
                    "shasum": "",
                },
            },
        ]
    },
}


def test_packagist_minified_metadata_is_expanded() -> None:
    expanded = api.expand_minified(PACKAGIST_MINIFIED["packages"]["acme/tool"])
    assert expanded[1]["bin"] == ["bin/tool"] and expanded[1]["name"] == "acme/tool"  # inherited
    assert "bin" not in expanded[2]  # "__unset"
    body = json.dumps(PACKAGIST_MINIFIED).encode()
    latest = api.parse_metadata("packagist", "Acme/Tool", None, body)
    assert isinstance(latest, api.Release)
    assert latest.version == "2.0.1"  # newest stable, not the beta listed first
    assert latest.sha1 == "a9993e364706816aba3e25717850c26c9cd0d89d"
    assert latest.dependencies == (("psr/log", "^3.0"),)  # php and ext-* are platform, inherited require
    old = api.parse_metadata("packagist", "acme/tool", "v1.0.0", body)
    assert isinstance(old, api.Release) and old.dependencies == () and old.sha1 is None
    assert old.filename == "acme-tool-1.0.0.zip"
    with pytest.raises(BadInput, match="no version 3.0"):
        api.parse_metadata("packagist", "acme/tool", "3.0", body)
    with pytest.raises(BadInput, match="no such package"):
        api.parse_metadata("packagist", "acme/other", None, body)


def test_crates_two_step_resolution_and_dependencies() -> None:
    listing = json.dumps(
        {
            "crate": {"id": "serde-json", "max_version": "2.0.0-rc.1", "max_stable_version": "1.0.2"},
            "versions": [],
        }
    ).encode()
    assert api.parse_metadata("crates.io", "serde-json", None, listing) == "1.0.2"
    one = json.dumps(
        {
            "version": {
                "crate": "serde-json",
                "num": "1.0.2",
                "checksum": SHA,
                "yanked": True,
                "dl_path": "/api/v1/crates/serde-json/1.0.2/download",
            }
        }
    ).encode()
    rel = api.parse_metadata("crates.io", "serde-json", "1.0.2", one)
    assert isinstance(rel, api.Release)
    assert rel.archive_url == "https://static.crates.io/crates/serde-json/serde-json-1.0.2.crate"
    assert rel.sha256 == SHA and rel.yanked
    deps = json.dumps(
        {
            "dependencies": [
                {"crate_id": "itoa", "req": "^1.0", "kind": "normal", "optional": False},
                {"crate_id": "cc", "req": "^1", "kind": "build", "optional": False},
                {"crate_id": "indexmap", "req": "^2", "kind": "normal", "optional": True},
                {"crate_id": "serde_derive", "req": "^1", "kind": "dev", "optional": False},
            ]
        }
    ).encode()
    assert api.parse_crates_dependencies(deps) == (("itoa", "^1.0"), ("cc", "^1"))
    missing = json.dumps({"errors": [{"detail": "crate `nope` does not have a version `1.0.0`"}]}).encode()
    with pytest.raises(BadInput, match="does not have a version"):
        api.parse_metadata("crates.io", "nope", "1.0.0", missing)


def test_nuget_flat_container_and_nuspec() -> None:
    body = json.dumps({"versions": ["1.0.0", "12.0.3", "13.0.1", "13.0.4-beta1", "9.0.1"]}).encode()
    rel = api.parse_metadata("nuget", "Newtonsoft.Json", None, body)
    assert isinstance(rel, api.Release)
    assert rel.version == "13.0.1"  # highest stable, numerically (not "9.0.1")
    assert (
        rel.archive_url
        == "https://api.nuget.org/v3-flatcontainer/newtonsoft.json/13.0.1/newtonsoft.json.13.0.1.nupkg"
    )
    with pytest.raises(BadInput, match="no version 14.0.0"):
        api.parse_metadata("nuget", "Newtonsoft.Json", "14.0.0", body)
    nuspec = b"""<?xml version="1.0"?><package><metadata><id>A</id><version>1.0.0</version><dependencies>
      <group targetFramework=".NETFramework4.5"><dependency id="B" version="[1.0.0, )" exclude="Build" /></group>
      <group targetFramework=".NETStandard2.0"><dependency id="B" version="2.0.0" /><dependency id="C" /></group>
    </dependencies></metadata></package>"""
    assert api.parse_nuspec_dependencies(nuspec) == (("B", "[1.0.0, )"), ("C", ""))


def test_checksums_are_enforced() -> None:
    rel = api.Release(
        "rubygems", "rack", "1", "https://rubygems.org/gems/rack-1.gem", "rack-1.gem", sha256=SHA
    )
    api.verify(rel, b"gem bytes")
    with pytest.raises(BadInput, match="sha256"):
        api.verify(rel, b"tampered")

"""Path templating: run-specific parts become placeholders, the rest stays as it was."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osptrack.dataset.templating import Templater, name_variants, template_full, template_generic


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/usr/lib/python3/dist-packages/requests/api.py", "<SITE>/requests/api.py"),
        ("/root/.local/lib/python3.11/site-packages/six.py", "<SITE>/six.py"),
        ("/tmp/x/venv/lib/python3.12/site-packages/a/b.py", "<SITE>/a/b.py"),
        ("/app/node_modules/left-pad/index.js", "<SITE>/left-pad/index.js"),
        ("/root/.ssh/id_rsa", "<HOME>/.ssh/id_rsa"),
        ("/home/alice/.aws/credentials", "<HOME>/.aws/credentials"),
        ("/rootfs/file", "/rootfs/file"),
        ("/tmp/tmpk2j3h4x9/setup.py", "<TMP>/tmp<RAND>/setup.py"),
        ("/tmp/pip-install-ab12cd34/pkg", "<TMP>/pip-install-<RAND>/pkg"),
        ("/proc/4121/environ", "/proc/<N>/environ"),
        ("/var/tmp/123e4567-e89b-12d3-a456-426614174000.lock", "<TMP>/<RAND>.lock"),
        ("/usr/lib/python3.11/os.py", "/usr/lib/python3.11/os.py"),
        ("/etc/passwd", "/etc/passwd"),
        ("/root/site/requests/api.py", "<SITE>/requests/api.py"),
        ("/root/sites.txt", "<HOME>/sites.txt"),
        (
            "/root/.npm/_cacache/content-v2/sha512/ca/d3/8df6e2e2c9aa12345678",
            "<HOME>/.npm/_cacache/content-v2/sha512/<RAND>",
        ),
        (
            "/root/.npm/_cacache/index-v5/70/27/dbbbb4f284b3dbbbb4f284b3",
            "<HOME>/.npm/_cacache/index-v5/<RAND>",
        ),
        ("/root/.npm/_cacache/tmp/DO0m3W/index.js", "<HOME>/.npm/_cacache/tmp/<RAND>/index.js"),
        ("/root/.npm/_logs/2026-11-26T15_16_08_683Z-debug-0.log", "<HOME>/.npm/_logs/<RAND>-debug-0.log"),
    ],
)
def test_generic_templates(path: str, expected: str) -> None:
    assert template_generic(path) == expected


def test_package_name_and_version_in_any_spelling() -> None:
    t = Templater("pypi", "Python-Dateutil", "2.9.0")
    assert t.path("/usr/lib/python3/dist-packages/python_dateutil-2.9.0.dist-info/RECORD") == (
        "<SITE>/<PKG>-<VER>.dist-info/RECORD"
    )
    assert t.path("/usr/lib/python3/dist-packages/python_dateutil/x.py") == "<SITE>/<PKG>/x.py"
    # A longer name that merely contains the package's name is someone else's.
    assert t.path("/usr/lib/python3/dist-packages/python_dateutils_extra/x.py") == (
        "<SITE>/python_dateutils_extra/x.py"
    )


def test_npm_scope_and_short_names() -> None:
    t = Templater("npm", "@scope/widget", "1.0.0")
    # The whole scoped name is the package; the bare name alone (a bin link) is too.
    assert t.path("/app/node_modules/@scope/widget/package.json") == "<SITE>/<PKG>/package.json"
    assert t.path("/app/node_modules/.bin/widget") == "<SITE>/.bin/<PKG>"
    # Names shorter than 3 characters would rewrite ordinary path segments, so they stay literal.
    assert name_variants("pypi", "os") == ()
    assert Templater("pypi", "os", "1").path("/usr/lib/python3.11/os.py") == "/usr/lib/python3.11/os.py"


def test_argv_templates_paths_and_package() -> None:
    t = Templater("pypi", "evil", "1.0")
    line = t.argv(["/usr/bin/python3", "-m", "pip", "install", "/tmp/tmpab12cd34ef/evil-1.0.tar.gz"])
    assert line == "/usr/bin/python3 -m pip install <TMP>/tmp<RAND>/<PKG>-<VER>.tar.gz"


def test_argv_templates_paths_embedded_in_inline_code() -> None:
    t = Templater("pypi", "evil", "1.0")
    code = "exec(compile(x % ('/tmp/pip-req-build-9dqwfs0t/setup.py',), 'c', 'exec'))"
    assert t.argv(
        ["/usr/bin/python3", "-c", code, "egg_info", "--egg-base", "/tmp/pip-pip-egg-info-q5g3k14t"]
    ) == (
        "/usr/bin/python3 -c exec(compile(x % ('<TMP>/pip-req-build-<RAND>/setup.py',), 'c', 'exec')) "
        "egg_info --egg-base <TMP>/pip-pip-egg-info-<RAND>"
    )


SEGMENTS = [
    "root", "home", "alice", "tmp", "var", "dev", "shm", "usr", "lib", "python3.11", "site-packages",
    "dist-packages", "node_modules", "site", "vendor", "gems", "3.1.0", ".cargo", "registry", "src",
    "index-abc", "_cacache", "content-v2", "sha512", "index-v5", "ca", "d3", "wheels", "17", "7e",
    "0123456789abcdef0123", "tmpk2j3h4x9", "pip-install-ab12cd34", "gtl8wogm", "RECORDk7ees9kr.tmp",
    "x.pyc.140449501595056", "4121", "environ", "123e4567-e89b-12d3-a456-426614174000", "_logs",
    "2026-11-26T15_16_08_683Z-debug-0.log", "requests", "__init__.py", "", ".ssh", "id_rsa", "proc",
]  # fmt: skip


@given(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=8))
@settings(max_examples=1500, deadline=None)
def test_cached_two_level_templating_equals_whole_path_rules(segments: list[str]) -> None:
    path = "/" + "/".join(segments)
    assert template_generic(path) == template_full(path)


NAME_PARTS = [
    "six",
    "Six",
    "python_dateutil",
    "python-dateutil",
    "-",
    "_",
    ".",
    "/",
    "1.16.0",
    "v",
    "x",
    "0",
    "b1",
]


@given(st.lists(st.sampled_from(NAME_PARTS), min_size=1, max_size=10), st.sampled_from(["1.16.0", ""]))
@settings(max_examples=1000, deadline=None)
def test_arrow_package_templating_equals_python(parts: list[str], version: str) -> None:
    text = "".join(parts)
    for name in ("six", "python-dateutil"):
        t = Templater("pypi", name, version)
        assert t.package_many([text]) == [t.package(text)]

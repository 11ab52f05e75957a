"""The HTML report in a real browser: Debian's chromium, headless, driven by Playwright.

Every request the page makes is routed here: the report's own file:// load is the only one allowed,
anything else fails the test (and is aborted, so nothing leaves even if the test is wrong).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_report import benign_run, malicious_run

from osptrack.report import render
from osptrack.report.index import write_index

CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="chromium is not installed (scripts/setup.sh installs it)"
)


@pytest.fixture()
def browser():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-first-run"])
        try:
            yield b
        finally:
            b.close()


def _open(browser, path: Path):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    requests: list[str] = []
    url = path.resolve().as_uri()

    def route(r):  # type: ignore[no-untyped-def]
        requests.append(r.request.url)
        if r.request.url.split("#")[0] == url:
            r.continue_()
        else:
            r.abort()

    page.route("**/*", route)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    page.wait_for_load_state("load")
    return page, requests, errors, url


def test_report_renders_findings_and_tree_without_requests(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = malicious_run(tmp_path / "run")
    report = tmp_path / "report.html"
    report.write_bytes(render(folder, "html"))
    page, requests, errors, url = _open(browser, report)
    assert [r for r in requests if r.split("#")[0] != url] == []
    assert errors == []
    header = page.locator("header.verdict")
    assert header.is_visible() and "malicious" in header.inner_text().lower()
    cards = page.locator("#findings .finding")
    assert cards.count() >= 4 and cards.first.is_visible()
    assert "critical" in cards.first.inner_text().lower() or "high" in cards.first.inner_text().lower()
    # the findings come before the process tree on the page
    assert cards.first.bounding_box()["y"] < page.locator("#tree").bounding_box()["y"]
    tree = page.locator("#tree li.proc")
    assert tree.count() >= 2
    tree.first.scroll_into_view_if_needed()
    assert tree.first.is_visible()
    # a finding's evidence link lands on its timeline row
    link = page.locator("#findings .finding a[href^='#event-']").first
    target = link.get_attribute("href")
    link.click()
    assert page.evaluate("location.hash") == target
    assert page.locator(target).is_visible()
    # the script works: hiding the toolchain hides pip's process
    page.locator("#hide-toolchain").check()
    assert page.evaluate("document.body.classList.contains('hide-toolchain')")
    page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
    assert [r for r in requests if r.split("#")[0] != url] == []


def test_batch_index_renders_and_links(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    benign_run(tmp_path / "pypi" / "a" / "1.0")
    malicious_run(tmp_path / "pypi" / "b" / "1.0")
    index = write_index(tmp_path)
    page, requests, errors, url = _open(browser, index)
    assert [r for r in requests if r.split("#")[0] != url] == [] and errors == []
    rows = page.locator("tbody tr")
    assert rows.count() == 2 and rows.first.is_visible()
    assert "malicious" in rows.first.inner_text().lower()
    assert page.locator("a[href='reports/pypi/b/1.0.html']").is_visible()

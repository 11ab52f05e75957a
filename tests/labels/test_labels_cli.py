"""`osptrack labels build | lookup | stats` through click's runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from labels_fixtures import GHSA_TEMPLATE, all_versions_range, make_record

from osptrack.cli.labels import app
from osptrack.errors import BadInput

runner = CliRunner()


@pytest.fixture
def labels_file(osv_tree, tmp_path: Path) -> Path:
    root = osv_tree(
        [
            ("malicious", make_record("MAL-1", "npm", "evil", versions=["1.0.0"], details=GHSA_TEMPLATE)),
            (
                "malicious",
                make_record(
                    "MAL-2", "PyPI", "stealer", ranges=all_versions_range(), details="An infostealer with C2."
                ),
            ),
            ("withdrawn", make_record("MAL-3", "npm", "cleared", ranges=all_versions_range())),
        ]
    )
    (root / "osv" / "malicious" / "broken.json").write_text("{")
    out = tmp_path / "out" / "labels.parquet"
    result = runner.invoke(app, ["build", "--osv", str(root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 records (1 withdrawn, 1 skipped" in result.output.replace("\n", " ")
    assert "broken.json: malformed JSON" in result.output.replace("\n", "")  # warning on stderr, mixed here
    return out


def test_lookup_found_exits_0_and_shows_ids_labels_source(labels_file: Path) -> None:
    result = runner.invoke(
        app, ["lookup", "pypi", "Stealer", "3.1", "--labels", str(labels_file)], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert "known-malicious" in result.output and "MAL-2" in result.output
    assert "infostealer  (kw:infostealer)" in result.output and "source=osv" in result.output


def test_lookup_not_found_exits_1(labels_file: Path) -> None:
    result = runner.invoke(app, ["lookup", "npm", "evil", "2.0.0", "--labels", str(labels_file)])
    assert result.exit_code == 1
    assert "not known-malicious" in result.output


def test_lookup_withdrawn_is_shown_but_exits_1(labels_file: Path) -> None:
    result = runner.invoke(
        app, ["lookup", "npm", "cleared", "--labels", str(labels_file)], terminal_width=200
    )
    assert result.exit_code == 1
    assert "MAL-3" in result.output and "withdrawn: not counted" in result.output


def test_lookup_without_version_matches_any(labels_file: Path) -> None:
    result = runner.invoke(app, ["lookup", "npm", "evil", "--labels", str(labels_file)], terminal_width=200)
    assert result.exit_code == 0 and "root shell" in result.output


def test_stats_tables(labels_file: Path) -> None:
    result = runner.invoke(app, ["stats", "--labels", str(labels_file)], terminal_width=200)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "npm" in out and "pypi" in out and "full_compromise" in out and "infostealer" in out
    # pypi: one active record, all versions, with a behaviour label -> 100.0% twice on its row.
    pypi_row = next(line for line in out.splitlines() if "pypi" in line)
    assert pypi_row.count("100.0%") == 2


def test_bad_input_raises_for_main_to_turn_into_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["lookup", "npm", "x", "--labels", str(tmp_path / "none.parquet")])
    assert isinstance(result.exception, BadInput)
    result = runner.invoke(
        app, ["build", "--osv", str(tmp_path / "none.zip"), "--out", str(tmp_path / "l.parquet")]
    )
    assert isinstance(result.exception, BadInput) and "none.zip" in str(result.exception)
    assert not (tmp_path / "l.parquet").exists()


def test_exit_codes_through_the_real_entry_point(labels_file: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        code = "import sys; sys.argv[0] = 'osptrack'; from osptrack.cli import main; main()"
        return subprocess.run([sys.executable, "-c", code, "labels", *args], capture_output=True, text=True)

    assert run("lookup", "npm", "evil", "1.0.0", "--labels", str(labels_file)).returncode == 0
    assert run("lookup", "npm", "evil", "9.9.9", "--labels", str(labels_file)).returncode == 1
    bad = run("build", "--osv", str(tmp_path / "gone.zip"), "--out", str(tmp_path / "x.parquet"))
    assert bad.returncode == 2 and "gone.zip" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1

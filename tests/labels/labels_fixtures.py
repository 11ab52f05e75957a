"""Small hand-written OSV records for the label tests (no real malware, only metadata).

A uniquely named module (not conftest) so `import` cannot pick up another folder's helpers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SHARED_ZIP = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "malicious-packages-main.zip"

GHSA_TEMPLATE = (
    "Any computer that has this package installed or running should be considered fully compromised. "
    "All secrets and keys stored on that computer should be rotated immediately from a different computer. "
    "The package should be removed, but as full control of the computer may have been given to an outside "
    "entity, there is no guarantee that removing the package will remove all malicious software resulting "
    "from installing it."
)
SEPARATOR = "\n---\n_-= Per source details. Do not edit below this line.=-_\n"


def make_record(
    rec_id: str,
    ecosystem: str,
    name: str,
    versions: list[str] | None = None,
    ranges: list[dict[str, Any]] | None = None,
    details: str = "",
    summary: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    affected: dict[str, Any] = {"package": {"ecosystem": ecosystem, "name": name}}
    if versions is not None:
        affected["versions"] = versions
    if ranges is not None:
        affected["ranges"] = ranges
    record = {
        "id": rec_id,
        "summary": summary if summary is not None else f"Malicious code in {name} ({ecosystem})",
        "details": details,
        "published": "2024-01-01T00:00:00Z",
        "modified": "2024-01-02T00:00:00Z",
        "affected": [affected],
    }
    record.update(extra)
    return record


def all_versions_range() -> list[dict[str, Any]]:
    return [{"type": "SEMVER", "events": [{"introduced": "0"}]}]


def write_tree(root: Path, records: list[tuple[str, dict[str, Any]]]) -> Path:
    """Lay records out like the repository: <root>/osv/<malicious|withdrawn>/<eco>/<name>/<id>.json."""
    for kind, record in records:
        pkg = record["affected"][0]["package"]
        folder = root / "osv" / kind / pkg["ecosystem"].lower() / pkg["name"].replace("/", "_")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{record['id']}.json").write_text(json.dumps(record))
    return root

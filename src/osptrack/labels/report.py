"""What a label build read, skipped and why: printed by the CLI so nothing fails silently."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_MESSAGES = 50  # keep the first few reasons; the counts stay exact


@dataclass
class BuildReport:
    documents: int = 0
    records: int = 0
    rows: int = 0
    withdrawn: int = 0
    skipped: int = 0
    ignored_files: int = 0
    unversioned: int = 0
    messages: list[str] = field(default_factory=list)

    def skip(self, where: str, why: str) -> None:
        self.skipped += 1
        if len(self.messages) < MAX_MESSAGES:
            self.messages.append(f"{where}: {why}")

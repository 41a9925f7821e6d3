"""Whole-file refusal and the size limits an upload is held to."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: How many offending lines a message lists before it says "and N more".
LIST_AT_MOST = 20


class FileRejected(Exception):
    """The input as a whole cannot be read; `problems` says every reason found, one sentence each."""

    def __init__(self, problems: str | Iterable[str]) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        if not self.problems:
            self.problems = ["the file could not be read"]
        super().__init__("; ".join(self.problems))

    def __reduce__(self) -> tuple[type[FileRejected], tuple[list[str]]]:
        return (FileRejected, (self.problems,))  # survive pickling (e.g. through a task queue) intact


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 100 * 1024 * 1024
    max_rows: int = 2_000_000
    max_columns: int = 200


def listing(items: list[str], total: int | None = None) -> str:
    """Join the first LIST_AT_MOST items, then say how many more there were."""
    total = len(items) if total is None else total
    shown = ", ".join(items[:LIST_AT_MOST])
    more = total - min(len(items), LIST_AT_MOST)
    return f"{shown} and {more} more" if more > 0 else shown


def shorten(text: str, limit: int = 80) -> str:
    """Cut very long values for messages, saying that they were cut."""
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"

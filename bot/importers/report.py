"""What an import did: rows loaded, rows rejected and why."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RowError:
    """One problem of one row; ``column`` is None when it concerns the whole row."""

    line: int
    column: str | None
    reason: str

    def __str__(self) -> str:
        if self.column is None:
            return f"line {self.line}: {self.reason}"
        return f"line {self.line}, column {self.column}: {self.reason}"


@dataclass
class ImportReport:
    """Counts of an import plus every rejected row's problems.

    For payments ``created`` counts payments applied now and ``unchanged`` those
    applied by an earlier import (same account and reference).
    """

    kind: str = "portfolio"  # "portfolio" or "payments"
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def loaded(self) -> int:
        return self.created + self.updated + self.unchanged

    @property
    def rejected_lines(self) -> list[int]:
        """The lines of the rejected rows, in file order, each once."""
        return sorted({error.line for error in self.errors})

    @property
    def rejected(self) -> int:
        return len(self.rejected_lines)

    def reject(self, errors: list[RowError]) -> None:
        self.errors.extend(errors)

    def summary(self) -> str:
        """``Loaded 17 rows (12 new, 5 updated); rejected 3:`` (the colon only when rejected)."""
        if self.kind == "payments":
            detail = f"{self.created:,} applied, {self.unchanged:,} already applied"
        else:
            detail = f"{self.created:,} new, {self.updated:,} updated"
        rows = "row" if self.loaded == 1 else "rows"
        text = f"Loaded {self.loaded:,} {rows} ({detail})"
        if self.rejected:
            return f"{text}; rejected {self.rejected:,}:"
        return f"{text}."

    def error_lines(self) -> list[str]:
        """One line per rejected row, naming each bad column and why."""
        by_line: dict[int, list[RowError]] = {}
        for error in self.errors:
            by_line.setdefault(error.line, []).append(error)
        lines = []
        for line in sorted(by_line):
            first, *rest = by_line[line]
            parts = [str(first)]
            parts.extend(
                f"column {error.column}: {error.reason}" if error.column else error.reason
                for error in rest
            )
            lines.append("; ".join(parts))
        return lines

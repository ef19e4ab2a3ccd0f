"""Query results as tables a person reads: Markdown for the Dagster UI's metadata, aligned
text for the terminal. Small on purpose: a preview is ten rows, a summary one row a cohort
(pandas, which did this before, cost a snapshot 0.4 s of imports for it)."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class Table:
    columns: Sequence[str]
    rows: Sequence[tuple]

    def markdown(self) -> str:
        """A GitHub-flavoured Markdown table; an empty cell where the value is NULL."""
        lines = [_markdown_row(self.columns), "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += [_markdown_row([_cell(value, "") for value in row]) for row in self.rows]
        return "\n".join(lines)

    def text(self) -> str:
        """Columns aligned for a terminal: numbers to the right, text to the left."""
        cells = [[_cell(value, "NULL") for value in row] for row in self.rows]
        numeric = [
            all(isinstance(row[i], int | float) or row[i] is None for row in self.rows)
            for i in range(len(self.columns))
        ]
        widths = [
            max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(self.columns)
        ]
        lines = []
        for row in [list(self.columns), *cells]:
            lines.append(
                "  ".join(
                    value.rjust(width) if right else value.ljust(width)
                    for value, width, right in zip(row, widths, numeric, strict=True)
                ).rstrip()
            )
        return "\n".join(lines)


def _cell(value, null: str) -> str:
    if value is None:
        return null
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return format(round(value, 4), ".15g")  # 1234567.5 as it is, 0.0123456 as 0.0123
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return str(value)


def _markdown_row(values: Sequence[str]) -> str:
    return "| " + " | ".join(str(v).replace("|", "\\|").replace("\n", " ") for v in values) + " |"

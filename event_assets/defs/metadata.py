"""Metadata shapes the assets share."""

from collections.abc import Iterable, Sequence

import dagster as dg


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> dg.MetadataValue:
    """A Markdown table, as the UI renders it in a materialization's metadata."""
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]
    return dg.MetadataValue.md("\n".join(lines))

"""How every bench and eval reports: a readable table, then one JSON object as the last line,
and the same object written to ``reports/<name>.json``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def report(name: str, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], summary: Mapping[str, Any],
           reports_dir: Path = Path("reports")) -> Path:
    """Print ``rows`` as a table and ``summary`` as the last line; write the summary to a file."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column != columns[0] else "left")
    for row in rows:
        table.add_row(*(f"{v:,.2f}" if isinstance(v, float) else str(v) for v in row))
    Console(stderr=False).print(table)
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"{name}.json"
    text = json.dumps(dict(summary), sort_keys=False)
    path.write_text(text + "\n")
    print(text, flush=True)
    return path

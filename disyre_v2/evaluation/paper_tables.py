"""Published figures beside ours: a table of rows × metric columns, each cell our figure (the mean over
seeds), the paper's and the difference, written as Markdown and JSON.

Used by benchmarks/reproduce_paper.py for the DISYRE v2 paper's Tables 1 and 2, but general: any
published table with one number per (row, column). A row we could not produce carries a status
instead of figures (``"not built"``, ``"not run"``), so a table with missing methods still renders.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from disyre_v2.imageio.atomic import atomic_path

OK = "ok"


@dataclass
class TableRow:
    """One row: the paper's figure per column, our per-seed figures per column (``None`` where a seed
    has no value), or a status saying why there are none, with a note."""

    name: str
    paper: Mapping[str, float | None]
    ours: Mapping[str, Sequence[float | None]] = field(default_factory=dict)
    status: str = OK
    note: str = ""


def _mean(values: Sequence[float | None]) -> float | None:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(finite) / len(finite) if finite else None


def _std(values: Sequence[float | None]) -> float | None:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if len(finite) < 2:
        return None
    mean = sum(finite) / len(finite)
    return math.sqrt(sum((v - mean) ** 2 for v in finite) / len(finite))


def compare(rows: Sequence[TableRow], columns: Sequence[tuple[str, str]]) -> list[dict]:
    """Each row as a dict: ``{"method", "status", "note", "cells": {column: {"paper", "ours",
    "difference", "std", "seeds", "per_seed"}}}``; ``ours`` is the mean over the seeds with a value,
    ``difference`` = ours − paper (None where either is missing)."""
    compared = []
    for row in rows:
        cells = {}
        for key, _ in columns:
            paper = row.paper.get(key)
            per_seed = [None if v is None else float(v) for v in row.ours.get(key, [])] if row.status == OK else []
            ours = _mean(per_seed)
            cells[key] = {"paper": paper, "ours": ours,
                          "difference": None if ours is None or paper is None else ours - paper,
                          "std": _std(per_seed), "seeds": sum(v is not None for v in per_seed), "per_seed": per_seed}
        compared.append({"method": row.name, "status": row.status, "note": row.note, "cells": cells})
    return compared


def _figure(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def cell_text(cell: dict, status: str) -> str:
    """``ours (paper, ours − paper)``, e.g. ``0.312 (0.33, -0.018)``; a row without figures shows its
    status and the paper's figure, e.g. ``not built (0.11)``."""
    paper = _figure(cell["paper"], 2)
    if status != OK:
        return f"{status} ({paper})"
    return f"{_figure(cell['ours'], 3)} ({paper}, {_signed(cell['difference'])})"


def markdown(compared: Sequence[dict], columns: Sequence[tuple[str, str]]) -> str:
    """The table in Markdown; every cell as :func:`cell_text`."""
    lines = ["| method | " + " | ".join(label for _, label in columns) + " |",
             "| --- |" + " ---: |" * len(columns)]
    for row in compared:
        name = row["method"].replace("|", "\\|")
        lines.append(f"| {name} | " + " | ".join(cell_text(row["cells"][key], row["status"]) for key, _ in columns)
                     + " |")
    return "\n".join(lines) + "\n"


def write_table(compared: Sequence[dict], columns: Sequence[tuple[str, str]], markdown_path: Path | str,
                json_path: Path | str, *, title: str, notes: Sequence[str] = (), metadata: Mapping | None = None) -> None:
    """Write the table as Markdown (title, the table, then the notes as a list) and as JSON
    (``{"title", "columns", "rows", "notes", **metadata}``), each atomically (temporary name, then rename)."""
    text = f"# {title}\n\nEach cell: ours (the paper's, ours − paper); ours is the mean over seeds.\n\n"
    text += markdown(compared, columns)
    if notes:
        text += "\n" + "".join(f"- {note}\n" for note in notes)
    with atomic_path(markdown_path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    data = {"title": title, "columns": [{"key": k, "label": label} for k, label in columns], "rows": list(compared),
            "notes": list(notes), **(metadata or {})}
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

"""What every benchmark report shares: writing it (markdown and JSON), markdown tables, percentiles."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any


def write_report(report: Any, out_dir: str | Path, stem: str = "image-bench") -> tuple[Path, Path]:
    """Write a benchmark report (a dataclass with ``to_markdown``) as STEM.md and STEM.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / f"{stem}.md", out / f"{stem}.json"
    md.write_text(report.to_markdown() + "\n")
    js.write_text(json.dumps(asdict(report), indent=2) + "\n")
    return md, js


def table(header: Sequence[str], rows: Iterable[Sequence[Any]] = ()) -> list[str]:
    """A markdown table as lines: the header row, its rule, then one line per row (cells as given)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank below (no interpolation)."""
    values = sorted(values)
    return values[int(q * (len(values) - 1))]

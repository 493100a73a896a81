"""A comparison's tables on disk: ``results.json``, ``results.csv`` and ``results.md`` (or another stem,
e.g. ``completion.*``), written atomically."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from ppl_models.atomic import atomic_write
from ppl_models.paths import inside


def write_result_files(out: str | os.PathLike, results: dict[str, Any], rows: list[dict[str, Any]],
                       markdown: str, stem: str = "results") -> list[Path]:
    """Write ``STEM.json`` (``results``), ``STEM.csv`` (``rows``; columns in the order they first
    appear) and ``STEM.md`` (``markdown``) into ``out``, each atomically; a path that would lead out
    of ``out`` (a link) is refused. Returns the three paths.

    Args:
        out: the output directory (created if missing).
        results: everything, as JSON.
        rows: the table's rows.
        markdown: the table as Markdown.
        stem: the file names' stem.
    """
    Path(out).mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
    writer.writeheader()
    writer.writerows(rows)
    files = {f"{stem}.json": json.dumps(results, indent=2).encode(), f"{stem}.csv": text.getvalue().encode(),
             f"{stem}.md": markdown.encode()}
    paths = [inside(out, name) for name in files]
    for path, data in zip(paths, files.values()):
        atomic_write(path, lambda f, data=data: f.write(data))
    return paths

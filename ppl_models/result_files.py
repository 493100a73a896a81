"""A comparison's tables on disk: ``results.json``, ``results.csv`` and ``results.md``, written atomically."""

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
                       markdown: str) -> list[Path]:
    """Write ``results.json`` (``results``), ``results.csv`` (``rows``; columns in the order they first
    appear) and ``results.md`` (``markdown``) into ``out``, each atomically; a path that would lead out
    of ``out`` (a link) is refused. Returns the three paths.

    Args:
        out: the output directory (created if missing).
        results: everything, as JSON.
        rows: the table's rows.
        markdown: the table as Markdown.
    """
    Path(out).mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
    writer.writeheader()
    writer.writerows(rows)
    files = {"results.json": json.dumps(results, indent=2).encode(), "results.csv": text.getvalue().encode(),
             "results.md": markdown.encode()}
    paths = [inside(out, name) for name in files]
    for path, data in zip(paths, files.values()):
        atomic_write(path, lambda f, data=data: f.write(data))
    return paths

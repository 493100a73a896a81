"""metrics.csv: one row per epoch, appended as training goes."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

COLUMNS = ["epoch", "step", "train_loss", "valid_elbo", "epoch_time_s", "elapsed_s"]
IWAE_COLUMNS = [*COLUMNS, "valid_iwae"]  # --objective iwae runs add the IWAE-K validation bound, last


class MetricsLog:
    """Append-only CSV of per-epoch metrics. Values are nats per data point.

    Args:
        path: the CSV file.
        resume_epoch: when resuming after this epoch, rows of later epochs (written by a run that
            died before its checkpoint) are dropped; ``None`` starts a new file.
        columns: the header (default ``COLUMNS``); a resumed file's rows keep any other columns
            they have, and get empty cells for columns they lack.
    """

    def __init__(self, path: Path, resume_epoch: int | None = None, columns: list[str] | None = None):
        self.path = Path(path)
        rows = self.read(self.path) if resume_epoch is not None and self.path.exists() else []
        rows = [r for r in rows if int(r["epoch"]) <= (resume_epoch or 0)]
        self.columns = list(columns or COLUMNS)
        self.columns += [k for k in (rows[0] if rows else {}) if k is not None and k not in self.columns]
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, self.columns)
            writer.writeheader()
            writer.writerows(rows)

    def append(self, **row: Any) -> None:
        """Append one epoch's row; keys must be among the columns (missing ones are left empty)."""
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns).writerow(row)

    @staticmethod
    def read(path: Path) -> list[dict[str, str]]:
        """All rows of a metrics file."""
        with open(path, newline="") as f:
            return list(csv.DictReader(f))


class NoMetrics:
    """What a rank other than 0 of a distributed run gets instead of :class:`MetricsLog`: it writes nothing."""

    def append(self, **row: Any) -> None:
        """Drop the row (rank 0 writes metrics.csv)."""

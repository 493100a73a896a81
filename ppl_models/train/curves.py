"""RUN/figures/curves.png: train and validation ELBO against step and wall time, drawn from metrics.csv."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ppl_models.atomic import atomic_savefig
from ppl_models.train.metrics import MetricsLog

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not with the training loop
    from matplotlib.figure import Figure


def plot_curves(rows: list[dict[str, str]]) -> Figure:
    """Two panels, against step and against wall time: the train ELBO (``-train_loss``, the mean over
    the epoch's steps) and the validation ELBO (at the epoch's end), in nats per data point; an iwae
    run's validation IWAE-K bound (``valid_iwae``) beside them.

    Args:
        rows: rows of a metrics file, as :meth:`MetricsLog.read` gives them.
    """
    from matplotlib.figure import Figure

    def column(name: str) -> list[float]:
        return [float(r[name]) for r in rows]

    train, valid = [-x for x in column("train_loss")], column("valid_elbo")
    iwae = column("valid_iwae") if rows and all(r.get("valid_iwae") not in (None, "") for r in rows) else None
    fig = Figure(figsize=(11, 4), layout="tight")
    by_step, by_time = fig.subplots(1, 2, sharey=True)
    for ax, x, xlabel, title in ((by_step, column("step"), "optimizer step", "against step"),
                                 (by_time, column("elapsed_s"), "training wall time (s)", "against wall time")):
        ax.plot(x, train, marker="o", ms=3, label="train ELBO (−train loss, epoch mean)")
        ax.plot(x, valid, marker="o", ms=3, label="validation ELBO (epoch end)")
        if iwae is not None:
            ax.plot(x, iwae, marker="o", ms=3, label="validation IWAE-K bound (epoch end)")
        ax.set(xlabel=xlabel, title=title)
        ax.grid(alpha=0.3)
    by_step.set_ylabel("bound (nats per data point)" if iwae is not None else "ELBO (nats per data point)")
    by_step.legend(fontsize=8)
    return fig


def save_curves(metrics_path: str | Path, path: str | Path) -> Path | None:
    """Draw the curves of ``metrics_path`` into the PNG ``path``, atomically; its folder is created.

    Uses matplotlib's Agg canvas directly, so no global backend is set and no display is needed.

    Returns:
        ``path``, or ``None`` (nothing written) if the metrics file has no rows yet.

    Raises:
        OSError: the metrics file cannot be read or the figure cannot be written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    rows = MetricsLog.read(Path(metrics_path))
    if not rows:
        return None
    fig = plot_curves(rows)
    FigureCanvasAgg(fig)
    return atomic_savefig(fig, path, dpi=120)

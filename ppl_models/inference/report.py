"""Write a comparison's results: ``results.json``, ``results.csv``, ``results.md`` and a figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ppl_models.atomic import atomic_savefig
from ppl_models.paths import inside
from ppl_models.result_files import write_result_files

# (row key, column title, format) of the Markdown table
COLUMNS = [
    ("strategy", "strategy", "{}"),
    ("test_elbo", "test ELBO", "{:.2f}"),
    ("test_iwae_*", "test IWAE-{k}", "{:.2f}"),
    ("test_nll", "test NLL (K={nll_samples})", "{:.2f}"),
    ("test_khat_bad", "k-hat > 0.7", "{:.0%}"),
    ("test_khat_mean", "mean k-hat", "{:.2f}"),
    ("test_inference_gap", "inference gap", "{:.2f}"),
    ("test_approximation_gap", "approximation gap", "{:.2f}"),
    ("test_amortization_gap", "amortization gap", "{:.2f}"),
    ("valid_elbo", "valid ELBO", "{:.2f}"),
    ("s_per_epoch", "s/epoch", "{:.2f}"),
    ("train_s", "train s", "{:.1f}"),
    ("eval_s", "eval s", "{:.1f}"),
    ("parameters", "parameters", "{:,}"),
]


def _columns(rows: list[dict]) -> list[tuple[str, str, str]]:
    cols = []
    for key, title, fmt in COLUMNS:
        if key == "test_iwae_*":
            ks = [k.removeprefix("test_iwae_") for k in rows[0] if k.startswith("test_iwae_")]
            cols += [(f"test_iwae_{k}", title.format(k=k), fmt) for k in ks]
        elif key in rows[0]:  # the gap split is there only with --gaps
            cols.append((key, title.format(nll_samples=rows[0].get("nll_samples")), fmt))
    return cols


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown: the strategy table, then the estimator and NUTS checks if present."""
    rows, cfg = results["rows"], results["config"]
    cols = _columns(rows)
    lines = [
        f"# Inference strategies: {cfg['model']} on {cfg['data']}",
        "",
        f"{cfg['epochs']} epochs each, seed {cfg['seed']}, batch {cfg['batch_size']}, "
        f"{rows[0]['n_train']} training and {rows[0]['n_test']} test images. Bounds are in nats per image; "
        "each strategy is evaluated with its own guide, all bounds from the same draws.",
        "",
        "| " + " | ".join(t for _, t, _ in cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(f.format(r[k]) for k, _, f in cols) + " |" for r in rows]
    if results.get("estimators"):
        lines += ["", f"## log p(x) estimators at equal K (guide of `{results['diagnosed']}`)", "",
                  "| proposal | K | mean log p(x) | bias | spread (sd over repeats) | rmse | s |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {e['estimator']} | {e['num_samples']} | {e['mean']:.2f} | {e['bias']:+.2f} | {e['spread']:.3f} | "
                  f"{e['rmse']:.2f} | {e['seconds']:.2f} |" for e in results["estimators"]]
        ref = results["estimators"][0]
        lines += ["", f"Reference: guide importance sampling with K={ref['reference_samples']} "
                      f"({ref['reference']:.2f}), {ref['n']} test images, {ref['repeats']} repeats."]
    if results.get("nuts"):
        lines += ["", f"## Guide of `{results['diagnosed']}` against NUTS", "",
                  "| point | mean distance (NUTS sd) | sd ratio guide/NUTS | log p(x), NUTS proposal | log p(x), guide |",
                  "|---|---|---|---|---|"]
        lines += [f"| {c['index']} | {c['mean_distance']:.2f} | {c['std_ratio']:.2f} | {c['log_px_nuts']:.2f} | "
                  f"{c['log_px_guide']:.2f} |" for c in results["nuts"]]
    return "\n".join(lines) + "\n"


def save_figure(results: dict[str, Any], path: Path) -> Path:
    """Validation ELBO (each strategy's own guide) against epochs and wall time, one line per strategy (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for spec, curve in results["curves"].items():
        epochs = [p["epoch"] for p in curve]
        values = [p["valid_elbo"] for p in curve]
        by_epoch.plot(epochs, values, marker="o", ms=3, label=spec)
        by_time.plot([p["elapsed_s"] for p in curve], values, marker="o", ms=3, label=spec)
    by_epoch.set(xlabel="epoch", ylabel="validation ELBO, strategy's own guide (nats)", title="per epoch")
    by_time.set(xlabel="training wall time (s)", title="per second", xscale="log")
    by_epoch.legend(fontsize=8)
    for ax in (by_epoch, by_time):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        return atomic_savefig(fig, path, dpi=120)
    finally:
        plt.close(fig)


def write_results(results: dict[str, Any], out: str | Path) -> list[Path]:
    """Write ``results.json``, ``results.csv``, ``results.md`` and ``validation.png`` into ``out``."""
    figure = inside(out, "validation.png")  # a link out of ``out`` is refused before anything is written
    paths = write_result_files(out, results, results["rows"], markdown(results))
    return paths + [save_figure(results, figure)]

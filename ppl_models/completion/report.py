"""The completion table as Markdown: methods (and their ways) by masks, one table per metric."""

from __future__ import annotations

ANCHOR = ("Anchor: Pyro's CVAE tutorial reports a negative conditional log-likelihood on MNIST of 71.8, 51.0 and "
          "24.2 nats for 1, 2 and 3 visible quadrants, against 100.4, 61.9 and 25.4 for a plain deterministic "
          "network. Its CVAE figures are an ELBO-style bound through the recognition network, not an "
          "importance-sampled estimate, and its data differ from ours (grey-level MNIST there; here the data of "
          "the table, e.g. static binarized MNIST), so compare the ranking of the methods, not the numbers.")

METRICS = (  # (row field, heading, format)
    ("nll", "Conditional NLL, -log p(x_hidden | x_observed), nats per image (lower is better)", "{:.2f}"),
    ("accuracy", "Pixel accuracy of the most likely completion, on the hidden pixels", "{:.3f}"),
    ("class_kept", "Class kept: share of completions the classifier labels as it labels the original", "{:.3f}"),
    ("log_p_observed", "log p(x_observed), nats per image: the latent rows' IS estimate, the pixels rows' bound "
                       "L(phi) (higher is tighter)", "{:.2f}"),
    ("ms_per_image", "Wall time per image, ms", "{:.1f}"),
)
CAVEAT = ("Reading the latent rows: log p(x_hidden | x_observed) = log p(x) - log p(x_observed), and each "
          "log p(x_observed) is an importance-sampled estimate that is low in expectation, more so for a worse "
          "proposal; a worse proposal therefore *lowers* the conditional NLL. Compare the ways of inferring z "
          "by log p(x_observed) (higher is better), and the NLL across methods where the proposals are good "
          "(effective sample sizes in completion.json).")


def _key(row: dict) -> tuple[str, str, str]:
    return row["method"], row["variant"], row["model"]


def _cell(value, fmt: str) -> str:
    return fmt.format(value) if isinstance(value, (int, float)) else "n/a"


def metric_table(rows: list[dict], masks: list[str], field: str, fmt: str) -> list[str]:
    """Markdown lines of one metric: a row per (method, way, model) that applied somewhere, a column per mask."""
    keys = list(dict.fromkeys(_key(r) for r in rows if r["reason"] is None))
    cells = {(_key(r), r["mask"]): r[field] for r in rows}
    lines = ["| method | way | model | " + " | ".join(masks) + " |", "|---|---|---|" + "---:|" * len(masks)]
    for key in keys:
        values = [_cell(cells.get((key, mask), "not applicable"), fmt) for mask in masks]
        lines.append(f"| {key[0]} | {key[1] or '-'} | {key[2]} | " + " | ".join(values) + " |")
    return lines


def markdown(results: dict) -> str:
    """The whole report: what was completed, one table per metric, how each NLL was computed, what did
    not apply and why, and the anchor from Pyro's CVAE tutorial."""
    rows, masks = results["rows"], results["masks"]
    lines = [f"# Image completion: {results['data']} {results['split']}, {results['n']} images",
             "", f"Runs: {', '.join(results['runs'])}. Masks name what is hidden. Settings: "
             + ", ".join(f"{k}={v}" for k, v in results["settings"].items() if k != "progress") + "."]
    classifier = results.get("classifier")
    if isinstance(classifier, dict):
        lines.append(f"Classifier: trained on {classifier['source']}, test accuracy {classifier['accuracy']:.3f} "
                     f"(binarized {classifier['accuracy_binarized']:.3f}).")
    elif classifier:
        lines.append(f"Classifier: {classifier}.")
    for field, heading, fmt in METRICS:
        lines += ["", f"## {heading}", "", *metric_table(rows, masks, field, fmt)]
    lines += ["", "## How each NLL was computed", ""]
    for (method, variant), how in dict.fromkeys(((r["method"], r["variant"]), r["nll_by"]) for r in rows
                                                if r["reason"] is None):
        lines.append(f"- {method}{' · ' + variant if variant else ''}: {how}")
    skipped = [r for r in rows if r["reason"] is not None]
    if skipped:
        lines += ["", "## Not applicable", ""]
        lines += [f"- {r['method']} on {r['mask']}: {r['reason']}" for r in skipped]
    lines += ["", CAVEAT, "", ANCHOR, ""]
    return "\n".join(lines)

"""Choose the quickstart's settings: which VAE on digits draws the most recognisable digits in about a minute?

    python benchmarks/select_quickstart.py --out benchmarks/out/quickstart

"Recognisable" is measured, not guessed: a logistic-regression digit classifier trained on the
digits training split (its accuracy on the validation split is printed) labels 64 decoder means
drawn from each candidate, and a sample counts when the classifier gives its top class at least
0.8. Candidates differ in latent size, likelihood scale and epochs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

import ppl_models as ppl
from ppl_models.data import load_dataset


def main(argv: list[str] | None = None) -> list[dict]:
    """Train every candidate, score its samples, print a table and return the rows."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--latent-dims", type=int, nargs="+", default=[2, 4, 8], help="latent sizes tried")
    ap.add_argument("--obs-scales", type=float, nargs="+", default=[0.1, 0.2, 0.3], help="Gaussian likelihood scales tried")
    ap.add_argument("--epochs", type=int, default=200, help="training epochs of every candidate")
    ap.add_argument("--threshold", type=float, default=0.8, help="classifier confidence that counts as recognisable")
    ap.add_argument("--out", default="benchmarks/out/quickstart", help="directory for the candidates' runs")
    args = ap.parse_args(argv)
    data = load_dataset("digits")
    clf = LogisticRegression(max_iter=2000).fit(data.train.x.flatten(1).numpy(), data.train.y.numpy())
    print(f"classifier accuracy on the validation split: {clf.score(data.valid.x.flatten(1).numpy(), data.valid.y.numpy()):.3f}")
    rows = []
    for latent, scale in itertools.product(args.latent_dims, args.obs_scales):
        t0 = time.perf_counter()
        run = ppl.train("vae", data="digits", epochs=args.epochs, latent_dim=latent, obs_scale=scale,
                        out=Path(args.out) / f"z{latent}-s{scale}", progress=False)
        seconds = time.perf_counter() - t0
        means = run.sample(64, mean=True, seed=0).flatten(1).clamp(0, 1).numpy()
        confidence = clf.predict_proba(means).max(1)
        rows.append({"latent_dim": latent, "obs_scale": scale, "epochs": args.epochs, "train_s": round(seconds, 1),
                     "recognisable": int((confidence >= args.threshold).sum()), "mean_confidence": float(confidence.mean()),
                     "classes": len(set(clf.predict(means)[confidence >= args.threshold].tolist()))})
        print(json.dumps(rows[-1]))
    return rows


if __name__ == "__main__":
    main()

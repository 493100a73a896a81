"""A hand-written PyTorch training script for the VAE: the reference for whole-process cost.

It does what a careful PyTorch user's script does (as PyTorch's own VAE example does): load the
data with the same loader, train with Adam for N epochs at batch 100, and compute the validation
ELBO after each epoch. Usage:

    python benchmarks/handwritten_train.py --data binarized_mnist --epochs 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from handwritten import HandWrittenVAE, step  # noqa: E402

from ppl_models.data import load_dataset  # noqa: E402


def main() -> None:
    """Train and print the validation ELBO per epoch."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="binarized_mnist")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    data = load_dataset(args.data)
    train_x, valid_x = data.train.x, data.valid.x
    model = HandWrittenVAE(data_dim=train_x[0].numel())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = train_x.shape[0]
    for epoch in range(1, args.epochs + 1):
        perm = torch.randperm(n)
        total = torch.zeros(())
        for i in range(0, n, args.batch_size):
            total += step(model, optimizer, train_x[perm[i : i + args.batch_size]])
        with torch.no_grad():
            valid = sum(model.loss(valid_x[i : i + 1000]) for i in range(0, valid_x.shape[0], 1000))
        print(f"epoch {epoch}: train loss {total.item() / n:.2f}  valid ELBO {-valid.item() / valid_x.shape[0]:.2f}")


if __name__ == "__main__":
    main()

"""``ppl train MODEL --data NAME --out RUN``: train a model with SVI into a run directory."""

from __future__ import annotations

import argparse

from ppl_models.cli.common import (add_data_dir, add_device, add_guide, add_model_settings, add_seed, add_user_data,
                                   guide_fields, parse_settings)
from ppl_models.plan.partition import COMPILE_MODES, PARTITIONERS

# Flags that fill TrainConfig fields; None means "not given" (resume then keeps the saved value).
TRAIN_FLAGS = ["data", "valid_data", "test_data", "labelled", "binarize", "objective", "particles", "grad_estimator", "strategy", "local_steps", "local_lr",
               "local_tol", "epochs", "batch_size", "lr", "seed", "device", "log_every", "checkpoint_every",
               "keep_checkpoints", "grad_clip", "on_nan", "nan_retries", "nan_lr_factor", "tensorboard"]
TRAIN_FLAGS += ["d_steps", "generator_loss"]  # --strategy adversarial (a GAN)
TRAIN_FLAGS += ["compile", "plan_check_every", "compile_mode", "plan_partitioner"]  # ppl_models.plan
TRAIN_FLAGS += ["precision", "flush_denormal"]  # ppl_models.train.precision
TRAIN_FLAGS += ["lr_schedule", "lr_warmup", "lr_gamma", "kl_warmup", "early_stop"]  # ppl_models.train.schedules, .best
# Flags that fill the model's config dataclass.
MODEL_FLAGS = ["latent_dim", "hidden", "activation", "likelihood", "obs_scale"]


def add_parser(subparsers) -> None:
    """Register the ``train`` subcommand."""
    p = subparsers.add_parser("train", help="train a model with SVI", description=__doc__)
    p.add_argument("model", nargs="?", default=None,
                   help="registered model name (see `ppl models`) or path/to/my_model.py:NAME (a Python file, "
                        "executed to register NAME); may be left out when --config names it")
    p.add_argument("--config", default=None,
                   help="a .toml or .json file of settings (any flag or model field), or a run's config.json to "
                        "repeat that run; flags given here override it")
    p.add_argument("--data", default=None, help="dataset name (default: digits) or a .npy/.npz/.pt file")
    add_user_data(p)
    p.add_argument("--labelled", type=int, default=None,
                   help="semi-supervised models: keep only N training labels, spread over the classes")
    add_data_dir(p)
    p.add_argument("--out", required=True, help="run directory to create (or continue with --resume)")
    p.add_argument("--objective", default=None, help="elbo (default), elbo-analytic or iwae")
    p.add_argument("--particles", type=int, default=None, help="Monte Carlo samples per data point, K (default 1)")
    p.add_argument("--grad-estimator", default=None, help="iwae gradient: standard (default), stl or dreg")
    p.add_argument("--strategy", default=None, help="amortized (default), semi-amortized or per-datapoint")
    p.add_argument("--local-steps", type=int, default=None,
                   help="semi-amortized: refinement steps (default 10); per-datapoint: step cap (default 200)")
    p.add_argument("--local-lr", type=float, default=None, help="step size of the per-data-point updates")
    p.add_argument("--local-tol", type=float, default=None, help="per-datapoint convergence tolerance (default 1e-3)")
    p.add_argument("--d-steps", type=int, default=None, metavar="K",
                   help="GAN: discriminator steps per generator step (default 1; Goodfellow et al. 2014, Alg. 1)")
    p.add_argument("--generator-loss", choices=["non-saturating", "minimax"], default=None,
                   help="GAN: the generator's loss (default non-saturating: -log D(G(z)))")
    p.add_argument("--epochs", type=int, default=None, help="passes over the training data (default 10)")
    p.add_argument("--batch-size", type=int, default=None, help="data points per step (default 100)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3)")
    p.add_argument("--lr-schedule", choices=["none", "cosine", "exponential", "burda"], default=None,
                   help="learning rate over steps (default none): cosine decay to 0 over the run, exponential "
                        "lr x gamma^epoch, or burda (Burda et al. 2015: passes i=0..7 of 3^i epochs at lr x 10^(-i/7))")
    p.add_argument("--lr-warmup", type=int, default=None, help="steps of linear learning-rate warm-up (default 0)")
    p.add_argument("--lr-gamma", type=float, default=None, help="--lr-schedule exponential: factor per epoch (0.99)")
    p.add_argument("--kl-warmup", type=float, default=None, metavar="EPOCHS",
                   help="weight the KL term (latent sites) from 0 up to 1 linearly over EPOCHS epochs (default 0: "
                        "none; not with --objective iwae); validation and eval report the true ELBO")
    p.add_argument("--early-stop", type=int, default=None, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without a better validation bound (every run keeps the best "
                        "epoch as RUN/checkpoints/best.pt); may change on --resume")
    p.add_argument("--binarize", choices=["none", "dynamic"], default=None, help="dynamic: resample binary pixels each batch")
    p.add_argument("--latent-dim", type=int, default=None, help="size of z (default 50)")
    p.add_argument("--hidden", type=int, nargs="+", default=None, help="hidden widths (default 400)")
    p.add_argument("--activation", default=None, help="relu, softplus, tanh, elu or gelu")
    p.add_argument("--likelihood", default=None, help="bernoulli | gaussian | gaussian-learned (default: from the data)")
    p.add_argument("--obs-scale", type=float, default=None, help="standard deviation of the gaussian likelihood")
    add_model_settings(p)
    add_guide(p)
    add_device(p, default=None)
    add_seed(p, default=None)
    p.add_argument("--log-every", type=int, default=None, help="steps between loss read-backs (default 50)")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="steps between checkpoints (default: at each epoch's end only); a kill loses at most this")
    p.add_argument("--keep-checkpoints", type=int, default=None, help="newest checkpoints kept on disk (default 2)")
    p.add_argument("--grad-clip", type=float, default=None, help="clip the global gradient norm to this value")
    p.add_argument("--on-nan", choices=["stop", "retry"], default=None,
                   help="after a non-finite loss the run rolls back to its last good checkpoint, then stops "
                        "(default) or retries with a lower learning rate")
    p.add_argument("--nan-retries", type=int, default=None, help="--on-nan retry: rollbacks allowed (default 3)")
    p.add_argument("--nan-lr-factor", type=float, default=None,
                   help="--on-nan retry: learning-rate multiplier per retry (default 0.5)")
    p.add_argument("--compile", nargs="?", const="full", default=None, choices=["off", "plan", "full"],
                   help="run SVI steps through the execution plan (ppl_models.plan): 'full' (the default when "
                        "given alone) runs the plan's loss under torch.compile, 'plan' runs it eagerly; a model "
                        "the plan does not support keeps the Pyro path, with a one-line reason")
    p.add_argument("--plan-check-every", type=int, default=None,
                   help="with --compile: re-verify the plan against the Pyro path every N steps (default 0: never)")
    p.add_argument("--compile-mode", choices=list(COMPILE_MODES), default=None,
                   help="--compile full: torch.compile's mode (default 'default'); 'reduce-overhead' replays CUDA "
                        "graphs on a GPU (benchmarks/gpu_check.sh measures it against the default)")
    p.add_argument("--plan-partitioner", choices=list(PARTITIONERS), default=None,
                   help="--compile full: which tensors the compiled backward keeps (ppl_models.plan.partition; "
                        "default auto: saved on the CPU, min-cut on CUDA)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                   help="bf16: the networks run under bfloat16 autocast (tensor cores on a GPU); distributions, "
                        "log-densities, the loss and the parameters stay float32 (default fp32)")
    p.add_argument("--flush-denormal", action="store_true", default=None,
                   help="CPU: treat denormal numbers (below 1.2e-38) as zero while training; measured 1.5-7%% faster "
                        "epochs for the MLP VAE with identical parameters (benchmarks/denormals.py)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its newest loadable checkpoint")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                   help="write per-epoch summaries to RUN/tensorboard (needs pip install \"ppl-models[tensorboard]\"); "
                        "--no-tensorboard turns it off on --resume")
    p.set_defaults(run=run)


def _given(args: argparse.Namespace, names: list[str]) -> dict:
    return {k: getattr(args, k) for k in names if getattr(args, k) is not None}


def run(args: argparse.Namespace) -> None:
    """Configure, train, then save sample grids into the run directory (:func:`ppl_models.api.train`)."""
    from ppl_models.api import train

    model_fields = _given(args, MODEL_FLAGS)
    model_fields.update(parse_settings(args.model_settings))
    train_fields = _given(args, TRAIN_FLAGS)
    clash = sorted(set(model_fields) & set(train_fields))
    if clash:
        raise ValueError(f"--set {clash[0]}=... names a training setting; use its own flag")
    run = train(args.model, out=args.out, config=args.config, resume=args.resume, guide=guide_fields(args), data_dir=args.data_dir,
                progress=not args.no_progress, verbose=True, **train_fields, **model_fields)
    if run.sample_files:  # under torchrun, only rank 0 saved them and reports
        print(f"run saved in {run.path}; samples: {', '.join(str(p) for p in run.sample_files)}")

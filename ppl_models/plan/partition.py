"""Which tensors a compiled step keeps for its backward: Inductor's min-cut choice, or the forward's own.

AOTAutograd traces a compiled loss's forward and backward as one joint graph, then partitions it.
Inductor's default, the min-cut partitioner, saves the smallest set of tensors and recomputes cheap
pointwise ops in the backward: for a ReLU it stores the bool mask ``out <= 0`` (1 byte an element)
from the forward kernel. On the CPU that store is the costliest kernel of the compiled IWAE step:
Inductor's vectorized bool store measured ~20x slower than eager's (``benchmarks/RESULTS.md``, "Why
torch.compile slows IWAE on this CPU"), and the compiled IWAE K=5 plan ran 1.13x the hand-written
eager step.

AOTAutograd's *default* partition (``saved``) keeps what the joint graph's backward reads from the
forward, as autograd would: for the ReLU its output, which the next layer's weight gradient needs anyway,
so the mask is computed inside the backward's fused kernel and never stored. Measured on the CPU
(``benchmarks/plan_step.py``, RESULTS.md, "The compiled plan's partitioner") it takes the compiled IWAE
step from slower than the hand-written eager one to faster (K=5 and K=50). On CUDA the plan keeps
Inductor's min-cut (built to save GPU memory traffic) until ``benchmarks/gpu_check.sh`` has measured
both there.
"""

from __future__ import annotations

from typing import Any

import torch

PARTITIONERS = ("auto", "saved", "min-cut")  # auto: saved on the CPU, min-cut on CUDA
COMPILE_MODES = ("default", "reduce-overhead")  # torch.compile's modes the plan takes (reduce-overhead: CUDA graphs)


def resolve(partitioner: str, device: torch.device) -> str:
    """The partitioner ``auto`` stands for on ``device`` (``saved`` on the CPU where this torch's
    Inductor takes a custom partitioner, ``min-cut`` otherwise); others are returned as they are.
    Raises ``ValueError`` naming an unknown one, or ``saved`` where this torch cannot use it.
    Imports Inductor (about a second) when the answer could be ``saved``."""
    if partitioner not in PARTITIONERS:
        raise ValueError(f"unknown partitioner {partitioner!r}; choose one of {', '.join(PARTITIONERS)}")
    if partitioner == "auto":
        return "saved" if device.type == "cpu" and saved_available() else "min-cut"
    if partitioner == "saved" and not saved_available():
        raise ValueError(f"partitioner 'saved' needs Inductor's custom_partitioner_fn option, which torch "
                         f"{torch.__version__} does not have; use 'min-cut'")
    return partitioner


def saved_available() -> bool:
    """Whether this torch's Inductor takes a custom partitioner (``custom_partitioner_fn``)."""
    import torch._inductor.config as config

    return hasattr(config, "custom_partitioner_fn")


def compile_options(mode: str, partitioner: str) -> dict[str, Any]:
    """Inductor options for ``torch.compile(options=...)``: those of ``mode`` (``default``,
    ``reduce-overhead``, ...) plus, for ``saved``, AOTAutograd's default partition. ``torch.compile``
    takes ``mode`` or ``options``, not both, so the mode is spelled out here."""
    from torch._inductor import list_mode_options

    options = dict(list_mode_options(mode))
    if partitioner == "saved":
        from ppl_models.plan.saved_activations import SavedActivations  # imports Inductor: about a second

        options["custom_partitioner_fn"] = SavedActivations()
    return options

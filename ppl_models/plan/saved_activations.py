"""AOTAutograd's default partition as an Inductor partitioner: see :mod:`ppl_models.plan.partition`.

A module of its own because it imports Inductor (about a second), which only a compiled plan needs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch._functorch.partitioners import default_partition
from torch._inductor.custom_graph_pass import CustomPartitionerFn, get_hash_for_files


class SavedActivations(CustomPartitionerFn):
    """Partition a joint forward-backward graph as autograd would: the backward reads the forward's
    tensors that its ops use (a ReLU's output, say), and recomputes nothing. Inductor's default, the
    min-cut partitioner, instead saves the fewest bytes, e.g. a ReLU's bool mask."""

    def __call__(self, gm: torch.fx.GraphModule, joint_inputs, **kwargs: Any):
        """The forward and backward graphs of the joint graph ``gm`` (Inductor's partitioner interface)."""
        kwargs.pop("compiler", None)  # min-cut's argument; the default partition takes none
        return default_partition(gm, joint_inputs, **kwargs)

    def uuid(self) -> Any:
        """What Inductor's FX-graph cache keys on: this file's contents."""
        return get_hash_for_files((__file__,))

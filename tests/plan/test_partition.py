"""What the compiled plan's backward keeps (``ppl_models.plan.partition``): ``auto`` per device, the options
handed to ``torch.compile``, and that ``saved`` really keeps a ReLU's output rather than its bool mask."""

from __future__ import annotations

import pickle

import pyro
import pytest
import torch
from torch._functorch.partitioners import default_partition, min_cut_rematerialization_partition
from torch._inductor.custom_graph_pass import CustomPartitionerFn

from ppl_models.inference.strategy import fused_adam
from ppl_models.objectives import build_objective
from ppl_models.plan import ExecutionPlan, partition
from ppl_models.plan import saved_activations
from ppl_models.registry import build_model, model_config


def test_auto_is_saved_on_the_cpu_and_min_cut_on_cuda():
    assert partition.resolve("auto", torch.device("cpu")) == "saved"
    assert partition.resolve("auto", torch.device("cuda")) == "min-cut"
    assert partition.resolve("min-cut", torch.device("cpu")) == "min-cut"
    assert partition.resolve("saved", torch.device("cuda")) == "saved"


def test_a_torch_without_custom_partitioners_gets_min_cut_or_a_named_refusal(monkeypatch):
    monkeypatch.setattr(partition, "saved_available", lambda: False)
    assert partition.resolve("auto", torch.device("cpu")) == "min-cut"
    with pytest.raises(ValueError, match=r"partitioner 'saved' needs Inductor's custom_partitioner_fn option, "
                                         r"which torch .* does not have; use 'min-cut'"):
        partition.resolve("saved", torch.device("cpu"))


def test_an_unknown_partitioner_is_named():
    with pytest.raises(ValueError, match="unknown partitioner 'greedy'; choose one of auto, saved, min-cut"):
        partition.resolve("greedy", torch.device("cpu"))


def test_the_options_spell_out_the_mode_and_add_the_partitioner_only_for_saved():
    saved = partition.compile_options("default", "saved")
    assert isinstance(saved["custom_partitioner_fn"], saved_activations.SavedActivations)
    assert "custom_partitioner_fn" not in partition.compile_options("default", "min-cut")
    graphs = partition.compile_options("reduce-overhead", "min-cut")
    assert graphs["triton.cudagraphs"] is True  # what mode="reduce-overhead" would have set
    # Inductor's FX-graph cache pickles its key, partitioner included; the key follows the file's contents.
    fn = pickle.loads(pickle.dumps(saved["custom_partitioner_fn"]))
    assert fn.uuid() == saved_activations.SavedActivations().uuid()


def _iwae_plan_saves(partitioner: str) -> None:
    """Compile the plan of a VAE's IWAE K=5 loss with ``partitioner`` (a recorder sees what it saves)."""
    with pyro.validation_enabled(False):
        torch.manual_seed(0)
        module = build_model("vae", model_config("vae"), (8, 8))
        x = torch.bernoulli(torch.rand(16, 8, 8, generator=torch.Generator().manual_seed(1)))
        torch._dynamo.reset()
        plan, reason = ExecutionPlan.build(build_objective("iwae", 5, "standard"), module, fused_adam(module, 1e-2),
                                           x, compiled=True, partitioner=partitioner)
        torch._dynamo.reset()
    assert reason == "torch.compile", reason


def _recorder(partition_fn, saves: list[torch.dtype]):
    """``partition_fn`` wrapped to append the dtypes of what its forward graph outputs (the loss and the
    tensors saved for the backward) to ``saves``."""
    def record(gm, joint_inputs, **kwargs):
        fw, bw = partition_fn(gm, joint_inputs, **kwargs)
        (out,) = [n for n in fw.graph.nodes if n.op == "output"]
        saves.extend(a.meta["val"].dtype for a in out.args[0] if hasattr(a, "meta") and "val" in a.meta)
        return fw, bw
    return record


class _MinCut(CustomPartitionerFn):
    """Inductor's own min-cut partitioner, recorded."""

    def __init__(self, saves: list[torch.dtype]):
        self.fn = _recorder(min_cut_rematerialization_partition, saves)

    def __call__(self, gm, joint_inputs, **kwargs):
        return self.fn(gm, joint_inputs, **kwargs)

    def uuid(self):
        return None  # not cached


def test_saved_keeps_the_relu_output_where_min_cut_keeps_its_bool_mask(monkeypatch):
    # A cached graph (from an earlier run, on disk) would skip the partitioner: compile afresh.
    monkeypatch.setattr(torch._inductor.config, "fx_graph_cache", False)
    monkeypatch.setattr(torch._functorch.config, "enable_autograd_cache", False)
    min_cut: list[torch.dtype] = []
    with monkeypatch.context() as m:
        m.setattr(partition, "compile_options", lambda mode, p: {"custom_partitioner_fn": _MinCut(min_cut)})
        _iwae_plan_saves("min-cut")
    assert torch.bool in min_cut, min_cut  # the premise: the K x batch hidden layer's mask
    saved: list[torch.dtype] = []
    monkeypatch.setattr(saved_activations, "default_partition", _recorder(default_partition, saved))
    _iwae_plan_saves("saved")
    assert saved and torch.bool not in saved, saved


@pytest.mark.parametrize("partitioner", ["saved", "min-cut"])
def test_either_partitioner_trains_iwae_within_the_compiled_tolerance(partitioner):
    """Both pass the plan's build-time check against the Pyro path and a re-check at step 2."""
    with pyro.validation_enabled(False):
        torch.manual_seed(0)
        module = build_model("vae", model_config("vae"), (8, 8))
        x = torch.bernoulli(torch.rand(16, 8, 8, generator=torch.Generator().manual_seed(1)))
        plan, reason = ExecutionPlan.build(build_objective("iwae", 5, "standard"), module, fused_adam(module, 1e-2),
                                           x, compiled=True, check_every=2, partitioner=partitioner)
        assert plan is not None and reason == "torch.compile" and plan.partitioner == partitioner
        for _ in range(2):
            loss, why = plan.step(x)
            assert why is None and torch.isfinite(loss)

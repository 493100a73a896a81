"""Training: the SVI loop, run directories, checkpoints and metrics."""

from ppl_models.train.config import TrainConfig
from ppl_models.train.loop import fit
from ppl_models.train.run import RunDir

__all__ = ["RunDir", "TrainConfig", "fit"]

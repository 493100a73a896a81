"""A run directory: ``config.json`` (enough to rebuild every object), checkpoints and metrics."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from guides.config import GuideConfig
from ppl_models.atomic import atomic_write
from ppl_models.registry import build_model, model_config
from ppl_models.train.best import CheckpointChoice, choose_checkpoint
from ppl_models.train.config import TrainConfig

FORMAT_VERSION = 1


@dataclass(frozen=True)
class RunConfig:
    """What a run directory records about how it was made."""

    model: str  # registered model name, or an absolute path/to/file.py:NAME
    model_config: Any  # the model family's config dataclass
    train: TrainConfig  # training settings
    event_shape: tuple[int, ...]  # shape of one observation
    guide: GuideConfig = GuideConfig()  # the model's own guide, or an automatic family

    def build(self) -> torch.nn.Module:
        """The model (with its guide) this config describes, freshly initialized."""
        return build_model(self.model, self.model_config, self.event_shape, self.guide)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "model_config": dataclasses.asdict(self.model_config),
            "train": dataclasses.asdict(self.train),
            "event_shape": list(self.event_shape),
            "guide": dataclasses.asdict(self.guide),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "RunConfig":
        """Rebuild from :meth:`to_json` output; JSON lists become tuples again."""
        def tuples(fields: dict) -> dict:
            return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}

        return cls(d["model"], model_config(d["model"], **tuples(d["model_config"])), TrainConfig(**d["train"]),
                   tuple(d["event_shape"]), GuideConfig(**tuples(d.get("guide", {}))))


class RunDir:
    """Paths and I/O of one run directory.

    Args:
        path: the directory (created on first write).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config_path = self.path / "config.json"
        self.checkpoints = self.path / "checkpoints"
        self.metrics_path = self.path / "metrics.csv"
        self.events_path = self.path / "events.log"
        self.figures = self.path / "figures"

    def save_config(self, config: RunConfig) -> None:
        """Write ``config.json`` atomically; an unwritable run directory is an error naming it."""
        text = json.dumps(config.to_json(), indent=2).encode()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write(self.config_path, lambda f: f.write(text))
        except OSError as e:
            raise OSError(f"cannot write the run directory {self.path}: {e.strerror or e}") from e

    def log_event(self, text: str) -> None:
        """Append a timestamped line to ``events.log`` (rollbacks, retries, stops)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        with open(self.events_path, "a") as f:
            f.write(f"{stamp} {text}\n")

    def load_config(self) -> RunConfig:
        """Read ``config.json``, with an error that names a missing or malformed file."""
        if not self.config_path.exists():
            raise FileNotFoundError(f"{self.path} is not a run directory: {self.config_path} does not exist")
        try:
            return RunConfig.from_json(json.loads(self.config_path.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{self.config_path} is malformed: {e}") from e

    def load_model(self, device: str | torch.device = "cpu", checkpoint: str = "best") -> tuple[RunConfig, torch.nn.Module]:
        """Rebuild the model from ``config.json`` and a checkpoint, in eval mode: ``best`` (default:
        ``best.pt``, the epoch with the best validation bound, else the newest), ``latest`` (the newest
        loadable one; an unreadable newest checkpoint is skipped with a warning naming it) or a file."""
        return self.load_model_from(checkpoint, device)[:2]

    def load_model_from(self, checkpoint: str = "best", device: str | torch.device = "cpu"
                        ) -> tuple[RunConfig, torch.nn.Module, CheckpointChoice]:
        """:meth:`load_model`, and which checkpoint it loaded (:func:`ppl_models.train.best.choose_checkpoint`)."""
        config = self.load_config()
        loaded = choose_checkpoint(self.checkpoints, checkpoint)
        if loaded is None:
            raise FileNotFoundError(f"run {self.path} has no checkpoint in {self.checkpoints}")
        model = config.build()
        model.load_state_dict(loaded[1]["model"])
        return config, model.to(device).eval(), loaded[0]

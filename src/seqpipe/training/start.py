"""The model a run starts from: built from its `Model` settings with the train split's normalisation,
optionally initialised from an earlier checkpoint (`training.init_from`) and partly frozen (`training.freeze`)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from seqpipe.config.types import Model
from seqpipe.taskfile.reader import TrainingData
from seqpipe.models import Normalised, build_model

log = logging.getLogger("seqpipe.train")


def make_model(settings: Model, data: TrainingData) -> Normalised:
    """Build the configured model with train-split normalisation statistics in its buffers."""
    model = build_model(settings, **data.dims)
    model.x_mean, model.x_std = data.x_stats
    if data.y_stats is not None:
        model.y_mean, model.y_std = data.y_stats
    return model


NORMALISATION = ("x_mean", "x_std", "y_mean", "y_std")


def load_pretrained(model: Normalised, path: str | Path) -> dict:
    """Copy the tensors of checkpoint `path` whose names and shapes match `model` (not the normalisation buffers).

    `path` is a best.pt/last.pt/model.pt of seqpipe (its `model` entry) or a bare state dict.
    Returns what was loaded and what was skipped, for the log and events.jsonl.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training.init_from: {path} does not exist; expected a best.pt or model.pt of an earlier run")
    state = torch.load(path, map_location="cpu", weights_only=True)
    source = state.get("model", state) if isinstance(state, dict) else state
    own = model.state_dict()
    loaded = {k: v for k, v in source.items() if k in own and k not in NORMALISATION and tuple(v.shape) == tuple(own[k].shape)}
    if not loaded:
        raise ValueError(f"training.init_from: no tensor of {path} matches this model by name and shape "
                         f"(it has {len(source)}, e.g. {sorted(source)[:3]}); train the same architecture, or check the path")
    model.load_state_dict(loaded, strict=False)
    skipped = sorted(set(source) - set(loaded) - set(NORMALISATION))
    report = {"init_from": str(path), "loaded": sorted(loaded), "skipped": skipped, "not_in_checkpoint": sorted(set(own) - set(source) - set(NORMALISATION))}
    log.info("init_from %s: loaded %d tensors, skipped %d (name or shape differs)%s", path, len(loaded), len(skipped),
             f": {', '.join(skipped[:8])}" if skipped else "")
    return report


def freeze(model: Normalised, prefixes: list[str]) -> list[str]:
    """Stop training the parameters whose names start with a prefix (with or without the wrapper's `net.`)."""
    if not prefixes:
        return []
    names = []
    for name, param in model.named_parameters():
        if any(name.startswith(p) or name.startswith(f"net.{p}") for p in prefixes):
            param.requires_grad_(False)
            names.append(name)
    if not names:
        known = sorted({n.split(".")[1] for n, _ in model.named_parameters() if n.startswith("net.")})
        raise ValueError(f"training.freeze: no parameter name starts with {prefixes}; this model's modules are {known}")
    log.info("froze %d parameter tensors (%s)", len(names), ", ".join(prefixes))
    return names



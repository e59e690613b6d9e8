"""Hyperparameter sweeps: a grid in the config expands each swept model into one model per cell.

    sweep:
      models: [gru]                 # which models to sweep (default: all)
      grid:
        hidden_size: [32, 64]       # a model key
        training.optimizer.lr: [0.001, 0.003]   # a per-model training override

gives the models `gru--hidden_size-32--lr-0.001`, `gru--hidden_size-32--lr-0.003`, ... Names are
stable (the grid's order, values as written) and safe in paths, Snakemake wildcards and MLflow
run names; every variant is an ordinary model from then on, so tasks × variants × seeds each get
one training job and the leaderboard has one row per variant (mean ± std over seeds).
"""

from __future__ import annotations

import copy
import itertools
import re

from seqpipe.config.base import ConfigError, deep_merge

SAFE = re.compile(r"[^A-Za-z0-9_.]+")


def value_label(value: object) -> str:
    """A value as it reads in a model name: 0.001, 64, 64x32, relu, true."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "x".join(value_label(v) for v in value)
    return SAFE.sub("_", str(value))


def key_labels(keys: list[str]) -> dict[str, str]:
    """Short labels for grid keys: the last path component, or the whole path where that is ambiguous."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (short if last.count(short) == 1 else k.replace(".", "_")) for k, short in zip(keys, last)}


def nested(path: str, value: object) -> dict:
    """{"a": {"b": value}} for the path "a.b"."""
    out: dict = value
    for part in reversed(path.split(".")):
        out = {part: out}
    return out


def expand_models(models: dict, sweep: dict) -> tuple[dict, dict[str, list[str]]]:
    """The models after the sweep, and for each base model the names it expanded to."""
    grid = sweep.get("grid") or {}
    swept = sweep.get("models") or sorted(models)
    unknown = sorted(set(swept) - set(models))
    if unknown:
        raise ConfigError(f"config key sweep.models: {unknown} are not defined under `models:` (defined: {sorted(models)})")
    if not grid:
        return models, {name: [name] for name in models}
    keys, labels = list(grid), key_labels(list(grid))
    out, variants = {}, {}
    for name, cfg in models.items():
        if name not in swept:
            out[name], variants[name] = cfg, [name]
            continue
        variants[name] = []
        for values in itertools.product(*(grid[k] for k in keys)):
            variant = copy.deepcopy(cfg)
            for key, value in zip(keys, values):
                variant = deep_merge(variant, nested(key, value))
            label = name + "".join(f"--{labels[k]}-{value_label(v)}" for k, v in zip(keys, values))
            out[label] = variant
            variants[name].append(label)
    return out, variants


def apply_sweep(config: dict) -> dict:
    """A copy of the config with the sweep expanded into `models` and into each task's model list.

    The result's `sweep` is emptied, so applying it again changes nothing.
    """
    if not (config.get("sweep") or {}).get("grid"):
        return config
    config = copy.deepcopy(config)
    config["models"], variants = expand_models(config["models"], config["sweep"])
    for task in config["tasks"].values():
        if "models" in task:
            task["models"] = [v for base in task["models"] for v in variants[base]]
    config["sweep"] = {}
    return config

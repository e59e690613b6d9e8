"""Configuration: one schema (workflow/schemas/config.schema.yaml), validated once, defaults filled.

Snakemake validates `config` with the same schema in the Snakefile; `load_config` does the same for
code and tests that run outside Snakemake. `check_config` adds the cross-references a JSON schema
cannot express (a task naming a feature set or model that does not exist).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_LOSS = {"classification": "cross_entropy", "regression": "mse", "reconstruction": "mse", "summary": "mse"}


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the key and how to fix it."""


def _with_defaults(validator_class: type) -> type:
    """Extend a jsonschema validator so that `properties` fills in each missing `default`."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # noqa: ANN001 - jsonschema hook
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    """Read the configuration schema."""
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Return a copy of `config` with defaults filled in; raise ConfigError on the first problem."""
    schema = schema or load_schema()
    config = copy.deepcopy(config)
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ConfigError(f"config key {where}: {err.message}; see workflow/schemas/config.schema.yaml")
    check_config(config)
    return config


def section_with_defaults(section: str, value: dict, schema: dict | None = None) -> dict:
    """A copy of one top-level section (e.g. `training`) validated, with the schema's defaults filled in.

    For code that receives a section outside a full config (a training job's settings).
    """
    schema = schema or load_schema()
    subschema = {**schema["properties"][section], "$defs": schema.get("$defs", {})}
    value = copy.deepcopy(value)
    errors = list(_with_defaults(jsonschema.Draft202012Validator)(subschema).iter_errors(value))
    if errors:
        where = ".".join([section, *(str(p) for p in errors[0].absolute_path)])
        raise ConfigError(f"config key {where}: {errors[0].message}; see workflow/schemas/config.schema.yaml")
    return value


def load_config(path: str | Path, overrides: dict | None = None) -> dict:
    """Read a YAML configuration (safe_load), apply `overrides` (deep merge), validate it, expand sweeps."""
    from seqpipe.sweep import apply_sweep

    with open(path, encoding="utf-8") as fh:
        config = yaml.safe_load(fh) or {}
    if overrides:
        config = deep_merge(config, overrides)
    return apply_sweep(validate_config(config))


def deep_merge(base: dict, update: dict) -> dict:
    """Recursively merge `update` into a copy of `base` (dicts merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def check_config(config: dict) -> None:
    """Cross-reference checks the schema cannot express; raise ConfigError naming the key."""
    features, models = config.get("features", {}), config["models"]
    for name, task in config["tasks"].items():
        for feature_set in [task["features"]] if isinstance(task.get("features"), str) else task.get("features", []):
            if feature_set not in features:
                raise ConfigError(
                    f"config key tasks.{name}.features: feature set {feature_set!r} is not defined; "
                    f"define it under `features:` or use one of: {', '.join(sorted(features)) or '(none)'}"
                )
        for model in task.get("models", []):
            if model not in models:
                raise ConfigError(
                    f"config key tasks.{name}.models: model {model!r} is not defined under `models:` "
                    f"(defined: {', '.join(sorted(models))})"
                )
        if task["type"] == "classification" and task["paradigm"] != "supervised":
            raise ConfigError(f"config key tasks.{name}: classification needs paradigm: supervised")
        if task["type"] == "reconstruction" and task["mapping"] != "seq2seq":
            raise ConfigError(f"config key tasks.{name}: reconstruction needs mapping: seq2seq")
    for name, ds in config.get("datasets", {}).items():
        if ds.get("source") == "root" and not ds.get("root"):
            raise ConfigError(
                f"config key datasets.{name}.root: source is `root` but no folder is given; "
                f"set datasets.{name}.root to the folder the {name} archive extracted to"
            )


def task_config(config: dict, task: str) -> dict:
    """A task's configuration with its losses and model list resolved."""
    cfg = copy.deepcopy(config["tasks"][task])
    cfg.setdefault("losses", [{"name": DEFAULT_LOSS[cfg["type"]], "weight": 1.0, "params": {}}])
    cfg.setdefault("models", sorted(config["models"]))
    cfg["name"] = task
    return cfg


def train_job(config: dict, task: str, model: str, seed: int) -> dict:
    """Everything one training job depends on, and nothing else (so unrelated edits don't rerun it)."""
    model_cfg = copy.deepcopy(config["models"][model])
    training = deep_merge(config["training"], model_cfg.pop("training", {}))
    training.pop("seeds", None)
    return {
        "task": task_config(config, task),
        "model": {"name": model, **model_cfg},
        "training": training,
        "seed": int(seed),
    }

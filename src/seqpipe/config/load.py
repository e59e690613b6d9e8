"""Configuration: one schema (src/seqpipe/config/schema.yaml, shipped in the package), checked once, defaults filled.

`checked_config` is what the Snakefile runs before any job: command-line overrides and an experiment
file applied (seqpipe.config.overrides), then every problem of the config found in one pass and reported
one line each (seqpipe.config.checks), then the schema's defaults filled in. `load_config` does the
same for code and tests that run outside Snakemake.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from collections.abc import Mapping
from pathlib import Path

import jsonschema
import yaml

from seqpipe.config.base import ConfigError, deep_merge  # noqa: F401 - re-exported: seqpipe.config.load.ConfigError
from seqpipe.config.types import RUNTIME_KEYS, Runtime, Training, TrainJob

SCHEMA_PATH = Path(__file__).resolve().with_name("schema.yaml")
SCHEMA_NAME = "src/seqpipe/config/schema.yaml"


def _arch_keys(validator: jsonschema.protocols.Validator, instance: dict, schema: dict) -> set[str] | None:
    """The keys an `allOf` if/then branch allows for this instance (a model's arch), or None."""
    for branch in schema.get("allOf", []):
        names = branch.get("then", {}).get("propertyNames", {}).get("enum")
        if names and "if" in branch and validator.evolve(schema=branch["if"]).is_valid(instance):
            return set(names)
    return None


def _with_defaults(validator_class: type) -> type:
    """Extend a jsonschema validator so that `properties` fills in each missing `default`.

    A model gets the defaults of its own arch's keys only (a GRU's settings hold no VAE defaults).
    """
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # noqa: ANN001 - jsonschema hook
        if isinstance(instance, dict):
            allowed = _arch_keys(validator, instance, schema)
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance and (allowed is None or name in allowed):
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


@cache
def _parsed_schema(path: Path) -> dict:
    """The schema file read once per process (LibYAML's safe loader where built in: the check runs on every
    `snakemake` call, and the pure-Python loader spends ~0.3 s on this file)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    """Read the configuration schema (a fresh copy each call)."""
    return copy.deepcopy(_parsed_schema(Path(path)))


@cache
def _rules() -> dict:
    from seqpipe.config.checks import arch_rules

    return arch_rules(load_schema())


def fill_defaults(config: dict, schema: dict | None = None) -> dict:
    """A copy of `config` with the schema's defaults filled in (no checks)."""
    schema = schema or load_schema()
    config = copy.deepcopy(config)
    for _ in _with_defaults(jsonschema.Draft202012Validator)(schema).iter_errors(config):
        pass
    return config


def problems(config: dict, schema: dict | None = None, *, files: bool = False) -> list[str]:
    """Every problem of a config (before defaults are filled), one line each; [] when it can run."""
    from seqpipe.config import checks as config_checks

    schema = schema or load_schema()
    rules = config_checks.arch_rules(schema)
    lines = config_checks.schema_problems(config, schema, rules)
    filled = fill_defaults(config, schema)
    try:
        lines += config_checks.semantic_problems(filled, schema, rules)
        if files:
            from seqpipe.config.sweep import apply_sweep

            built = {(c.task, c.model, c.seed) for c in cells(apply_sweep(filled))} if not lines else None
            lines += config_checks.file_problems(filled, built)
    except (KeyError, TypeError, AttributeError, ValueError):
        if not lines:  # a malformed part the schema reported already stops these checks; otherwise it is a bug
            raise
    return list(dict.fromkeys(lines))


def report(lines: list[str]) -> str:
    """The message of a ConfigError: a count, one line per problem, where the keys are documented."""
    body = "\n".join(f"  - {line}" for line in lines)
    return (f"the configuration has {len(lines)} problem{'s' if len(lines) != 1 else ''}; nothing was run:\n{body}\n"
            f"Every key is documented in {SCHEMA_NAME} (README: Configuration).")


def validate_config(config: dict, schema: dict | None = None, *, files: bool = False) -> dict:
    """Return a copy of `config` with defaults filled in; raise ConfigError listing every problem.

    `files=True` also checks the files the config names (data_path, init_from), from the current folder.
    """
    schema = schema or load_schema()
    lines = problems(config, schema, files=files)
    if lines:
        raise ConfigError(report(lines))
    return fill_defaults(config, schema)


def checked_config(config: dict, command_line: dict | None = None, schema: dict | None = None) -> dict:
    """The config a workflow runs: overrides and experiment applied, every problem refused, defaults filled.

    `command_line` is Snakemake's parsed `--config` (re-applied on top of an experiment's sections).
    """
    from seqpipe.config.overrides import OverrideError, prepare

    schema = schema or load_schema()
    try:
        config = prepare(config, schema, command_line)
    except OverrideError as err:
        raise ConfigError(report([str(err)])) from None
    return validate_config(config, schema, files=True)


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
        raise ConfigError(f"config key {where}: {errors[0].message}; see {SCHEMA_NAME}")
    return value


def load_config(path: str | Path, overrides: dict | None = None, *, files: bool = False) -> dict:
    """Read a YAML configuration (safe_load), apply `overrides` (deep merge; dotted keys and a `set` entry as
    on the command line), check it, fill defaults, expand sweeps."""
    from seqpipe.config.overrides import prepare
    from seqpipe.config.sweep import apply_sweep

    with open(path, encoding="utf-8") as fh:
        config = yaml.safe_load(fh) or {}
    if overrides:
        config = deep_merge(config, overrides)
    schema = load_schema()
    return apply_sweep(validate_config(prepare(config, schema, overrides), schema, files=files))


def check_config(config: dict) -> None:
    """The checks a schema cannot express, on a config with defaults filled; raise ConfigError listing every problem."""
    from seqpipe.config.checks import semantic_problems

    lines = semantic_problems(config, load_schema(), _rules())
    if lines:
        raise ConfigError(report(lines))


def task_models(config: dict, task: dict) -> list[str]:
    """The models a task trains: its `models` list, or else every model whose arch can serve the task."""
    from seqpipe.config.checks import serves

    if "models" in task:
        return list(task["models"])
    return [m for m in sorted(config["models"]) if serves(_rules(), config["models"][m].get("arch"), task)]


def task_config(config: dict, task: str) -> dict:
    """A task's configuration (of a checked config: the schema filled its default losses) with its name and model list."""
    cfg = copy.deepcopy(config["tasks"][task])
    cfg["models"] = task_models(config, cfg)
    cfg["name"] = task
    return cfg


def stopping_mode(monitor: str, mode: str, task_type: str) -> str:
    """The early-stopping mode with `auto` resolved: max for accuracy (a classification task's metric), else min."""
    if mode != "auto":
        return mode
    return "max" if monitor.endswith("_metric") and task_type == "classification" else "min"


def train_job(config: dict, task: str, model: str, seed: int) -> dict:
    """Everything one training job depends on, and nothing else (so unrelated edits don't rerun it)."""
    model_cfg = copy.deepcopy(config["models"][model])
    training = deep_merge(config["training"], model_cfg.pop("training", {}))
    training.pop("seeds", None)
    task_cfg = task_config(config, task)
    stop = training.get("early_stopping")
    if stop and "mode" in stop:
        stop["mode"] = stopping_mode(stop.get("monitor", "val_loss"), stop["mode"], task_cfg["type"])
    return {
        "task": task_cfg,
        "model": {"name": model, **model_cfg},
        "training": training,
        "seed": int(seed),
    }


@dataclass(frozen=True)
class Cell:
    """One training job: a model trained on a task with a seed."""

    task: str
    model: str
    seed: int

    @property
    def run_dir(self) -> str:
        return f"results/runs/{self.task}/{self.model}/{self.seed}"


def model_training(config: dict, model: str) -> dict:
    """The training settings of one model: the global `training` with the model's own block on top."""
    return deep_merge(config.get("training", {}), config["models"][model].get("training") or {})


def model_seeds(config: dict, model: str) -> list[int]:
    """The seeds a model trains with: its own `training.seeds`, else the global ones."""
    return [int(seed) for seed in model_training(config, model).get("seeds", [0])]


def cells(config: dict) -> list[Cell]:
    """Every (task, model, seed) the configuration asks for, in a stable order."""
    return [
        Cell(task, model, seed)
        for task in sorted(config["tasks"])
        for model in task_config(config, task)["models"]
        for seed in model_seeds(config, model)
    ]


def _training_and_runtime(training: Mapping, task_type: str | None = None) -> tuple[dict, dict]:
    """A `training` section with the schema's defaults filled (early stopping's `auto` mode resolved for
    `task_type`), split into the settings that shape the model and the result-neutral ones."""
    filled = section_with_defaults("training", dict(training))
    filled.pop("seeds", None)
    runtime = {key: filled.pop(key) for key in RUNTIME_KEYS}
    stop = filled["early_stopping"]
    stop["mode"] = stopping_mode(stop["monitor"], stop["mode"], task_type or "")
    return filled, runtime


def training_from_dict(training: Mapping, task_type: str | None = None) -> Training:
    """A (partial) `training` section as a `Training`, the schema's defaults filled in (its runtime keys left out)."""
    return Training.from_dict(_training_and_runtime(training, task_type)[0])


def train_job_from_dict(job: Mapping) -> tuple[TrainJob, Runtime]:
    """A training job written by hand (tests, benchmarks, notebooks: `task`, `model`, a partial `training`,
    `seed`) as a `TrainJob` and its `Runtime`, the schema's defaults filled in. The workflow's jobs need no
    filling: `seqpipe train` parses their complete settings with `TrainJob.from_json`."""
    training, runtime = _training_and_runtime(job.get("training") or {}, job["task"].get("type"))
    typed = TrainJob.from_dict({"task": job["task"], "model": job["model"], "training": training, "seed": job.get("seed", 0)})
    return typed, Runtime.from_dict({**runtime, "cache": {}, "models": {}})


def default_runtime() -> Runtime:
    """The schema's default runtime settings (a job started outside the workflow, without $SEQPIPE_RUNTIME)."""
    training = section_with_defaults("training", {})
    return Runtime.from_dict({**{k: training[k] for k in RUNTIME_KEYS}, "cache": {}, "models": {}})

"""The typed settings a job receives: frozen dataclasses built once from the checked config.

The schema (`schema.yaml`, read by `seqpipe.config.load`) checks a config and fills every default;
these classes only give the result a shape: `TrainJob` (what one training job depends on: its
`Task`, `Model`, `Training` and seed) and `Runtime` (the result-neutral settings, which reach a job through one environment variable,
`SEQPIPE_RUNTIME`, so changing them reruns nothing). They hold no defaults of their own.

Stdlib only (no schema library, no pydantic): every job process parses its settings here, and its
start-up time counts once per job. `to_json`/`from_json` round-trip exactly (sorted keys), so a
rule's params are the JSON of the object its job parses back (docs/configuration.md).
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from types import MappingProxyType
from typing import Any

# Training settings that cannot change a trained model: they belong to `Runtime`, not `Training`.
RUNTIME_KEYS = ("checkpoint_every", "progress", "num_workers", "memory_budget_mb")
RUNTIME_VAR = "SEQPIPE_RUNTIME"


class SettingsError(ValueError):
    """A job's settings (JSON) that do not have the shape this seqpipe expects."""


def frozen(value: Any) -> Any:
    """A read-only copy of a JSON value: dicts become mapping proxies, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(frozen(v) for v in value)
    return value


def thawed(value: Any) -> Any:
    """The plain JSON value of a `frozen` one (mappings to dicts, tuples to lists)."""
    if isinstance(value, Mapping):
        return {k: thawed(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thawed(v) for v in value]
    return value


def _pick(cls: type, where: str, values: Mapping) -> dict:
    """The fields of dataclass `cls` from `values`; a missing or unknown key is one clear error."""
    names = [f.name for f in fields(cls)]
    missing, unknown = [n for n in names if n not in values], sorted(set(values) - set(names))
    if missing or unknown:
        raise SettingsError(f"{where}: {'missing ' + ', '.join(missing) if missing else ''}"
                            f"{'; ' if missing and unknown else ''}{'unknown ' + ', '.join(unknown) if unknown else ''}; "
                            f"expected exactly the keys {', '.join(names)} (settings built by seqpipe.config.plan from a "
                            "checked config: rerun the workflow, or build them with seqpipe.config.load.train_job_from_dict)")
    return {n: values[n] for n in names}


class TaskType(str, enum.Enum):
    """What a task predicts; its properties replace string compares of `task["type"]`."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    RECONSTRUCTION = "reconstruction"
    SUMMARY = "summary"

    @property
    def is_classification(self) -> bool:
        return self is TaskType.CLASSIFICATION

    @property
    def is_reconstruction(self) -> bool:
        return self is TaskType.RECONSTRUCTION

    @property
    def metric_name(self) -> str:
        """The monitoring metric's name: accuracy for classification, else RMSE (in the targets' units)."""
        return "accuracy" if self.is_classification else "RMSE"


# The keys of a task that are not the data layer's (seqpipe.taskfile reads the rest: features, splits, encoding, ...).
_TASK_CORE = ("name", "type", "mapping", "paradigm", "losses")


@dataclass(frozen=True)
class Task:
    """A task as a job needs it: its type and losses, and the data layer's settings (`data`, read-only)."""

    name: str
    type: TaskType
    mapping: str
    paradigm: str | None
    losses: tuple[Mapping, ...] | None  # None for the jobs that only read data (validation, baseline)
    data: Mapping[str, Any]

    @classmethod
    def from_dict(cls, value: Mapping) -> Task:
        """A task from its settings (`name` resolved, as seqpipe.config.load.task_config gives them; the jobs that
        only read data, validation and the baseline, get no `losses`)."""
        missing = [k for k in ("name", "type", "mapping") if k not in value]
        if missing:
            raise SettingsError(f"task settings: missing {', '.join(missing)}; expected a task as "
                                "seqpipe.config.load.task_config resolves it")
        try:
            kind = TaskType(value["type"])
        except ValueError:
            raise SettingsError(f"task {value['name']!r}: type is {value['type']!r}; expected one of "
                                f"{', '.join(t.value for t in TaskType)} (the schema's tasks.<name>.type): fix the task's "
                                "type in the config or the --task JSON") from None
        return cls(name=value["name"], type=kind, mapping=value["mapping"],
                   paradigm=value.get("paradigm"), losses=frozen(list(value["losses"])) if "losses" in value else None,
                   data=frozen({k: v for k, v in value.items() if k not in _TASK_CORE}))

    @classmethod
    def from_json(cls, text: str) -> Task:
        """A task from a rule's `--task` JSON (seqpipe.config.plan.task_params)."""
        return cls.from_dict(json.loads(text))

    def to_dict(self) -> dict:
        """The task's settings as plain JSON (the shape `from_dict` reads; a job's settings and run records hold this)."""
        core = {"name": self.name, "type": self.type.value, "mapping": self.mapping}
        if self.losses is not None:
            core["losses"] = thawed(self.losses)
        if self.paradigm is not None:
            core["paradigm"] = self.paradigm
        return {**thawed(self.data), **core}

    def with_mapping(self, mapping: str) -> Task:
        """The same task read with another mapping (piece-level metrics score seq2static)."""
        return replace(self, mapping=mapping)

    def with_data(self, **settings: Any) -> Task:
        """The same task with some data settings replaced (e.g. validation's `split_seed`)."""
        return replace(self, data=frozen({**self.data, **settings}))

    @property
    def vocab_size(self) -> int | None:
        """The number of token ids of one-hot inputs (`vocab_size`), or None when the task sets none."""
        return self.data.get("vocab_size")

    @property
    def num_classes(self) -> int | None:
        """The class count the task sets (`num_classes`), or None: the file's class names or labels give it."""
        return self.data.get("num_classes")

    @property
    def is_seq2seq(self) -> bool:
        return self.mapping == "seq2seq"

    @property
    def is_classification(self) -> bool:
        return self.type.is_classification

    @property
    def is_reconstruction(self) -> bool:
        return self.type.is_reconstruction


@dataclass(frozen=True)
class Model:
    """A model: its name, its architecture, and the architecture's own hyperparameters (read-only, for its builder)."""

    name: str
    arch: str
    params: Mapping[str, Any]

    @classmethod
    def from_dict(cls, value: Mapping) -> Model:
        if "name" not in value or "arch" not in value:
            raise SettingsError(f"model settings: need name and arch, found keys {sorted(value)}")
        return cls(value["name"], value["arch"], frozen({k: v for k, v in value.items() if k not in ("name", "arch")}))

    def to_dict(self) -> dict:
        """The model's settings as the registered builder reads them (`cfg["hidden_size"]`, ...)."""
        return {"name": self.name, "arch": self.arch, **thawed(self.params)}


@dataclass(frozen=True)
class EarlyStopping:
    """`training.early_stopping` with its mode resolved (min or max)."""

    monitor: str
    mode: str
    patience: int
    min_delta: float


@dataclass(frozen=True)
class KlCollapse:
    """`training.kl_collapse`: warn when the KL stays below `threshold` for `epochs` epochs."""

    threshold: float
    epochs: int


@dataclass(frozen=True)
class Training:
    """The training settings that determine a trained model (the result-neutral ones are `Runtime`'s)."""

    epochs: int
    batch_size: int
    optimizer: Mapping[str, Any]
    scheduler: Mapping[str, Any]
    early_stopping: EarlyStopping
    grad_clip: float | None
    device: str
    deterministic: bool
    amp: str | bool
    noise_std: float
    init_from: str | None
    freeze: tuple[str, ...]
    regularizers: tuple[Mapping, ...]
    kl_collapse: KlCollapse
    shuffle_block: int | None

    @classmethod
    def from_dict(cls, value: Mapping) -> Training:
        own = _pick(cls, "training settings", value)
        own["early_stopping"] = EarlyStopping(**_pick(EarlyStopping, "training.early_stopping", value["early_stopping"]))
        own["kl_collapse"] = KlCollapse(**_pick(KlCollapse, "training.kl_collapse", value["kl_collapse"]))
        for name in ("optimizer", "scheduler", "freeze", "regularizers"):
            own[name] = frozen(own[name])
        return cls(**own)

    def to_dict(self) -> dict:
        out = {f.name: thawed(getattr(self, f.name)) for f in fields(self)}
        out["early_stopping"] = {f.name: getattr(self.early_stopping, f.name) for f in fields(EarlyStopping)}
        out["kl_collapse"] = {f.name: getattr(self.kl_collapse, f.name) for f in fields(KlCollapse)}
        return out


@dataclass(frozen=True)
class TrainJob:
    """Everything one training job depends on, and nothing else: parsed once at `seqpipe train --job JSON`."""

    task: Task
    model: Model
    training: Training
    seed: int

    @classmethod
    def from_dict(cls, value: Mapping) -> TrainJob:
        own = _pick(cls, "training job", value)
        if "losses" not in own["task"]:
            raise SettingsError("training job: its task has no `losses`; expected a task as seqpipe.config.load.task_config "
                                "resolves it (the schema fills each task type's default loss)")
        return cls(Task.from_dict(own["task"]), Model.from_dict(own["model"]), Training.from_dict(own["training"]),
                   int(own["seed"]))

    def to_dict(self) -> dict:
        return {"task": self.task.to_dict(), "model": self.model.to_dict(), "training": self.training.to_dict(),
                "seed": self.seed}

    @classmethod
    def from_json(cls, text: str) -> TrainJob:
        return cls.from_dict(json.loads(text))

    def to_json(self) -> str:
        """Deterministic JSON (sorted keys): a rule's params."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def as_run(self, runtime: Runtime) -> dict:
        """The settings as a run used them: `to_dict` with the runtime settings (of this model) among the training
        ones. What the checkpoints keep as `job`, events.jsonl's on_start shows, and the run's config hash covers."""
        return with_runtime(self.to_dict(), runtime)

    @property
    def label(self) -> str:
        """`task/model/seedN`: the run's name in logs and MLflow."""
        return f"{self.task.name}/{self.model.name}/seed{self.seed}"


@dataclass(frozen=True)
class Runtime:
    """The result-neutral settings: changing them changes no output byte, so they are never a rule's params.

    The global training values, each model's own (`models`: name -> the keys it sets) and the run
    cache's section. A job reads them with `runtime_from_env` (the one route: `SEQPIPE_RUNTIME`).
    """

    checkpoint_every: int
    progress: bool
    num_workers: int
    memory_budget_mb: float
    cache: Mapping[str, Any]
    models: Mapping[str, Mapping[str, Any]]

    @classmethod
    def from_dict(cls, value: Mapping) -> Runtime:
        own = _pick(cls, "runtime settings", value)
        return cls(**{**own, "cache": frozen(own["cache"]), "models": frozen(own["models"])})

    def to_dict(self) -> dict:
        return {f.name: thawed(getattr(self, f.name)) for f in fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def for_model(self, name: str) -> Runtime:
        """These settings with model `name`'s own values on top of the global ones."""
        own = self.models.get(name) or {}
        return replace(self, **{k: own[k] for k in RUNTIME_KEYS if k in own})


def with_runtime(job: Mapping, runtime: Runtime) -> dict:
    """A job's settings (a dict, as `TrainJob.to_dict` or a rule's params give them) with the runtime settings of
    its model put among its training settings."""
    own = runtime.for_model(job["model"]["name"])
    return {**job, "training": {**job["training"], **{key: getattr(own, key) for key in RUNTIME_KEYS}}}


def runtime_from_env(environ: Mapping[str, str] | None = None) -> Runtime | None:
    """The runtime settings the workflow gave this job ($SEQPIPE_RUNTIME, set in common.smk), or None outside it."""
    text = (os.environ if environ is None else environ).get(RUNTIME_VAR)
    if not text:
        return None
    try:
        return Runtime.from_dict(json.loads(text))
    except (ValueError, TypeError) as err:
        raise SettingsError(f"${RUNTIME_VAR}: {err}; expected the JSON of seqpipe.config.types.Runtime, as "
                            "workflow/rules/common.smk sets it (unset it to use the schema's defaults)") from None

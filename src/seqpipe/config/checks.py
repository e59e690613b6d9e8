"""Every problem of a configuration, found in one pass, one line each: the key, what was found, what is allowed, the fix.

`schema_problems` turns JSON-schema errors into such lines (no schema dump); `semantic_problems`
adds what a schema cannot express: cross-references, loss/regularizer/pooling names and parameters
(read from the registered functions' signatures, see seqpipe.signatures), per-model `training:`
blocks, sweep cells after expansion, models that cannot serve a task, early-stopping modes that
contradict the monitored metric and reserved names; `file_problems` checks the files a config names
(`data_path`, `init_from`).
"""

from __future__ import annotations

import difflib
import os
import fnmatch
import re
from collections.abc import Iterator
from pathlib import Path

import jsonschema

from seqpipe import signatures

RESERVED_MODEL_NAMES = {"baseline": "the leaderboard's baseline row and results/baselines/ use it"}
PRODUCED_CHECKPOINT = re.compile(r"^results/runs/(?P<task>[^/]+)/(?P<model>[^/]+)/(?P<seed>\d+)/(best|last|model)\.pt$")
MAX_SHOWN = 60  # characters of a found value shown in a message


def where(path: list | tuple) -> str:
    """A key path as it reads in config.yaml: training.optimizer.lr, tasks.t.losses[0].name."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def shown(value: object) -> str:
    """A found value, shortened."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def did_you_mean(word: str, choices: list[str] | set[str]) -> str:
    """' (did you mean X?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(str(word), sorted(map(str, choices)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def listed(choices) -> str:  # noqa: ANN001 - any iterable of names
    """Names sorted and joined for a message."""
    return ", ".join(sorted(map(str, choices))) or "(none)"


def arch_rules(schema: dict) -> dict[str, dict]:
    """{arch: {"keys": set of keys it reads, "serves": [type/mapping patterns] or None}} from the model schema."""
    rules = {}
    for branch in schema["$defs"]["model"].get("allOf", []):
        arch = branch["if"]["properties"]["arch"]["const"]
        then = branch["then"]
        rules[arch] = {"keys": set(then["propertyNames"]["enum"]), "serves": then.get("x-serves")}
    return rules


def serves(rules: dict, arch: str, task: dict) -> bool:
    """Whether a model of `arch` can serve a task (its type and mapping)."""
    patterns = rules.get(arch, {}).get("serves")
    return patterns is None or any(fnmatch.fnmatchcase(f"{task.get('type')}/{task.get('mapping')}", p) for p in patterns)


# --- schema errors as short lines -------------------------------------------------------------------


def _at(config: object, path: list) -> object:
    """The value at a key path."""
    for part in path:
        config = config[part]
    return config


def _schema_line(err: jsonschema.ValidationError, config: dict, rules: dict) -> list[str]:
    """One line per problem in a jsonschema error (several for additionalProperties)."""
    path = list(err.absolute_path)
    key = where(path)
    if "propertyNames" in err.schema_path:
        name = err.instance
        if err.validator == "enum":  # a key the model's arch does not read
            arch = _at(config, path).get("arch")
            others = sorted(a for a, r in rules.items() if name in r["keys"])
            also = f" ({name!r} is a setting of {', '.join(others)})" if others else ""
            allowed = sorted(set(err.validator_value) - {"arch"})
            return [f"{where([*path, name])}: arch {arch} has no setting {name!r}{did_you_mean(name, allowed)}{also}; "
                    f"allowed: {listed(allowed)}; remove it or fix its name"]
        if err.validator == "pattern":
            return [f"{where([*path, name])}: the name {name!r} is not allowed: names become folders and wildcards, so use "
                    "letters, digits, '_', '.' and '-', starting with a letter or digit, without '..'; rename it"]
        return [f"{where([*path, name])}: {err.message}"]
    if err.validator == "additionalProperties":
        known = set(err.schema.get("properties", {}))
        extra = sorted(k for k in err.instance if k not in known)
        return [f"{where([*path, k])}: unknown key{did_you_mean(k, known)}; allowed under {key}: {listed(known)}"
                for k in extra]
    if err.validator == "enum":
        return [f"{key}: found {shown(err.instance)}{did_you_mean(err.instance, [str(v) for v in err.validator_value])}; "
                f"allowed: {listed(err.validator_value)}"]
    if err.validator == "type":
        expected = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        return [f"{key}: found {type(err.instance).__name__} {shown(err.instance)}; expected {' or '.join(expected)}"]
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return [f"{key}: the required key {missing!r} is missing; add it"]
    if err.validator == "oneOf" and all(set(b) == {"required"} for b in err.validator_value):
        options = " or ".join(f"`{b['required'][0]}`" for b in err.validator_value)
        given = [b["required"][0] for b in err.validator_value if b["required"][0] in err.instance]
        return [f"{key}: found {'both ' + ' and '.join(given) if given else 'neither'}; give exactly one of {options}"]
    if err.validator == "const":
        return [f"{key}: found {shown(err.instance)}; allowed: {err.validator_value!r} here"]
    if err.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[err.validator]
        return [f"{key}: found {shown(err.instance)}; allowed: {bound} {err.validator_value}"]
    message = err.message if len(err.message) <= 200 else err.message[:197] + "..."
    return [f"{key}: {message}"]


def schema_problems(config: dict, schema: dict, rules: dict | None = None) -> list[str]:
    """Every schema violation of `config`, one short line each, in key order."""
    rules = rules if rules is not None else arch_rules(schema)
    validator = jsonschema.Draft202012Validator(schema)
    lines: list[str] = []
    for err in sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path]):
        lines.extend(_schema_line(err, config, rules))
    return lines


def subschema_problems(value: object, subschema: dict, schema: dict, prefix: list, rules: dict) -> list[str]:
    """Schema problems of one value against a part of the schema, with key paths under `prefix`."""
    validator = jsonschema.Draft202012Validator({**subschema, "$defs": schema.get("$defs", {})})
    lines = []
    for err in sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path]):
        err.path.extendleft(reversed(prefix))
        lines.extend(_schema_line(err, _rooted(prefix, value), rules))
    return lines


def _rooted(prefix: list, value: object) -> dict:
    """A dict holding `value` at `prefix`, so error paths resolve against it."""
    out: object = value
    for part in reversed(prefix):
        out = {part: out}
    return out  # type: ignore[return-value]


# --- what a schema cannot express ------------------------------------------------------------------------


def _registered_problems(kind: str, spec: dict, known: dict[str, dict], key: str) -> list[str]:
    """A {name, params} entry against registered functions: the name exists, each parameter is in its signature
    and numeric where the signature's default is numeric."""
    name = spec.get("name")
    if name not in known:
        return [f"{key}.name: unknown {kind} {name!r}{did_you_mean(name, known)}; allowed: {listed(known)}"]
    lines = []
    accepted = known[name]
    for param, value in (spec.get("params") or {}).items():
        if param not in accepted:
            lines.append(f"{key}.params.{param}: {kind} {name} has no parameter {param!r}{did_you_mean(param, accepted)}; "
                         f"allowed: {listed(accepted) if accepted else '(no parameters)'}")
            continue
        default = accepted[param]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (isinstance(default, float) or isinstance(value, int))
        else:
            ok = True
        if not ok:
            lines.append(f"{key}.params.{param}: found {type(value).__name__} {shown(value)}; expected "
                         f"{type(default).__name__} like the default {default!r} of {kind} {name}")
    return lines


def model_problems(name: str, model: dict, schema: dict, rules: dict) -> list[str]:
    """Problems of one model's settings that the schema cannot see: pooling and the per-model training block."""
    key = f"models.{name}"
    lines = []
    pooling = model.get("pooling")
    if isinstance(pooling, dict) and pooling:
        spec = {"name": pooling.get("name", "mean"), "params": pooling.get("params") or {}}
        lines += _registered_problems("pooling", spec, signatures.poolings(), f"{key}.pooling")
    training = model.get("training")
    if isinstance(training, dict) and training:
        # a model's own `seeds` are honoured by the plan (seqpipe.config.plan.model_seeds), checked like the global ones
        lines += subschema_problems(training, schema["properties"]["training"], schema, ["models", name, "training"], rules)
        lines += training_problems(training, f"{key}.training")
    return lines


def training_problems(training: dict, key: str) -> list[str]:
    """Regularizer names and parameters of a training block."""
    lines = []
    for i, spec in enumerate(training.get("regularizers") or []):
        if isinstance(spec, dict):
            lines += _registered_problems("regularizer", spec, signatures.regularizers(), f"{key}.regularizers[{i}]")
    return lines


def task_model_names(config: dict, name: str, task: dict, rules: dict) -> tuple[list[str], list[str]]:
    """(the models a task trains, problems): an explicit list must name defined models that can serve the task;
    without a list, every defined model that can serve it (the others are left out)."""
    models = config.get("models") or {}
    if "models" not in task:
        chosen = [m for m in sorted(models) if serves(rules, models[m].get("arch"), task)]
        if not chosen:
            return [], [f"tasks.{name}: none of the models ({listed(models)}) can serve a {task.get('type')} "
                        f"{task.get('mapping')} task; define one (e.g. arch: gru) or list models under tasks.{name}.models"]
        return chosen, []
    lines = []
    for model in task["models"]:
        if model not in models:
            lines.append(f"tasks.{name}.models: model {model!r} is not defined under `models:`{did_you_mean(model, models)}; "
                         f"defined: {listed(models)}")
        elif not serves(rules, models[model].get("arch"), task):
            arch = models[model].get("arch")
            lines.append(f"tasks.{name}.models: model {model!r} (arch {arch}) cannot serve a {task.get('type')} "
                         f"{task.get('mapping')} task (it serves {', '.join(rules[arch]['serves'])}); remove it from the list")
    return list(task["models"]), lines


def early_stopping_problems(config: dict, task_models: dict[str, list[str]]) -> list[str]:
    """An early-stopping mode that keeps the worst epoch: min on accuracy, max on a loss or RMSE."""
    from seqpipe.config.base import deep_merge

    found: dict[tuple[str, str, str, str], list[str]] = {}
    for task_name, models in task_models.items():
        task = config["tasks"][task_name]
        for model in models:
            own = ((config["models"].get(model) or {}).get("training") or {}).get("early_stopping") or {}
            stop = deep_merge(config["training"]["early_stopping"], own)
            mode, monitor = stop["mode"], stop["monitor"]
            if mode == "auto":
                continue
            higher = monitor.endswith("_metric") and task["type"] == "classification"
            if (mode == "max") == higher:
                continue
            key = f"models.{model}.training.early_stopping.mode" if "mode" in own else "training.early_stopping.mode"
            what = ("accuracy: higher is better" if higher else
                    "a loss: lower is better" if monitor.endswith("_loss") else "RMSE or MSE: lower is better")
            tasks = found.setdefault((key, mode, monitor, what), [])
            if task_name not in tasks:
                tasks.append(task_name)
    return [f"{key}: {mode} with monitor {monitor} keeps the worst epoch on task{'s' if len(tasks) > 1 else ''} "
            f"{', '.join(tasks)} ({what}); set it to {'min' if mode == 'max' else 'max'} or to auto (max for accuracy, min otherwise)"
            for (key, mode, monitor, what), tasks in found.items()]


def sweep_problems(config: dict, schema: dict, rules: dict) -> list[str]:
    """The sweep: its models exist, and every cell after expansion is a valid model with a valid, free name."""
    from seqpipe.config.sweep import expand_models

    sweep = config.get("sweep") or {}
    models = config.get("models") or {}
    unknown = [m for m in sweep.get("models") or [] if m not in models]
    if unknown:
        return [f"sweep.models: {unknown} are not defined under `models:`{did_you_mean(unknown[0], models)}; defined: {listed(models)}"]
    if not sweep.get("grid"):
        return []
    expanded, variants = expand_models(models, sweep)
    lines: dict[str, list[str]] = {}
    model_schema = {"$ref": "#/$defs/model"}
    name_pattern = re.compile(schema["$defs"]["name"]["pattern"])
    for base, names in variants.items():
        if names == [base]:
            continue
        base_lines = set(_model_lines(base, models[base], schema, model_schema, rules))
        for variant in names:
            found = [line for line in _model_lines(base, expanded[variant], schema, model_schema, rules) if line not in base_lines]
            if variant in models:
                found.append(f"the cell {variant!r} of model {base} has the name of a defined model; rename that model")
            if not name_pattern.match(variant):
                found.append(f"the cell name {variant!r} is not a safe name (letters, digits, '_', '.', '-'); use plain values")
            for line in found:
                lines.setdefault(line, []).append(variant)
    hint = "" if sweep.get("models") else "; sweep.models chooses which models are swept (default: all)"
    return [f"sweep.grid: {line} (in {cells[0]}{f' and {len(cells) - 1} more cells' if len(cells) > 1 else ''}){hint}"
            for line, cells in lines.items()]


def _model_lines(name: str, model: dict, schema: dict, model_schema: dict, rules: dict) -> list[str]:
    """Schema and semantic problems of one model's settings."""
    return subschema_problems(model, model_schema, schema, ["models", name], rules) + model_problems(name, model, schema, rules)


def semantic_problems(config: dict, schema: dict, rules: dict | None = None) -> list[str]:
    """What the schema cannot express, on a config with its defaults filled in."""
    rules = rules if rules is not None else arch_rules(schema)
    lines: list[str] = []
    models = config.get("models") or {}
    features = config.get("features") or {}
    for name in models:
        if name in RESERVED_MODEL_NAMES:
            lines.append(f"models.{name}: the name {name!r} is reserved ({RESERVED_MODEL_NAMES[name]}); rename the model")
    for name, model in models.items():
        if isinstance(model, dict):
            lines += model_problems(name, model, schema, rules)
    lines += training_problems(config.get("training") or {}, "training")
    task_models = {}
    for name, task in (config.get("tasks") or {}).items():
        if not isinstance(task, dict):
            continue
        sets = task.get("features")
        for feature_set in [sets] if isinstance(sets, str) else (sets if isinstance(sets, list) else []):
            if feature_set not in features:
                lines.append(f"tasks.{name}.features: feature set {feature_set!r} is not defined{did_you_mean(feature_set, features)}; "
                             f"define it under `features:` or use one of: {listed(features)}")
        if task.get("type") == "classification" and task.get("paradigm") != "supervised":
            lines.append(f"tasks.{name}.paradigm: found {task.get('paradigm')!r}; classification needs paradigm: supervised")
        if task.get("type") == "reconstruction" and task.get("mapping") != "seq2seq":
            lines.append(f"tasks.{name}.mapping: found {task.get('mapping')!r}; reconstruction needs mapping: seq2seq")
        chosen, problems = task_model_names(config, name, task, rules)
        lines += problems
        task_models[name] = [m for m in chosen if m in models]
        for i, spec in enumerate(task.get("losses") or []):
            if isinstance(spec, dict):
                lines += _registered_problems("loss", spec, signatures.losses(), f"tasks.{name}.losses[{i}]")
    for name, ds in (config.get("datasets") or {}).items():
        if isinstance(ds, dict) and ds.get("source") == "root" and not ds.get("root"):
            lines.append(f"datasets.{name}.root: source is `root` but no folder is given; "
                         f"set datasets.{name}.root to the folder the {name} archive extracted to")
    if isinstance(config.get("training"), dict) and "early_stopping" in config["training"]:
        lines += early_stopping_problems(config, task_models)
    lines += sweep_problems(config, schema, rules)
    lines += predict_problems(config)
    return lines


def predict_problems(config: dict) -> list[str]:
    """`predict.<name>.tasks` naming tasks the config does not define."""
    tasks = config.get("tasks") or {}
    lines = []
    for name, entry in (config.get("predict") or {}).items():
        for task in (entry or {}).get("tasks") or [] if isinstance(entry, dict) else []:
            if task not in tasks:
                lines.append(f"predict.{name}.tasks: task {task!r} is not defined{did_you_mean(task, tasks)}; "
                             f"name one of: {listed(tasks)}")
    return lines


# --- files the config names --------------------------------------------------------------------------------


def _init_from_paths(config: dict) -> Iterator[tuple[str, str]]:
    if (config.get("training") or {}).get("init_from"):
        yield "training.init_from", config["training"]["init_from"]
    for name, model in (config.get("models") or {}).items():
        path = ((model or {}).get("training") or {}).get("init_from")
        if path:
            yield f"models.{name}.training.init_from", path


def file_problems(config: dict, cells: set[tuple[str, str, int]] | None = None) -> list[str]:
    """`data_path` files that are missing or not HDF5; `init_from` files that neither exist nor are built by a cell.

    Relative paths are read from the current folder (Snakemake's working directory).
    """
    lines = []
    for name, task in (config.get("tasks") or {}).items():
        path = (task or {}).get("data_path") if isinstance(task, dict) else None
        if not path:
            continue
        p = Path(path)
        if not p.exists():
            lines.append(f"tasks.{name}.data_path: the file {path} does not exist (looked in {p.resolve().parent}); "
                         "fix the path, or write the file first (docs/datasets.md shows the layout)")
        elif p.is_dir():
            lines.append(f"tasks.{name}.data_path: {path} is a folder; expected an HDF5 file (.h5) in the layout of docs/datasets.md")
        else:
            import h5py

            if not h5py.is_hdf5(p):
                lines.append(f"tasks.{name}.data_path: {path} is not an HDF5 file (no HDF5 signature); "
                             "point it to an .h5 file in the layout of docs/datasets.md")
    lines += root_problems(config)
    for key, path in _init_from_paths(config):
        match = PRODUCED_CHECKPOINT.match(str(path))
        if Path(path).is_file():
            continue
        if match and cells is not None and (match["task"], match["model"], int(match["seed"])) in cells:
            continue
        lines.append(f"{key}: the checkpoint {path} does not exist and no training cell of this config writes it; "
                     "give a best.pt or model.pt of an earlier run, or results/runs/<task>/<model>/<seed>/best.pt of a cell here")
    return lines + predict_folder_problems(config)


def predict_folder_problems(config: dict) -> list[str]:
    """`predict.<name>.folder` entries that are not folders."""
    lines = []
    for name, entry in (config.get("predict") or {}).items():
        folder = Path(str(entry.get("folder", ""))) if isinstance(entry, dict) else None
        if folder is not None and not folder.is_dir():
            lines.append(f"predict.{name}.folder: {folder} is not a folder (looked in {folder.resolve().parent}); "
                         "give the folder of audio, MIDI or HDF5 files to label")
    return lines


def root_problems(config: dict) -> list[str]:
    """`datasets.<name>.root` folders of `source: root` datasets that do not exist or are files.

    Relative roots are read from the current folder (the project folder Snakemake runs in).
    """
    lines = []
    for name, ds in (config.get("datasets") or {}).items():
        if not isinstance(ds, dict) or ds.get("source") != "root" or not ds.get("root"):
            continue
        root = Path(os.path.abspath(Path(str(ds["root"])).expanduser()))
        if not root.exists():
            lines.append(f"datasets.{name}.root: the folder {ds['root']} does not exist (looked in {root.parent}); "
                         f"fix the path (relative paths are read from the project folder) or copy the {name} dataset there")
        elif not root.is_dir():
            lines.append(f"datasets.{name}.root: {ds['root']} is a file; expected the folder the {name} dataset extracted to")
        else:
            lines += _layout_problem(name, root)
    return lines


def _layout_problem(name: str, root: Path) -> list[str]:
    """The dataset module's own message when `root` holds no layout it reads (a wrong folder), else []."""
    from seqpipe.datasets import get_dataset

    try:
        get_dataset(name).find_root(root)
    except KeyError:  # an unknown dataset name: the schema's line says so
        return []
    except FileNotFoundError as err:  # DatasetLayoutError included
        return [f"datasets.{name}.root: {err}"]
    return []

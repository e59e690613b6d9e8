"""Command-line overrides and experiment files, turned into one plain nested config before it is checked.

What Snakemake 9 hands over (snakemake.cli.parse_config, tested in tests/test_overrides.py):
- `--config training='{epochs: 5}'` arrives as {"training": {"epochs": "5"}}: nested values are read
  with YAML's BaseLoader, so every scalar is a string. `coerce` types them by the schema.
- `--config training.epochs=5` is refused by Snakemake's own parser before the Snakefile runs ("Config
  entry must start with a valid identifier"). The one entry `--config set='training.epochs=5
  models.gru.hidden_size=128'` is accepted and split by `assignments`; `seqpipe run training.epochs=5 ...`
  (seqpipe.launch) writes that entry for you. Dotted keys in a config file (`training.epochs: 5`) and
  top-level dotted keys are nested by `nest_dotted`.
- An experiment file (`--configfile experiments/x.yaml`) is merged into config.yaml by Snakemake;
  its `experiment:` block's tasks, models and sweep then replace config.yaml's (`apply_experiment`).
"""

from __future__ import annotations

import copy
import re

import yaml

SET_KEY = "set"
REPLACED_BY_EXPERIMENT = ("tasks", "models", "sweep")
_ASSIGNMENT_START = re.compile(r"\s+(?=[A-Za-z_][\w.-]*=)")


class OverrideError(ValueError):
    """An override that cannot be read; the message names it and the expected form."""


def assignments(text: str | list) -> dict[str, object]:
    """{"training.epochs": 5, ...} from "training.epochs=5 models.gru.hidden_size=128" (values read as YAML).

    A value may hold spaces when the next assignment starts with `key=`: "training.freeze=[encoder, head]".
    """
    items = text if isinstance(text, list) else _ASSIGNMENT_START.split(str(text).strip())
    out: dict[str, object] = {}
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise OverrideError(f"--config {SET_KEY}: {item!r} is not key.path=value; write e.g. "
                                f"--config {SET_KEY}='training.epochs=5 models.gru.hidden_size=128'")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as err:
            raise OverrideError(f"--config {SET_KEY}: the value of {key.strip()} ({value!r}) is not valid YAML: "
                                f"{str(err).splitlines()[0]}; quote it") from None
    return out


def split_path(node: object, dotted: str) -> list[str]:
    """The parts of a dotted key, keeping names that hold dots (a task or a sweep cell `gru--lr-0.001`) whole
    where `node` (the config) already has such a key."""
    parts, out = dotted.split("."), []
    i = 0
    while i < len(parts):
        for j in range(len(parts), i, -1):  # the longest run of parts that names an existing key
            candidate = ".".join(parts[i:j])
            if j == i + 1 or (isinstance(node, dict) and candidate in node):
                break
        out.append(candidate)
        node = node.get(candidate) if isinstance(node, dict) else None
        i = j
    return out


def set_path(config: dict, parts: list[str], value: object) -> None:
    """config[a][b][c] = value, creating (or replacing non-dict) levels on the way."""
    node = config
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def nest_dotted(config: dict) -> dict:
    """A copy with the `set` entry's assignments and top-level dotted keys applied as nested keys (in that order)."""
    config = copy.deepcopy(config)
    pending = {k: config.pop(k) for k in [k for k in config if "." in k]}
    if SET_KEY in config:
        pending.update(assignments(config.pop(SET_KEY)))
    for key, value in pending.items():
        set_path(config, split_path(config, key), value)
    return config


def apply_experiment(config: dict, command_line: dict | None = None) -> dict:
    """A copy where the `experiment:` block's tasks, models and sweep replace the config's own.

    `command_line` (Snakemake's parsed `--config`) is merged again afterwards, so a nested override of
    `models` or `tasks` also reaches an experiment's models and tasks.
    """
    from seqpipe.config.base import deep_merge

    if not isinstance(config.get("experiment"), dict):
        return config
    config = copy.deepcopy(config)
    experiment = config["experiment"]
    if "tasks" not in experiment and "models" not in experiment:
        raise OverrideError("experiment: the block defines neither `tasks` nor `models`; put the study's tasks and models "
                            "under `experiment:` (they replace config.yaml's), or drop the block to merge into config.yaml")
    for section in REPLACED_BY_EXPERIMENT:
        if section in experiment:
            config[section] = experiment.pop(section)
        elif section == "sweep":
            config[section] = {}
    for section in REPLACED_BY_EXPERIMENT:
        if command_line and isinstance(command_line.get(section), dict):
            config[section] = deep_merge(config.get(section) or {}, command_line[section])
    return config


# --- typing string values by the schema ------------------------------------------------------------------


def _resolve(node: dict, root: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        target = root
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _types(node: dict, root: dict) -> set[str] | None:
    """The JSON types a schema node accepts (None: anything)."""
    node = _resolve(node, root)
    for key in ("oneOf", "anyOf"):
        if key in node:
            found: set[str] = set()
            for branch in node[key]:
                t = _types(branch, root)
                if t is None:
                    return None
                found |= t
            return found
    if "type" in node:
        return set(node["type"]) if isinstance(node["type"], list) else {node["type"]}
    if "enum" in node:
        return {"string" if isinstance(v, str) else "other" for v in node["enum"]}
    return None


def _child(node: dict, key: object, root: dict) -> dict | None:
    """The schema node of `key` under `node` (None: free-form)."""
    node = _resolve(node, root)
    if isinstance(key, int):
        return node.get("items")
    props = dict(node.get("properties", {}))
    for branch in node.get("allOf", []):  # a model's arch-specific branch
        props.update(branch.get("then", {}).get("properties", {}))
    if key in props:
        return props[key]
    extra = node.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def _parsed(value: str, types: set[str] | None) -> object:
    """A string read as YAML where the schema wants something other than a string."""
    if types is None:  # free-form (loss and pooling params): numbers, booleans and null only
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        return parsed if parsed is None or isinstance(parsed, (bool, int, float)) else value
    if "string" in types and not ({"null"} & types and value in ("null", "~")):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def coerce(value: object, node: dict | None, root: dict) -> object:
    """`value` with the strings that the schema wants as numbers, booleans, lists or null read as YAML."""
    if isinstance(value, str):
        parsed = _parsed(value, _types(node, root) if node else None)
        return coerce(parsed, node, root) if not isinstance(parsed, str) else parsed
    if isinstance(value, dict):
        return {k: coerce(v, _child(node, k, root) if node else None, root) for k, v in value.items()}
    if isinstance(value, list):
        item = _child(node, 0, root) if node else None
        return [coerce(v, item, root) for v in value]
    return value


def coerce_config(config: dict, schema: dict) -> dict:
    """The whole config typed by the schema; sweep grid values are typed by the model key they set."""
    out = coerce(config, schema, schema)
    grid = ((out.get("sweep") or {}).get("grid")) if isinstance(out.get("sweep"), dict) else None
    if isinstance(grid, dict):
        model = schema["$defs"]["model"]
        for key, values in grid.items():
            parts = key.split(".")
            node: dict | None = schema["properties"]["training"] if parts[0] == "training" else model
            for part in parts[1:] if parts[0] == "training" else parts:
                node = _child(node, part, schema) if node else None
            if isinstance(values, list):
                grid[key] = [coerce(v, node, schema) for v in values]
    return out


def prepare(config: dict, schema: dict, command_line: dict | None = None) -> dict:
    """Overrides nested, the experiment applied and string values typed: the config the checks see."""
    config = apply_experiment(config, command_line)
    config = nest_dotted(config)
    return coerce_config(config, schema)

"""Dotted keys in Snakemake's `--config`: `snakemake --config training.epochs=5 models.gru.hidden_size=128`.

Snakemake 9 (`snakemake.cli.parse_config`) refuses any `--config` key that is not an identifier,
before the workflow is read ("Config entry must start with a valid identifier"; upstream issues
snakemake#1975 and snakemake#3907), so no Snakefile code can accept the Hydra-style form.

`make install` puts `envs/seqpipe_dotted_config.pth` into the project's virtual environment; at
interpreter start it calls `install()`, which waits (a `sys.meta_path` finder, nothing imported)
until `snakemake.cli` is first imported and then wraps its `parse_config`:

- an entry whose key is a dotted path (`training.epochs=5`) has its value parsed by Snakemake's own
  parser (under a stand-in key, so the types are exactly Snakemake's) and is kept under the dotted
  key: `{"training.epochs": 5}`; the workflow nests and types it by the schema
  (`seqpipe.overrides.nest_dotted`, as it does for dotted keys in a config file);
- every other entry goes to Snakemake's parser unchanged, in order.

Jobs Snakemake spawns (local, SLURM, HTCondor) are started with the same `--config` words by the
same environment's Python, so they read them the same way. Without the `.pth` (a Snakemake from
another environment) the one-entry form `--config set='training.epochs=5 ...'` still works.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import re
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

TARGET = "snakemake.cli"
DOTTED_KEY = re.compile(r"[A-Za-z_][\w-]*(?:\.[\w-]+)+$")
_STAND_IN = "seqpipe_dotted_value"
_MARK = "_seqpipe_dotted_keys"


def wrap(parse_config: Callable[[Sequence[str] | None], dict]) -> Callable[[Sequence[str] | None], dict]:
    """A `parse_config` that also takes `a.b.c=value` entries, keeping them as {"a.b.c": value}."""
    if getattr(parse_config, _MARK, False):
        return parse_config
    from snakemake.utils import update_config

    def parse_dotted(entries: Sequence[str] | None) -> dict:
        if not entries or not any(DOTTED_KEY.match(str(e).partition("=")[0]) for e in entries):
            return parse_config(entries)
        config: dict = {}
        for entry in entries:
            key, sep, value = str(entry).partition("=")
            if sep and DOTTED_KEY.match(key):
                update_config(config, {key: parse_config([f"{_STAND_IN}={value}"])[_STAND_IN]})
            else:
                update_config(config, parse_config([entry]))
        return config

    parse_dotted.__doc__ = parse_config.__doc__
    parse_dotted.__wrapped__ = parse_config  # type: ignore[attr-defined]
    setattr(parse_dotted, _MARK, True)
    return parse_dotted


def patch(cli: ModuleType) -> None:
    """Wrap `cli.parse_config` (idempotent)."""
    cli.parse_config = wrap(cli.parse_config)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds `snakemake.cli` like the path finder does and patches the module right after it runs."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None):
        if fullname != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            patch(module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    """Patch `snakemake.cli` now if it is loaded, else when it is first imported (idempotent, imports nothing)."""
    if TARGET in sys.modules:
        patch(sys.modules[TARGET])
    elif not any(isinstance(finder, _PatchOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())

"""The base of the configuration modules: their error and the merge they all use.

Every module of the configuration package (overrides, sweep, checks, load, plan) imports these from
here, so the package imports in one direction (docs/architecture.md); `seqpipe.config.load` re-exports both.
"""

from __future__ import annotations

import copy


class ConfigError(ValueError):
    """A configuration that cannot run; the message names each key and how to fix it."""


def deep_merge(base: dict, update: dict) -> dict:
    """Recursively merge `update` into a copy of `base` (dicts merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out

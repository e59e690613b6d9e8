"""The dataset registry: a plain dict filled by the dataset modules' own `@register_dataset(NAME)`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType

DATASETS: dict[str, ModuleType] = {}
FOLDER_PREFIX = "folder_"  # datasets named folder_<anything> are folders too (several folders in one config)


def register_dataset(name: str) -> Callable:
    """Register the module defining the decorated `index(root) -> Index` as dataset `name`.

    A dataset is one module (the surface in `seqpipe.datasets`' docstring); decorating its `index`
    is what makes seqpipe know it: the config check, `demo`, `download`, `manifest` and the feature
    stage all find it here.
    """

    def deco(fn: Callable) -> Callable:
        module = sys.modules[fn.__module__]
        if DATASETS.get(name, module) is not module:
            raise ValueError(f"dataset {name!r} is registered twice: by {DATASETS[name].__name__} and {module.__name__}; "
                             "rename one of them")
        DATASETS[name] = module
        return fn

    return deco


def get_dataset(name: str) -> ModuleType:
    """Return the module of dataset `name` (`folder_<x>` is a folder), with a clear error for an unknown name."""
    if name.startswith(FOLDER_PREFIX):
        name = "folder"
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))} (and folder_<name>)")
    return DATASETS[name]


def dataset_names() -> list[str]:
    """Names of the datasets seqpipe knows, sorted."""
    return sorted(DATASETS)

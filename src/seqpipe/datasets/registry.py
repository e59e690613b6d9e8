"""The dataset registry: a plain dict filled by the dataset modules' own `@register_dataset(NAME)`.

A dataset module is imported when its dataset is first asked for (`get_dataset`), or with all the
others when every name is (`dataset_names`): a job imports only the dataset it reads, and its code
stamp (the import closure `seqpipe.codedeps` reads from the source) holds only that module, so an
edit to one dataset reruns that dataset's stages alone.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable
from types import ModuleType

DATASETS: dict[str, ModuleType] = {}
FOLDER_PREFIX = "folder_"  # datasets named folder_<anything> are folders too (several folders in one config)
PACKAGE = "seqpipe.datasets"
SHARED = frozenset({"base", "registry"})  # modules of the package that are no dataset


def register_dataset(name: str) -> Callable:
    """Register the module defining the decorated `index(root) -> Index` as dataset `name`.

    A dataset is one module `seqpipe/datasets/<name>.py` (the surface in `seqpipe.datasets`'
    docstring); decorating its `index` is what makes seqpipe know it: the config check, `demo`,
    `download`, `manifest` and the feature stage all find it here.
    """

    def deco(fn: Callable) -> Callable:
        module = sys.modules[fn.__module__]
        if DATASETS.get(name, module) is not module:
            raise ValueError(f"dataset {name!r} is registered twice: by {DATASETS[name].__name__} and {module.__name__}; "
                             "rename one of them")
        DATASETS[name] = module
        return fn

    return deco


def _module_names() -> list[str]:
    """The dataset modules' names: every module of the package but the shared ones."""
    package = importlib.import_module(PACKAGE)
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name not in SHARED)


def _load(name: str) -> ModuleType | None:
    """The registered module of dataset `name`, importing `seqpipe.datasets.<name>` if needed; None if there is none."""
    if name not in DATASETS and name in _module_names():
        module = importlib.import_module(f"{PACKAGE}.{name}")
        if name not in DATASETS:
            raise RuntimeError(f"{module.__file__} does not register dataset {name!r}: decorate its `index` with "
                               f"@register_dataset({name!r}) (seqpipe.datasets.registry)")
    return DATASETS.get(name)


def get_dataset(name: str) -> ModuleType:
    """Return the module of dataset `name` (`folder_<x>` is a folder), with a clear error for an unknown name."""
    if name.startswith(FOLDER_PREFIX):
        name = "folder"
    module = _load(name)
    if module is None:
        raise KeyError(f"unknown dataset {name!r}; known datasets: {', '.join(dataset_names())} (and folder_<name>)")
    return module


def dataset_names() -> list[str]:
    """Names of the datasets seqpipe knows (every dataset module, imported), sorted."""
    for name in _module_names():
        _load(name)
    return sorted(DATASETS)

"""The names and settable parameters of registered losses, regularizers and poolings, read from their source.

The configuration check runs before every `snakemake` call, where importing torch (which the loss and
pooling modules need) would cost seconds. So the registries are read from the source files with
`ast` instead: every function decorated with `@register_loss("name")` (or `register_regularizer`,
`register_pooling`) and the parameters of its signature that have defaults. `tests/test_config_checks.py`
checks that this agrees with the imported registries and `inspect.signature`.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SOURCES = {
    "register_loss": PACKAGE / "training" / "losses.py",
    "register_regularizer": PACKAGE / "training" / "losses.py",
    "register_pooling": PACKAGE / "models" / "pooling.py",
}


def _default(node: ast.expr) -> object:
    """A parameter's default as a Python value (None where it is not a literal)."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


@cache
def registered(decorator: str) -> dict[str, dict[str, object]]:
    """{registered name: {parameter: default}} for the functions decorated with `decorator("name")`.

    Only parameters with a default are settable from the configuration (the others are the tensors
    the caller passes).
    """
    tree = ast.parse(SOURCES[decorator].read_text(encoding="utf-8"))
    out: dict[str, dict[str, object]] = {}
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        for deco in fn.decorator_list:
            if (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Name) and deco.func.id == decorator
                    and deco.args and isinstance(deco.args[0], ast.Constant)):
                args = fn.args.posonlyargs + fn.args.args
                with_defaults = args[len(args) - len(fn.args.defaults):]
                params = {a.arg: _default(d) for a, d in zip(with_defaults, fn.args.defaults)}
                params.update({a.arg: _default(d) for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults) if d is not None})
                out[deco.args[0].value] = params
    return out


def losses() -> dict[str, dict[str, object]]:
    """Registered losses and their settable parameters with defaults."""
    return registered("register_loss")


def regularizers() -> dict[str, dict[str, object]]:
    """Registered regularizers and their settable parameters with defaults."""
    return registered("register_regularizer")


def poolings() -> dict[str, dict[str, object]]:
    """Registered time poolings and their settable parameters with defaults."""
    return registered("register_pooling")

"""`seqpipe relocate-mlflow`: point a moved SQLite MLflow store at its artifacts' new place.

A SQLite store records absolute artifact locations (MLflow resolves them when the experiment and
each run are created). After `results/` is moved or copied, the store still opens (the tracking URI
is relative) but every artifact link points into the old folder. This one step rewrites the old
artifact root to the new one in the experiments, runs, logged models and model versions.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
from pathlib import Path

log = logging.getLogger("seqpipe.tracking")
COLUMNS = {"experiments": "artifact_location", "runs": "artifact_uri", "logged_models": "artifact_location",
           "model_versions": "source"}


class RelocateError(ValueError):
    """The store or the artifact folder is not what relocation needs."""


def old_root(db: Path) -> str:
    """The artifact root the store was created with (the seqpipe experiment's location)."""
    with sqlite3.connect(db) as con:
        rows = [r[0] for r in con.execute("SELECT artifact_location FROM experiments WHERE experiment_id != '0'")]
    roots = {r for r in rows if r}
    if len(roots) != 1:
        raise RelocateError(f"{db}: expected one seqpipe experiment artifact location, found {sorted(roots) or 'none'}; "
                            "pass --old explicitly")
    return roots.pop()


def relocate(db: str | Path, new_root: str | Path, old: str | None = None) -> int:
    """Rewrite artifact locations starting with `old` (default: the store's own root) to `new_root`; returns rows changed."""
    db, new_root = Path(db), Path(new_root).resolve()
    if not db.is_file():
        raise RelocateError(f"{db}: no such MLflow SQLite store; give the moved results/mlflow/mlflow.db")
    if not new_root.is_dir():
        raise RelocateError(f"{new_root}: no such artifact folder; give the moved results/mlflow/artifacts")
    old = old or old_root(db)
    new = new_root.as_uri() if old.startswith("file:") else str(new_root)
    if old.rstrip("/") == new.rstrip("/"):
        return 0
    changed = 0
    with sqlite3.connect(db) as con:
        for table, column in COLUMNS.items():
            cur = con.execute(f"UPDATE {table} SET {column} = ? || substr({column}, ?) WHERE substr({column}, 1, ?) = ?",  # noqa: S608
                              (new.rstrip("/"), len(old.rstrip("/")) + 1, len(old.rstrip("/")), old.rstrip("/")))
            changed += cur.rowcount
    log.info("%s: %d artifact location(s) moved from %s to %s", db, changed, old, new)
    return changed


def main(argv: list[str] | None = None) -> int:
    """`seqpipe relocate-mlflow [--store results/mlflow/mlflow.db] [--artifacts results/mlflow/artifacts]`"""
    parser = argparse.ArgumentParser(prog="seqpipe relocate-mlflow", description="Point a moved or copied SQLite MLflow store at its "
                                     "artifacts' new folder (a SQLite store records absolute artifact locations).")
    parser.add_argument("--store", default="results/mlflow/mlflow.db", help="the moved SQLite store (default: %(default)s)")
    parser.add_argument("--artifacts", default="results/mlflow/artifacts", help="the moved artifact folder (default: %(default)s)")
    parser.add_argument("--old", help="the old artifact root (default: the one recorded in the store)")
    args = parser.parse_args(argv)
    print(f"{relocate(args.store, args.artifacts, args.old)} artifact location(s) updated")
    return 0

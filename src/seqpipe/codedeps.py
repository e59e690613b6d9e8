"""Which source files a rule runs, so Snakemake reruns exactly the stages whose code changed.

Snakemake does not track the modules a job imports. For each rule, the files of the seqpipe
module it calls plus every seqpipe module that one imports (transitively, found by reading the
source, not by importing it) and the package `__init__` files on the way are the inputs of a
`code_stamp` job, which writes their checksums to `results/code/<modules>.sha256`; the rule
depends on that one stamp file. Editing `seqpipe/features/audio.py` therefore reruns the log-mel
features and everything downstream of them, and nothing else (touching a file without changing
it reruns nothing: Snakemake compares checksums). One stamp instead of ~25 source files per job
keeps `snakemake -n` on a 1,000-cell sweep fast. Only the standard library is used.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

PACKAGE = "seqpipe"


def module_file(module: str, src: Path) -> Path | None:
    """The file defining `module` under `src` (a module file or a package `__init__.py`)."""
    base = src.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    """seqpipe modules imported anywhere in `path` (top level or inside functions); each file is parsed once per
    process while it is unchanged (a workflow's ~20 code stamps share most of their modules)."""
    info = path.stat()
    return set(_parsed_imports(str(path), module, info.st_mtime_ns, info.st_size))


@lru_cache(maxsize=None)
def _parsed_imports(path_name: str, module: str, mtime_ns: int, size: int) -> frozenset[str]:
    """_imports of one version of a file (the modification time and size make the cache key)."""
    path = Path(path_name)
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # may be submodules
    return frozenset(name for name in found if name == PACKAGE or name.startswith(PACKAGE + "."))


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@lru_cache(maxsize=None)
def source_files(modules: tuple[str, ...], src: str) -> tuple[str, ...]:
    """Sorted source files that running `modules` executes (their seqpipe import closure)."""
    root = Path(src)
    seen: set[str] = set()
    todo = [parent for module in modules for parent in _with_parents(module)]
    files: set[Path] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name, root)
        if path is None:
            continue  # `from seqpipe.x import function`: not a module
        files.add(path)
        for imported in _imports(path, name):
            todo.extend(p for p in _with_parents(imported) if p not in seen)
    return tuple(sorted(str(f) for f in files))


def stamp(files: list[str], src: str) -> str:
    """One line per source file: its SHA-256 and its path relative to `src` (sorted)."""
    import hashlib

    lines = []
    for path in sorted(files):
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        lines.append(f"{digest}  {Path(path).resolve().relative_to(Path(src).resolve()).as_posix()}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """`seqpipe code-stamp --src DIR --out FILE FILE...`: the checksums of the source files a rule runs."""
    import argparse

    from seqpipe.io import write_text

    parser = argparse.ArgumentParser(prog="seqpipe code-stamp", description="Write the checksums of the source files a rule runs "
                                     "(its code stamp): a rule depending on the stamp reruns when that code changes.")
    parser.add_argument("--src", required=True, help="the source folder the files are listed relative to (src)")
    parser.add_argument("--out", required=True, help="the stamp file to write (results/code/<modules>.sha256)")
    parser.add_argument("files", nargs="+", help="the source files to checksum")
    args = parser.parse_args(argv)
    write_text(args.out, stamp(args.files, args.src))

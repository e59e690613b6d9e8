"""Each rule group's conda environment pins every third-party package its rules import, at the lock's version,
and constrains the project install to the lock (so `-e ../` cannot pull an unpinned dependency)."""

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import yaml

from seqpipe import codedeps
from seqpipe.cli import COMMANDS

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.-]+)==([^\s;#]+)", line):
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def env_pins(path: Path) -> tuple[dict[str, str], list[str]]:
    spec = yaml.safe_load(path.read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    pins = {}
    for line in pip:
        if m := re.match(r"^([A-Za-z0-9_.-]+)==(\S+)$", line):
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins, pip


def third_party(files: list[str]) -> dict[str, set[str]]:
    """Import name -> the distributions that provide it, for every third-party import in the files."""
    dists = packages_distributions()
    found: dict[str, set[str]] = {}
    for file in files:
        for node in ast.walk(ast.parse(Path(file).read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module] if isinstance(node, ast.ImportFrom) and not node.level else []
            for name in names:
                top = (name or "").split(".")[0]
                if top and top != "seqpipe" and top not in sys.stdlib_module_names:
                    found[top] = {d.lower().replace("_", "-") for d in dists.get(top, [top])}
    return found


def rule_groups() -> dict[str, set[str]]:
    """env file -> seqpipe modules its rules run (from each rule's `conda:` and `seqpipe <command>`)."""
    groups: dict[str, set[str]] = {}
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"\nrule ", smk.read_text()):
            env = re.search(r'conda:\s*\n\s*"\.\./\.\./(envs/\w+\.yaml)"', block)
            commands = re.findall(r'"seqpipe ([a-z-]+)', block)
            if env and commands:
                groups.setdefault(env.group(1), set()).update(COMMANDS[c][0] for c in commands if c in COMMANDS)
    return groups


def test_every_imported_package_is_pinned_to_the_lock():
    pins = lock()
    groups = rule_groups()
    assert set(groups) == {"envs/data.yaml", "envs/train.yaml"}
    for env, modules in groups.items():
        files = codedeps.source_files(tuple(sorted(modules)), str(SRC))
        have, pip = env_pins(REPO / env)
        missing = sorted(name for name, provided in third_party(list(files)).items() if provided & set(pins) and not provided & set(have))
        assert not missing, f"{env} does not pin {missing}, which its rules import"
        wrong = {d: (v, pins[d]) for d, v in have.items() if d in pins and pins[d] != v}
        assert not wrong, f"{env} pins differ from requirements.lock: {wrong}"
        assert "-c ../requirements.lock" in pip, f"{env}: the project install is not constrained by the lock"

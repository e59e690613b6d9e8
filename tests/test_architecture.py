"""The package's shape (issue 21 items 2, 3, 5): no import cycle, no import from a lower stage to a higher one, no
start-up patch (.pth) of the project's own, and one place per extension point.

The stage order is documented in docs/architecture.md; `STAGES` below is its executable form. Every import
counts (module level and inside functions), except those under `if TYPE_CHECKING:` (annotations only, never run).
"""

from __future__ import annotations

import ast
import importlib.metadata
import sysconfig
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PACKAGE = SRC / "seqpipe"

# Lowest first. A module may import modules of its own stage or of a lower one. Names are module prefixes.
STAGES: list[tuple[str, ...]] = [
    ("seqpipe", "seqpipe.io", "seqpipe.progress", "seqpipe.signatures", "seqpipe.codedeps"),
    ("seqpipe.datasets",),
    ("seqpipe.config", "seqpipe.config.base", "seqpipe.config.types", "seqpipe.config.overrides", "seqpipe.config.sweep", "seqpipe.config.checks", "seqpipe.config.load",
     "seqpipe.config.plan"),
    ("seqpipe.raw",),
    ("seqpipe.taskfile",),
    ("seqpipe.features",),
    ("seqpipe.models",),
    ("seqpipe.tracking",),
    ("seqpipe.training",),
    ("seqpipe.evaluation",),
    ("seqpipe.predict",),
    ("seqpipe.worker_client", "seqpipe.runcache", "seqpipe.launch", "seqpipe.cli", "seqpipe.worker", "seqpipe.__main__"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def stage(module: str) -> int:
    """The index in STAGES of the longest prefix naming `module`."""
    best, found = -1, None
    for index, names in enumerate(STAGES):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, found = len(name), index
    assert found is not None, f"{module} is in no stage: add it to STAGES and docs/architecture.md"
    return found


def resolve(name: str) -> str | None:
    """The seqpipe module an imported name lives in (a module, or the package holding an imported object)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def runtime_nodes(tree: ast.AST):
    """Every node of `tree` outside `if TYPE_CHECKING:` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def imports(module: str) -> set[str]:
    """The seqpipe modules `module` imports."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES] or [base]
        else:
            continue
        found |= {m for m in map(resolve, names) if m and m != module and m.startswith("seqpipe")}
    return found


GRAPH = {module: imports(module) for module in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read():
    """The check sees real imports (it would pass vacuously otherwise)."""
    assert len(MODULES) > 50
    assert "seqpipe.models" in GRAPH["seqpipe.training.start"]
    assert "seqpipe.config.base" in GRAPH["seqpipe.config.sweep"]


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    assert cycles(GRAPH) == [], "import cycles inside src/seqpipe: move the shared function down a stage"


def test_no_import_from_a_lower_stage_to_a_higher_one():
    upward = sorted(f"{m} (stage {stage(m)}) imports {n} (stage {stage(n)})"
                    for m, targets in GRAPH.items() for n in targets if stage(n) > stage(m))
    assert not upward, "\n".join(upward) + "\nsee the stage order in docs/architecture.md"


def test_no_pth_file_in_the_repository():
    tracked = [p for p in REPO.rglob("*.pth") if not any(part.startswith(".") or part in {"results", "resources"}
                                                          for part in p.relative_to(REPO).parts)]
    assert tracked == []


def test_no_pth_file_in_the_environment_but_the_installers_own():
    """Every .pth in site-packages was written by a package's installer (listed in its RECORD: setuptools'
    distutils shim, the editable install's path file); none was copied in by hand to patch start-up."""
    site = Path(sysconfig.get_paths()["purelib"])
    recorded = {(site / f).resolve() for d in importlib.metadata.distributions() for f in (d.files or [])
                if str(f).endswith(".pth")}
    unrecorded = [p.name for p in site.glob("*.pth") if p.resolve() not in recorded]
    assert unrecorded == [], f"start-up patches in {site}: {unrecorded} (`make install` removes the project's old ones)"


# --- one place per extension point ---------------------------------------------------------------------------


def schema() -> dict:
    return yaml.safe_load((PACKAGE / "config" / "schema.yaml").read_text())


def test_the_schema_feature_kinds_are_the_kind_modules():
    """A feature kind is one module in seqpipe/features/kinds/ (imported by name) plus its name in the schema."""
    kinds = {p.stem for p in (PACKAGE / "features" / "kinds").glob("*.py") if p.stem != "__init__"}
    assert set(schema()["$defs"]["feature_set"]["properties"]["kind"]["enum"]) == kinds


DATASET_PACKAGE = PACKAGE / "datasets"
DATASET_SHARED = {"__init__", "base", "registry"}  # the registry and the helpers every dataset module uses


def test_the_schema_dataset_lists_are_the_dataset_modules():
    """The datasets the schema accepts (`datasets:`, `demo:`, a feature set's `dataset`), the registered dataset
    modules and the demo generators name the same datasets."""
    from seqpipe.datasets import dataset_names
    from seqpipe.raw.demo import demo_datasets

    section = schema()["properties"]["datasets"]["properties"]
    demo = schema()["properties"]["demo"]["properties"]
    pattern = schema()["$defs"]["feature_set"]["properties"]["dataset"]["pattern"]
    assert set(section) == set(demo) == set(dataset_names()) == set(demo_datasets())
    assert set(pattern.strip("^$()").split("|")) - {"folder_[A-Za-z0-9_]+"} == set(dataset_names())


def test_every_dataset_module_registers_itself_and_has_a_demo_generator():
    """The registry is filled by the modules' own `@register_dataset` (no list of names anywhere): every module of
    seqpipe/datasets/ is registered under its file name, imports the shared helpers from `datasets.base` (never the
    package that imports it), and has its generator in seqpipe/raw/demo/<name>.py."""
    from seqpipe.datasets import DATASETS, dataset_names, get_dataset

    modules = {p.stem for p in DATASET_PACKAGE.glob("*.py")} - DATASET_SHARED
    assert set(dataset_names()) == set(DATASETS) == modules
    for name in modules:
        assert get_dataset(name).__name__ == f"seqpipe.datasets.{name}" and get_dataset(name).NAME == name
        assert "seqpipe.datasets" not in GRAPH[f"seqpipe.datasets.{name}"], f"datasets/{name}.py imports the package"
        assert (PACKAGE / "raw" / "demo" / f"{name}.py").is_file(), f"no demo generator raw/demo/{name}.py"
    init = (DATASET_PACKAGE / "__init__.py").read_text()
    assert "_MODULES" not in init and not any(f'"{n}"' in init for n in modules), "a list of dataset names in datasets/"


TINY_DATASET = '''"""A test dataset: every `*.tiny` file below the root is one item, all in train."""
from pathlib import Path

from seqpipe.datasets.base import DatasetLayoutError, Index, Item, walk_files
from seqpipe.datasets.registry import register_dataset

NAME, HOME, LICENSE_INFO, REMOTES = "tiny", "https://example.org/tiny", "CC0", {}


def find_root(path):
    for candidate in (Path(path), Path(path) / "tiny"):
        if any(candidate.glob("*.tiny")):
            return candidate
    raise DatasetLayoutError(f"tiny: no *.tiny file in {path}; point datasets.tiny.root at the folder holding them")


@register_dataset(NAME)
def index(root):
    return Index([Item(p.stem, p, "train") for p in walk_files(root) if p.suffix == ".tiny"], [])


def load_items(root):
    return index(root).items
'''

TINY_GENERATOR = '''from pathlib import Path


def generate(out_dir, n_items, seed, duration_s):
    root = Path(out_dir) / "tiny"
    root.mkdir(exist_ok=True)
    for i in range(n_items):
        (root / f"{seed}_{i}.tiny").write_text(str(i))
    return root
'''


def load_module(name: str, path: Path, source: str, monkeypatch):
    """Import `source`, written to `path`, as module `name`, as an import of it would (gone again after the test)."""
    import importlib.util
    import sys

    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_adding_a_dataset_is_its_module_its_demo_generator_and_its_schema_entries(tmp_path, monkeypatch):
    """A new dataset needs its module (registered by `@register_dataset`), its generator in raw/demo/<name>.py and
    its entries in the schema (`datasets:`, `demo:`, the feature set's pattern), no other list anywhere: the demo
    command generates it and writes its manifest, and the config check reads a `root` through its module."""
    import h5py

    from seqpipe.config import load as config
    from seqpipe.datasets import DATASETS, dataset_names, get_dataset
    from seqpipe.raw import demo, manifest

    monkeypatch.setitem(DATASETS, "tiny", None)  # the registry loses "tiny" again after the test
    DATASETS.pop("tiny")
    module = load_module("seqpipe.datasets.tiny", tmp_path / "tiny.py", TINY_DATASET, monkeypatch)
    load_module("seqpipe.raw.demo.tiny", tmp_path / "tiny_demo.py", TINY_GENERATOR, monkeypatch)
    assert "tiny" in dataset_names() and get_dataset("tiny") is module

    out = tmp_path / "raw"
    demo.main(["--dataset", "tiny", "--out", str(out), "--n-items", "3", "--manifest", str(tmp_path / "m.json")])
    assert sorted(manifest.read_manifest(tmp_path / "m.json")["files"]) == ["0_0.tiny", "0_1.tiny", "0_2.tiny"]

    block = schema()
    block["properties"]["datasets"]["properties"]["tiny"] = {"$ref": "#/$defs/dataset", "default": {}}
    block["properties"]["demo"]["properties"]["tiny"] = {"type": "object", "default": {}}
    dataset = block["$defs"]["feature_set"]["properties"]["dataset"]
    dataset["pattern"] = dataset["pattern"].replace("(", "(tiny|", 1)
    raw = {"datasets": {"tiny": {"source": "root", "root": str(out)}},
           "features": {"tiny_summary": {"dataset": "tiny", "kind": "midi_summary"}},
           "tasks": {"t": {"data_path": str(tmp_path / "t.h5"), "paradigm": "self_supervised", "mapping": "seq2seq",
                           "type": "reconstruction"}},
           "models": {"mlp": {"arch": "mlp"}}}
    h5py.File(tmp_path / "t.h5", "w").close()
    checked = config.validate_config(raw, block, files=True)
    assert checked["datasets"]["tiny"]["root"] == str(out) and checked["features"]["tiny_summary"]["dataset"] == "tiny"
    raw["datasets"]["tiny"]["root"] = str(tmp_path)
    try:
        config.validate_config(raw, block, files=True)
    except config.ConfigError as err:
        assert "datasets.tiny.root: tiny: no *.tiny file" in str(err)
    else:
        raise AssertionError("a root without the new dataset's layout was accepted")


def test_adding_a_model_is_one_decorated_builder_and_its_schema_block(monkeypatch):
    """A new arch needs `@register_model` on its builder and its block in the schema (enum entry, its keys), no other
    list anywhere: the config check accepts it, refuses a key it lacks, and the model builds and runs."""
    import torch
    from torch import nn

    from seqpipe.config import load as config
    from seqpipe.models import MODELS, build_model
    from seqpipe.models.registry import register_model

    monkeypatch.setitem(MODELS, "tiny", None)  # the registry loses "tiny" again after the test
    MODELS.pop("tiny")

    @register_model("tiny")
    def build(cfg, *, in_dim, seq_len, out_dim, mapping, out_len):  # noqa: ANN001, ANN202 - the registry's signature
        return nn.Sequential(nn.Flatten(), nn.Linear(in_dim * seq_len, out_dim * (out_len or 1)))

    block = schema()
    model = block["$defs"]["model"]
    model["properties"]["arch"]["enum"].append("tiny")
    model["allOf"].append({"if": {"properties": {"arch": {"const": "tiny"}}, "required": ["arch"]},
                           "then": {"propertyNames": {"enum": ["arch", "training"]}}})
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    task = next(name for name, t in raw["tasks"].items() if t.get("mapping") == "seq2static")
    raw["models"] = {"tiny": {"arch": "tiny"}}
    raw["tasks"] = {task: {**raw["tasks"][task], "models": ["tiny"]}}
    raw.pop("sweep", None)
    checked = config.validate_config(raw, block)
    assert checked["models"]["tiny"]["arch"] == "tiny"
    raw["models"]["tiny"]["hidden_size"] = 8
    try:
        config.validate_config(raw, block)
    except config.ConfigError as err:
        assert "models.tiny.hidden_size" in str(err)
    else:
        raise AssertionError("a key the new arch does not take was accepted")
    net = build_model({"name": "tiny", "arch": "tiny"}, in_dim=3, seq_len=4, out_dim=2, mapping="seq2static",
                      out_len=None, target_dim=None)
    assert net(torch.zeros(5, 4, 3)).shape == (5, 2)


MAX_FUNCTION_LINES = 60


def long_functions(limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """`module:function (N lines)` for every function or method of the package longer than `limit` lines
    (decorators and docstring included: what a reader holds in their head)."""
    found = []
    for module, path in sorted(MODULES.items()):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = node.end_lineno - start + 1
                if length > limit:
                    found.append(f"{module}:{node.name} ({length} lines)")
    return found


def test_the_length_check_finds_long_functions():
    assert long_functions(limit=5)  # the package has functions over 5 lines: the check reads them


def test_no_function_over_60_lines():
    assert long_functions() == [], "split these into named steps (issue 21)"

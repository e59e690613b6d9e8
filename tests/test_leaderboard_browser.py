"""The leaderboard page in a real headless browser (Debian's chromium): every figure renders and no
table is cut off. Skips, saying why, where chromium is not installed (`.ci/run` installs it as root)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from seqpipe.evaluation.report import leaderboard, load_metrics, write_leaderboard
from seqpipe.io import write_json, write_text

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium; .ci/run does it as root)")

# Runs in the page once everything has loaded; writes what it measured into the DOM for --dump-dom.
CHECKS = """
<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(img => ({alt: img.alt, complete: img.complete, width: img.naturalWidth}));
  const tables = [...document.querySelectorAll("table")].map(t => {
    const box = t.parentElement;
    return {cls: t.className, scroll: box.scrollWidth, client: box.clientWidth,
            right: t.getBoundingClientRect().right, page: document.documentElement.clientWidth};
  });
  const out = document.createElement("pre");
  out.id = "seqpipe-checks";
  out.textContent = JSON.stringify({images, tables});
  document.body.appendChild(out);
});
</script>
"""


def _record(task: str, model: str, seed: int, value: float, classification: bool) -> dict:
    base = {"task": task, "model": model, "seed": seed, "split": "test", "n_samples": 120}
    if classification:
        names = [f"class_{i}" for i in range(6)]
        cm = [[20 if i == j else 1 for j in range(6)] for i in range(6)]
        return base | {"task_type": "classification", "primary": "accuracy", "higher_is_better": True,
                       "metrics": {"accuracy": value, "balanced_accuracy": value, "macro_f1": value - 0.05},
                       "confusion_matrix": cm, "class_names": names, "intervals": {"accuracy": [value - 0.05, value + 0.04]}}
    return base | {"task_type": "reconstruction", "primary": "mse", "higher_is_better": False,
                   "metrics": {"mse": value, "mae": value ** 0.5}, "intervals": {"mse": [value * 0.8, value * 1.2]}}


def _scalars(epochs: int, scale: float) -> str:
    rows = ["epoch,split,loss"] + [f"{e},{s},{scale / (e + 1) ** 2 + (0.01 if s == 'val' else 0)}"
                                   for e in range(epochs) for s in ("train", "val")]
    return "\n".join(rows) + "\n"


@pytest.fixture
def page(tmp_path: Path) -> Path:
    """A leaderboard of two tasks, one spanning decades, with a long sweep-style model name."""
    long_name = "transformer--hidden_size-256--num_layers-4--dropout-0.1--lr-0.0003--weight_decay-0.0001"
    specs = [("groove_style", m, s, v, True) for m, s, v in
             [("baseline", 0, 0.21, ), ("gru", 0, 0.62), ("gru", 1, 0.66), (long_name, 0, 0.7)]]
    specs += [("groove_reconstruction", m, s, v, False) for m, s, v in
              [("baseline", 0, 0.03), ("mlp", 0, 0.0088), ("gru", 0, 0.00019)]]
    paths = []
    for task, model, seed, value, classification in specs:
        run = tmp_path / "runs" / task / model / str(seed)
        write_json(run / "metrics.json", _record(task, model, seed, value, classification))
        if model != "baseline":
            write_text(run / "scalars.csv", _scalars(8, 1.0 if classification else 0.05))
            write_json(run / "run.json", {"best_epoch": 6})
        paths.append(run / "metrics.json")
    records = load_metrics(paths)
    out = tmp_path / "report"
    write_leaderboard(leaderboard(records), records, out / "l.csv", out / "l.md", out / "leaderboard.html", out / "figures")
    return out / "leaderboard.html"


def _measure(html: Path, width: int, tmp_path: Path) -> dict:
    probe = tmp_path / f"probe_{width}.html"
    probe.write_text(html.read_text(encoding="utf-8").replace("</body>", CHECKS + "</body>"), encoding="utf-8")
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / f'profile_{width}'}",
        f"--window-size={width},900", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri(),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="seqpipe-checks">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"chromium exited {proc.returncode} without the page's checks; stderr:\n{proc.stderr[-3000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


@pytest.mark.parametrize("width", [1280, 800])
def test_every_figure_renders_and_no_table_is_cut_off(page: Path, tmp_path: Path, width: int) -> None:
    checks = _measure(page, width, tmp_path)
    images = checks["images"]
    assert len(images) == (1 + 2 + 3) + (1 + 2)  # per task: comparison, each trained model's curves, confusion matrices
    broken = [img["alt"] for img in images if not img["complete"] or img["width"] <= 0]
    assert not broken, f"figures that did not render: {broken}"
    assert len(checks["tables"]) == 4
    cut = [t for t in checks["tables"] if t["scroll"] > t["client"] or t["right"] > t["page"] + 1]
    assert not cut, f"tables wider than their container at {width}px: {cut}"

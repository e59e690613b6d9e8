"""`make readme-results`: the README's results table written from a leaderboard.csv between its markers (issue 20
item 12)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from seqpipe.evaluation.leaderboard import FIXED_COLUMNS, PAIRED
from seqpipe.evaluation.readme import BEGIN, END, results_table, with_table

REPO = Path(__file__).resolve().parents[1]
NAN = math.nan


def row(task: str, model: str, mean: float, ci=(NAN, NAN), beats=False, test=PAIRED, **extra) -> dict:
    base = dict.fromkeys(FIXED_COLUMNS, NAN)
    base.update(task=task, model=model, mean=mean, ci_low=ci[0], ci_high=ci[1], beats_baseline=beats, baseline_test=test,
                primary="accuracy" if task == "style" else "rmse", higher_is_better=task == "style", n_seeds=1)
    return {**base, **extra}


def leaderboard() -> pd.DataFrame:
    return pd.DataFrame([
        row("style", "mlp", 0.74639, (0.578, 0.908), beats=True),
        row("style", "gru", 0.8, (0.672, 0.91), beats=False),
        row("style", "baseline", 0.215, test=""),
        row("dyn", "gru", 0.224, song_rmse_mean=0.209, song_pearson_mean=0.37),
        row("dyn", "baseline", 0.32, test="", song_rmse_mean=0.27, song_pearson_mean=-0.14),
    ])


def test_the_table_from_a_leaderboard():
    table = results_table(leaderboard()).splitlines()
    assert table[0] == "| task | metric | mlp | gru | baseline |"
    assert table[2] == "| style | Accuracy ↑ | 0.746 [0.578, 0.908] ✓ | 0.800 [0.672, 0.910] | 0.215 |", table[2]
    assert table[3].startswith("| dyn | RMSE ↓ | | 0.224; per song 0.209 / r 0.370 | 0.320; per song 0.270 / r -0.140"), table[3]


def test_only_the_text_between_the_markers_changes():
    readme = f"intro\n\n{BEGIN}\nold table\n{END}\n\nafter\n"
    assert with_table(readme, "| new |\n") == f"intro\n\n{BEGIN}\n| new |\n{END}\n\nafter\n"
    with pytest.raises(ValueError, match="README.md: no <!-- results:begin -->"):
        with_table("no markers here", "| new |\n")


def test_the_command_writes_and_checks(tmp_path):
    (tmp_path / "README.md").write_text(f"# x\n{BEGIN}\n{END}\n")
    leaderboard().to_csv(tmp_path / "leaderboard.csv", index=False)
    run = lambda *extra: subprocess.run([sys.executable, "-m", "seqpipe.evaluation.readme", "README.md", "leaderboard.csv",  # noqa: E731
                                         *extra], cwd=tmp_path, capture_output=True, text=True)
    assert run("--check").returncode == 1
    assert run().returncode == 0 and "| style | Accuracy ↑ |" in (tmp_path / "README.md").read_text()
    assert run("--check").returncode == 0
    missing = subprocess.run([sys.executable, "-m", "seqpipe.evaluation.readme", "README.md", "nothing.csv"], cwd=tmp_path,
                             capture_output=True, text=True)
    assert missing.returncode == 1 and "nothing.csv: not found; run the pipeline first" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_the_readme_has_the_markers():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert text.count(BEGIN) == text.count(END) == 1 and text.index(BEGIN) < text.index(END)

"""benchmarks/scale.py runs the feature stage at two sizes through the CLI and prints its summary line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_scale_benchmark_measures_the_feature_stage(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "scale.py"), "--stages", "features", "--pieces", "6",
                           "--seconds", "6", "--factor", "3", "--keep", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert re.fullmatch(r"scale: peak RSS 10x/1x: features \d+\.\d\d, validate n/a, baseline n/a, train n/a, "
                        r"evaluate n/a, predict n/a \(goal <= 1\.3\)", lines[-1]), lines[-1]
    assert re.search(r"shards: \d+ jobs x 1 worker .* same bytes: True", proc.stdout), proc.stdout
    ratio = float(lines[-1].split("features ")[1].split(",")[0])
    assert ratio <= 1.3

"""Issue 25 item 1: a training or evaluation job imports only what it uses. A sweep's job lasts a few seconds,
and importing scikit-learn with scipy and pandas, or matplotlib, would be a large part of it. Real
`seqpipe train` and `seqpipe evaluate` processes, as the rules call them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from seqpipe.io import sha256_file
from seqpipe.tracking.setup import setup
from seqpipe.training.checkpoint import load
from tests.test_training import job, make_file

HEAVY = ("sklearn", "scipy", "pandas", "matplotlib", "mlflow")
# runs `seqpipe ARGS...` and prints, last, the heavy packages that process imported
PROBE = ("import json, sys\nfrom seqpipe.cli import main\ntry:\n    main(sys.argv[1:])\nfinally:\n"
         f"    print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n")


def imported(*args: str, cwd: Path) -> list[str]:
    """The heavy packages a real `seqpipe ARGS...` process imported (it must succeed)."""
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("task_type", ["regression", "classification"])
def test_train_and_evaluate_jobs_import_no_heavy_package_they_do_not_use(tmp_path, task_type):
    tracking = tmp_path / "tracking.json"
    setup(f"sqlite:///{tmp_path}/m.db", "exp", tracking)
    h5 = make_file(tmp_path / "d.h5", task_type)
    j, run = job(task_type, "mlp", epochs=2), tmp_path / "run"
    stamp = tmp_path / "train.sha256"  # the rule's code stamp: the resume key's code part, no source parsed
    stamp.write_text("0123  src/seqpipe/training/train.py\n")
    trained = imported("train", "--data", str(h5), "--job", json.dumps(j), "--tracking", str(tracking),
                       "--out-dir", str(run), "--code", str(stamp), cwd=tmp_path)
    assert trained == [] and (run / "figures/loss.png").stat().st_size > 0
    assert load(run / "last.pt")["resume_key"]["code"] == sha256_file(stamp)[:16]
    evaluated = imported("evaluate", "--data", str(h5), "--task", json.dumps(j["task"]), "--checkpoint", str(run / "best.pt"),
                         "--run", str(run / "run.json"), "--tracking", str(tracking), "--seed", "0",
                         "--out", str(run / "metrics.json"), cwd=tmp_path)
    # a classification's bootstrap keeps its per-sample confusion counts in a scipy.sparse matrix
    assert evaluated == (["scipy"] if task_type == "classification" else [])
    assert json.loads((run / "metrics.json").read_text())["metrics"]

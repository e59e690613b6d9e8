# Input functions and helpers shared by the rules. The logic lives in src/seqpipe (plan, config,
# codedeps) so that the tests and the DAG agree on every path.
import json
import os
import re
import sys
from pathlib import Path

SRC = Path(workflow.basedir) / "src"
sys.path.insert(0, str(SRC))

from seqpipe import codedeps, plan
from seqpipe.config import check_config, train_job, task_config
from seqpipe.sweep import apply_sweep
from seqpipe.tracking.invocation import ensure_invocation

check_config(config)
config.update(
    apply_sweep(config)
)  # a sweep grid becomes one model per cell, before any rule
ensure_invocation(
    os.environ
)  # one id per `snakemake` call: tags its MLflow runs as a group


envvars:
    "SEQPIPE_INVOCATION",


TRACKING = plan.TRACKING
REPORT = plan.report_files()


def code(*modules):
    """The stamp of the seqpipe source files the given modules run, written by the code_stamp
    rule; an input of every rule, so editing the code a rule runs reruns that rule."""
    return f"results/code/{'+'.join(modules)}.sha256"


def code_files(wildcards):
    """The source files behind a code stamp."""
    return list(codedeps.source_files(tuple(wildcards.modules.split("+")), str(SRC)))


def res(group, key):
    """A resource setting of a rule group, from resources.<group>.<key> in the config."""
    return config["resources"][group][key]


def job_resources(group, gpu=0):
    """A rule group's resources under Snakemake's names and HTCondor's own (the HTCondor plugin
    ignores mem_mb, disk_mb, gpu and runtime); memory grows with each retry."""
    return plan.job_resources(config["resources"][group], gpu)


def datasets_from(source):
    """Datasets whose raw files come from `source` (demo or root), as a wildcard pattern."""
    names = [n for n, d in config["datasets"].items() if d["source"] == source]
    return "|".join(names) or "NONE"


def demo_code(wildcards):
    """The demo rule's code: the entry point, this dataset's generator and the manifest."""
    return code(
        "seqpipe.data.demo",
        f"seqpipe.data.demo.{wildcards.dataset}",
        "seqpipe.data.manifest",
    )


def feature_code(wildcards):
    kind = config["features"][wildcards.feature_set]["kind"]
    dataset = config["features"][wildcards.feature_set]["dataset"]
    return code(
        "seqpipe.features.build",
        f"seqpipe.features.kinds.{kind}",
        f"seqpipe.datasets.{dataset}",
    )


def feature_params(wildcards):
    """The feature set's settings and the dataset's item limit (a change reruns the rule)."""
    return json.dumps(
        {
            "name": wildcards.feature_set,
            **config["features"][wildcards.feature_set],
            "limit": config["datasets"][wildcards.dataset]["limit"],
        },
        sort_keys=True,
    )


def task_h5(wildcards):
    return plan.task_h5(config, wildcards.task)


def task_sources(wildcards):
    """Feature set -> HDF5 file of each feature set a task draws on."""
    return plan.task_sources(config, wildcards.task)


def task_params(wildcards):
    return json.dumps(task_config(config, wildcards.task), sort_keys=True)


def train_params(wildcards):
    job = train_job(config, wildcards.task, wildcards.model, int(wildcards.seed))
    return json.dumps(job, sort_keys=True)


def all_metrics():
    return [f"{c.run_dir}/metrics.json" for c in plan.cells(config)]


def all_targets():
    return list(REPORT.values())

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
from seqpipe.data.manifest import tree_state
from seqpipe.features.shards import shard_count
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
            **{
                k: v
                for k, v in config["features"][wildcards.feature_set].items()
                if k != "shards"  # the shard count changes the jobs, not the file
            },
            "limit": config["datasets"][wildcards.dataset]["limit"],
        },
        sort_keys=True,
    )


def shard_params(wildcards):
    """A shard's settings: the feature set's, less the failure threshold (only the merge applies
    it, so raising it after a failed merge reruns the merge, not every shard)."""
    spec = json.loads(feature_params(wildcards))
    spec.pop("max_failed_fraction", None)
    return json.dumps(spec, sort_keys=True)


def feature_parts(wildcards):
    """The part files to merge into a feature set (none when it has one shard)."""
    n = shard_count(config, wildcards.feature_set)
    base = f"results/features/{wildcards.dataset}/.parts/{wildcards.feature_set}"
    return [f"{base}/{i}-of-{n}.h5" for i in range(n)] if n > 1 else []


def task_h5(wildcards):
    return plan.task_h5(config, wildcards.task)


def task_params(wildcards):
    return json.dumps(task_config(config, wildcards.task), sort_keys=True)


def train_params(wildcards):
    job = train_job(config, wildcards.task, wildcards.model, int(wildcards.seed))
    return json.dumps(job, sort_keys=True)


def all_metrics():
    return [f"{c.run_dir}/metrics.json" for c in plan.cells(config)]


def all_targets():
    return list(REPORT.values())

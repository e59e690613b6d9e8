# Input functions and helpers shared by the rules. The logic lives in src/seqpipe (plan, config,
# codedeps) so that the tests and the DAG agree on every path.
import functools
import inspect
import json
import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import SharedFSUsage

# The source files the code stamps hash (seqpipe itself is imported as installed: docs/architecture.md).
SRC = Path(workflow.basedir) / "src"

from seqpipe import codedeps
from seqpipe.config import plan
from seqpipe.config.load import train_job, task_config
from seqpipe.raw.manifest import tree_state
from seqpipe.features.shards import shard_count
from seqpipe.forced import ENV_VAR as FORCED_VAR, record_forced
from seqpipe.launcher import shell_prefix
from seqpipe.config.sweep import apply_sweep
from seqpipe.tracking.invocation import ensure_invocation
from seqpipe.worker import prepare as prepare_worker

# the config was checked as a whole in the Snakefile (seqpipe.config.load.checked_config)
config.update(
    apply_sweep(config)
)  # a sweep grid becomes one model per cell, before any rule
ensure_invocation(
    os.environ
)  # one id per `snakemake` call: tags its MLflow runs as a group


# Snakemake reads the signature of every input, params and resources function of every job
# (inspect.signature, twice per call); per_job reads it once, with the helper Snakemake's own ioutils
# use for this. Without that helper (another Snakemake), the signature is read per job as before.
try:
    from snakemake.common import overwrite_function_params
except ImportError:
    overwrite_function_params = None


def per_job(func):
    """A function Snakemake calls for every job, its signature read once (see above)."""
    if overwrite_function_params is not None:
        overwrite_function_params(func, inspect.signature(func).parameters)
    return func


envvars:
    "SEQPIPE_INVOCATION",


# The `seqpipe` each job calls is the one of the environment running this Snakemake (its folder
# first on the jobs' PATH, as activating it would), or the job environment's own under --sdm
# conda or apptainer (seqpipe.launcher). So `.venv/bin/snakemake` works without activating .venv.
shell.prefix(shell_prefix(workflow.deployment_settings.deployment_method))
TRACKING = plan.TRACKING
# A tracking outage left runs unlogged (the track_runs record lists them): without its record, this call's
# track_runs job runs again and logs them. Only the main process of a real run drops it: a dry run changes
# nothing, and the jobs (which read this file again) leave it alone.
DRY_RUN = any(a in ("-n", "--dry-run", "--dryrun") for a in sys.argv)
if workflow.is_main_process and not DRY_RUN and plan.tracking_pending(plan.TRACKED):
    os.remove(plan.TRACKED)
REPORT = plan.report_files(config)  # results/report[/<experiment>]
# The source folder as the rules see it: relative to the project, so a moved copy plans nothing.
SRC_REL = plan.project_path(SRC)
# Settings that cannot change any output reach the jobs through ONE environment variable, not as
# params (Snakemake reruns a job when its params, inputs or rule code change), so changing them
# reruns nothing: $SEQPIPE_RUNTIME, the JSON of seqpipe.config.types.Runtime (the result-neutral
# training settings, globally and per model, the run cache's section; docs/configuration.md).
RUNTIME = plan.runtime_settings(config)
os.environ["SEQPIPE_RUNTIME"] = RUNTIME.to_json()


# What the user forced (--forcerun/-R, --forceall, -f): the run cache computes those jobs again
# instead of restoring them (seqpipe.forced). Known once the DAG is built, so recorded when the
# main process starts the jobs; cluster jobs get it through envvars.
os.environ.setdefault(FORCED_VAR, "")


onstart:
    record_forced(workflow.dag_settings)
    # one machine: training and evaluation jobs fork from a worker that imported torch once (seqpipe.worker)
    if config["preload"] and workflow.local_exec:
        prepare_worker(
            os.getpid(),
            ".snakemake/log/seqpipe-worker.log",
            workflow.deployment_settings.deployment_method,
        )


envvars:
    "SEQPIPE_FORCED",
    "SEQPIPE_RUNTIME",


# `snakemake --report` draws every dependency of the DAG in its rule graph, where the code stamps
# (an input of every rule) would bury the data flow under arcs; a report runs no job, so it is
# built without them.
REPORT_ONLY = any(a == "--report" or a.startswith("--report=") for a in sys.argv)


def code(*modules):
    """The stamp of the seqpipe source files the given modules run, written by the code_stamp
    rule; an input of every rule, so editing the code a rule runs reruns that rule (none while
    `--report` only writes the report)."""
    if REPORT_ONLY:
        return []
    return f"results/code/{'+'.join(modules)}.sha256"


def code_files(wildcards):
    """The source files behind a code stamp, relative to the project."""
    return list(codedeps.source_files(tuple(wildcards.modules.split("+")), SRC_REL))


def dataset_code(*modules):
    """A code stamp input function that adds the dataset module the job runs (its remotes, parsing)."""
    return lambda wildcards: code(*modules, f"seqpipe.datasets.{wildcards.dataset}")


def res(group, key):
    """A resource setting of a rule group, from resources.<group>.<key> in the config."""
    return config["resources"][group][key]


def job_resources(group, gpu=0):
    """A rule group's resources under Snakemake's names and HTCondor's own (the HTCondor plugin
    ignores mem_mb, disk_mb, gpu and runtime); memory grows with each retry."""
    resources = plan.job_resources(config["resources"][group], gpu)
    pack = config["resources"][group].get("pack", 1)
    if gpu and pack > 1:
        # packed: asked when a job's resources are, after the executor is known (not when the rule is read);
        # unpacked, `gpu` everywhere (plan.gpu_count), a plain number: no function call per job
        resources["gpu"] = lambda wildcards: plan.gpu_count(gpu, pack, exec_place())
    return {k: per_job(v) if callable(v) else v for k, v in resources.items()}


def exec_place():
    """Where this Snakemake runs jobs, for a packed group's GPU count (plan.gpu_count): inside a
    cluster job, submitting to a cluster, or on this machine."""
    if workflow.remote_exec:
        return "inside"
    return "local" if workflow.local_exec else "submit"


def config_names(section):
    """The names under a config section (datasets, features), as a wildcard pattern."""
    return "|".join(re.escape(name) for name in sorted(config[section])) or "NONE"


def datasets_from(source):
    """Datasets whose raw files come from `source` (demo or root), as a wildcard pattern."""
    names = [n for n, d in config["datasets"].items() if d["source"] == source]
    return "|".join(names) or "NONE"


def raw_folder(wildcards):
    """The raw files of a demo or downloaded dataset, an input beside its manifest: a job that stages only its
    declared inputs (shared-fs-usage none) gets them. A `root` dataset is the user's own folder, read in place.
    """
    source = config["datasets"][wildcards.dataset]["source"]
    return [] if source == "root" else f"resources/raw/{wildcards.dataset}"


@per_job
def resume_dir(wildcards):
    """Where a training job keeps its resume state (outside its declared outputs, which Snakemake moves
    only after a success and deletes before a rerun). With the fs storage provider (profiles/slurm-nofs),
    under its prefix, the folder every node mounts, so the next attempt of a killed job, on any node,
    finds the checkpoint; else results/resume/ in the project. (The job-step Snakemake inside a SLURM job
    is told the file system is shared, so the storage provider, not shared-fs-usage, decides.)
    """
    base = f"results/resume/{wildcards.task}/{wildcards.model}/{wildcards.seed}"
    settings = workflow.storage_settings
    if settings.default_storage_provider == "fs" and settings.default_storage_prefix:
        return f"{settings.default_storage_prefix.rstrip('/')}/{base}"
    return base


def demo_code(wildcards):
    """The demo rule's code: the entry point, this dataset's generator and the manifest."""
    return code(
        "seqpipe.raw.demo",
        f"seqpipe.raw.demo.{wildcards.dataset}",
        "seqpipe.raw.manifest",
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


# Input functions run once per job (20,000 and more in a 10,000-cell sweep): what they compute per task or per
# (task, model) is computed once (functools.cache) and the seed put in last.
@functools.cache
def _task_h5(task):
    return plan.project_path(plan.task_h5(config, task))


@per_job
def task_h5(wildcards):
    return _task_h5(wildcards.task)


def task_sources(wildcards):
    """Feature set -> HDF5 file of each feature set a task draws on."""
    return plan.task_sources(config, wildcards.task)


@functools.cache
def _task_params(task, data_only):
    return json.dumps(
        plan.task_params(config, task, data_only=data_only), sort_keys=True
    )


@per_job
def task_params(wildcards):
    """The task as evaluation needs it (no model list)."""
    return _task_params(wildcards.task, False)


@per_job
def data_task_params(wildcards):
    """The task as validation and the baseline need it (no model list, no losses)."""
    return _task_params(wildcards.task, True)


_SEED = "__seed__"


@functools.cache
def _train_job(task, model):
    """The (task, model) job as sorted JSON with a stand-in for the seed, which train_params puts in."""
    job = {**plan.train_params(config, task, model, 0), "seed": _SEED}
    return json.dumps(job, sort_keys=True)


@per_job
def train_params(wildcards):
    """The training job's JSON (plan.train_params), the same text json.dumps(job, sort_keys=True) gives."""
    return _train_job(wildcards.task, wildcards.model).replace(
        f'"seed": "{_SEED}"', f'"seed": {int(wildcards.seed)}', 1
    )


@per_job
def tracking_input(wildcards):
    """The MLflow set-up, before the run logs into it. ancient() for a cell already trained with
    these exact settings (its run.json's config_hash), so a new store or experiment retrains
    nothing; a plain input for a cell that must train. Snakemake looks at a job below one that
    reruns only through that edge, and an ancient edge hides it: a new experiment's cells stayed
    unplanned until a second call. A cell not trained yet costs one stat (a new sweep's plan).
    """
    run = f"{plan.Cell(wildcards.task, wildcards.model, int(wildcards.seed)).run_dir}/run.json"
    if not os.path.exists(run):
        return TRACKING
    try:
        trained = json.loads(Path(run).read_text(encoding="utf-8"))["config_hash"]
    except (OSError, ValueError, KeyError, TypeError):
        trained = None
    # train hashes its job with the runtime settings put back
    current = plan.run_config_hash(json.loads(train_params(wildcards)), RUNTIME)
    return ancient(TRACKING) if trained == current else TRACKING


# whether any model starts from a checkpoint (else the train rule needs no init_from input function)
ANY_INIT_FROM = any(plan.init_from(config, model) for model in config["models"])


@functools.cache
def _init_from(model):
    return plan.init_from(config, model)


@per_job
def init_from(wildcards):
    """The checkpoint the model starts from, if any: an input, so its training job runs first."""
    return list(_init_from(wildcards.model))


def all_metrics():
    return run_files("metrics.json")


# Whether a job sees only the files it declares (profiles/*-nofs: no shared file system for inputs and
# outputs, or a default storage provider that stages them).
STAGED = workflow.storage_settings.default_storage_provider is not None or (
    SharedFSUsage.INPUT_OUTPUT not in workflow.storage_settings.shared_fs_usage
)


def staged_run_files(name):
    """run_files(name) where inputs are staged (STAGED), else none: the DAG already waits for every run through
    its metrics.json, and each declared file is one more lookup per cell when Snakemake plans (a 10,000-cell plan
    resolved 40,000 more)."""
    return run_files(name) if STAGED else []


def run_files(name):
    """One file of every run folder (a training or evaluation output)."""
    return [f"{c.run_dir}/{name}" for c in plan.cells(config)]


def runs_folder(wildcards, input):
    """The folder holding every run (results/runs, or where storage put the metrics inputs)."""
    if not input.metrics:
        return f"{plan.RESULTS}/runs"
    return Path(input.metrics[0]).parents[3].as_posix()


def report_templates():
    """The leaderboard's Jinja2 templates, relative to the project (a moved copy plans nothing)."""
    return [
        plan.project_path(p)
        for p in sorted((SRC / "seqpipe/evaluation/templates").glob("*.j2"))
    ]


def all_predictions():
    """predictions.h5 beside each run's and each baseline's metrics.json (the report's paired tests)."""
    runs = [f"{c.run_dir}/predictions.h5" for c in plan.cells(config)]
    return runs + [
        f"results/baselines/{t}/predictions.h5" for t in sorted(config["tasks"])
    ]


def all_targets():
    """The leaderboard, the MLflow record of every run (the track_runs rule) and, when training is
    packed, each pack's record (train_pack: what joins a pack's cells into one group job).
    """
    packed = [plan.PACK_RECORD.format(pack=k) for k in range(len(PACKS))]
    return [*(REPORT[kind] for kind in ("csv", "md", "html")), plan.TRACKED, *packed]


PACKS = plan.packs(config)  # resources.train.pack > 1: the cells in packs of that size


def pack_runs(wildcards):
    """The run.json of every cell of one pack (and a refusal of --group-components for train, which
    Snakemake sets after the Snakefile is read)."""
    components = workflow.group_settings.group_components.get("train", 1)
    if components > 1:
        raise WorkflowError(
            f"--group-components train={components}: with resources.train.pack: {res('train', 'pack')} in the "
            "config, each pack already goes to the cluster as one job (its train_pack record joins its cells), so "
            "this flag would put several packs in one job while each cell still reckons with 1/pack of the GPU; "
            "drop --group-components train=... (and any group-components entry for train in your profile) and set "
            "the cells per job with resources.train.pack alone."
        )
    if int(wildcards.pack) >= len(PACKS):
        raise WorkflowError(
            f"{plan.PACK_RECORD.format(pack=wildcards.pack)}: no such pack: resources.train.pack is "
            f"{res('train', 'pack')}, which cuts the config's {len(plan.cells(config))} cells into {len(PACKS)} "
            "packs (numbered from 0; none when pack is 1); ask for an existing pack's record, or set pack above 1."
        )
    return [f"{cell.run_dir}/run.json" for cell in PACKS[int(wildcards.pack)]]


def predict_runs(wildcards, name):
    """A file of every run of the task (metrics.json or model.pt)."""
    return [
        f"{c.run_dir}/{name}" for c in plan.cells(config) if c.task == wildcards.task
    ]


def prediction_targets():
    """Both tables of every (prediction, task) of the `predict:` block."""
    return [
        f"results/predictions/{name}/{task}.{table}"
        for name, entry in sorted(config["predict"].items())
        for task in entry["tasks"]
        for table in ("csv", "items.csv")
    ]

# MLflow: the store (SQLite by default) and the experiment are created once, before training jobs
# fan out; parallel jobs creating a new SQLite store at the same time would break it.


rule tracking_setup:
    """Create the MLflow store and experiment once, before training fans out (a down server is recorded, not fatal)."""
    input:
        code=code("seqpipe.tracking.setup"),
    output:
        TRACKING,
    log:
        "logs/tracking_setup.log",
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        **job_resources("data"),
    params:
        uri=config["mlflow"]["tracking_uri"] or "",
        experiment=config["mlflow"]["experiment"],
        log_model="--log-model" if config["mlflow"]["log_model"] else "--no-log-model",
        live="--live" if config["mlflow"]["live"] else "--no-live",
    shell:
        "seqpipe tracking-setup --uri={params.uri:q} --experiment {params.experiment:q}"
        " {params.log_model:q} {params.live:q} --out {output:q} > {log:q} 2>&1"


# After evaluation, one local job logs every run not yet in MLflow from its files (seqpipe.tracking.sync):
# the training and evaluation jobs import no MLflow (unless mlflow.live), a run already logged is not
# logged twice (results/mlflow/logged_runs.json: run.json, a training output, is never written), and a tracking outage leaves the runs pending (the job still succeeds; common.smk then
# removes its record at the next call's start, so that call tries again, as `seqpipe sync-mlflow` does).
rule track_runs:
    """Log every finished run to MLflow from its run folder (params, curves, test metrics, artifacts, model); an outage leaves them pending."""
    input:
        metrics=all_metrics(),
        # what it logs of each run, declared so that it is staged where there is no shared file system
        runs=staged_run_files("run.json"),
        scalars=staged_run_files("scalars.csv"),
        best=staged_run_files("best.pt"),
        models=staged_run_files("model.pt"),
        tracking=TRACKING,  # not ancient: a new store or experiment logs the pending runs into it (an ancient edge hid this job)
        code=code("seqpipe.tracking.sync"),
    output:
        plan.TRACKED,
    log:
        "logs/track_runs.log",
    benchmark:
        "results/benchmarks/track_runs.tsv"
    localrule: True
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        **job_resources("data"),
    params:
        runs=runs_folder,
        # which runs went to which store (by run folder and run.json): not an output, which Snakemake would delete
        ledger=f"{plan.RESULTS}/mlflow/logged_runs.json",
    shell:
        "seqpipe sync-mlflow --runs {params.runs:q} --tracking {input.tracking:q}"
        " --record {output:q} --ledger {params.ledger:q} > {log:q} 2>&1"

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
    shell:
        "seqpipe tracking-setup --uri={params.uri:q} --experiment {params.experiment:q}"
        " {params.log_model:q} --out {output:q} > {log:q} 2>&1"

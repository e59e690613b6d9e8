# Predictions: each entry of the `predict:` block labels a folder's files with the leaderboard's best
# run of each task it names (seqpipe.predict.choose), through the run's own feature set. The job
# reruns when a file of the folder is changed, added or removed (the folder's fingerprint is a param)
# and when a run of the task is retrained or re-evaluated (their model.pt and metrics.json are inputs).


rule predict:
    """Label a folder's files with the leaderboard's best run of a task: a window table and an item table."""
    input:
        metrics=lambda w: predict_runs(w, "metrics.json"),
        models=lambda w: predict_runs(w, "model.pt"),
        code=code("seqpipe.predict.command"),
    output:
        windows="results/predictions/{name}/{task}.csv",
        item_table="results/predictions/{name}/{task}.items.csv",
        choice="results/predictions/{name}/{task}.run.json",
    log:
        "logs/predict/{name}/{task}.log",
    wildcard_constraints:
        name="|".join(map(re.escape, config["predict"])) or "NONE",
    conda:
        "../../envs/train.yaml"
    threads: lambda w: config["predict"][w.name]["workers"]
    resources:
        **job_resources("evaluate"),
    params:
        folder=lambda w: config["predict"][w.name]["folder"],
        # path, size and mtime of every file of the folder: editing, adding or removing one reruns
        tree=lambda w: tree_state(config["predict"][w.name]["folder"]),
    shell:
        "seqpipe predict {params.folder:q} --best-of {input.metrics:q} --choice {output.choice:q}"
        " --workers {threads} --out {output.windows:q} > {log:q} 2>&1"

# Evaluation: the best checkpoint on the test split, and a trivial baseline per task on the same
# split; test metrics are added to the training job's MLflow run.


rule evaluate:
    """Score one trained model's best checkpoint on the task's test split, with bootstrap intervals and per-sample predictions."""
    input:
        h5=task_h5,
        best="results/runs/{task}/{model}/{seed}/best.pt",
        run="results/runs/{task}/{model}/{seed}/run.json",
        tracking=ancient(TRACKING),
        code=code("seqpipe.evaluation.evaluate"),
    output:
        metrics="results/runs/{task}/{model}/{seed}/metrics.json",
        predictions="results/runs/{task}/{model}/{seed}/predictions.h5",
    log:
        "logs/evaluate/{task}/{model}/{seed}.log",
    benchmark:
        "results/benchmarks/evaluate/{task}/{model}/{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: res("evaluate", "threads")
    resources:
        **job_resources("evaluate"),
    params:
        task=task_params,
    shell:
        "seqpipe evaluate --data {input.h5:q} --task {params.task:q} --checkpoint {input.best:q}"
        " --run {input.run:q} --tracking {input.tracking:q} --seed {wildcards.seed:q}"
        " --out {output.metrics:q} --predictions {output.predictions:q} > {log:q} 2>&1"


rule baseline:
    """Score the task's trivial baseline (majority class or train mean) on the same test split, for the leaderboard."""
    input:
        h5=task_h5,
        validation="results/validation/{task}.json",
        code=code("seqpipe.evaluation.baseline"),
    output:
        metrics="results/baselines/{task}/metrics.json",
        predictions="results/baselines/{task}/predictions.h5",
    log:
        "logs/baseline/{task}.log",
    benchmark:
        "results/benchmarks/baseline/{task}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: res("evaluate", "threads")
    resources:
        **job_resources("evaluate"),
    params:
        task=data_task_params,
    shell:
        "seqpipe baseline --data {input.h5:q} --task {params.task:q} --out {output.metrics:q}"
        " --predictions {output.predictions:q} > {log:q} 2>&1"

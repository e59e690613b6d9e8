# Evaluation: the best checkpoint on the test split, and a trivial baseline per task on the same
# split; test metrics are added to the training job's MLflow run.


rule evaluate:
    input:
        h5=task_h5,
        best="results/runs/{task}/{model}/{seed}/best.pt",
        run="results/runs/{task}/{model}/{seed}/run.json",
        tracking=TRACKING,
        code=code("seqpipe.evaluation.evaluate"),
    output:
        metrics="results/runs/{task}/{model}/{seed}/metrics.json",
    log:
        "logs/evaluate/{task}/{model}/{seed}.log",
    conda:
        "../../envs/train.yaml"
    threads: res("evaluate", "threads")
    resources:
        **job_resources("evaluate"),
    params:
        task=task_params,
        budget=config["training"]["memory_budget_mb"],
    shell:
        "seqpipe evaluate --data {input.h5:q} --task {params.task:q} --checkpoint {input.best:q}"
        " --memory-budget-mb {params.budget:q}"
        " --run {input.run:q} --tracking {input.tracking:q} --seed {wildcards.seed:q}"
        " --out {output.metrics:q} > {log:q} 2>&1"


rule baseline:
    input:
        h5=task_h5,
        validation="results/validation/{task}.json",
        code=code("seqpipe.evaluation.baseline"),
    output:
        metrics="results/baselines/{task}/metrics.json",
    log:
        "logs/baseline/{task}.log",
    conda:
        "../../envs/train.yaml"
    threads: res("evaluate", "threads")
    resources:
        **job_resources("evaluate"),
    params:
        task=task_params,
        budget=config["training"]["memory_budget_mb"],
    shell:
        "seqpipe baseline --data {input.h5:q} --task {params.task:q} --memory-budget-mb {params.budget:q}"
        " --out {output.metrics:q} > {log:q} 2>&1"

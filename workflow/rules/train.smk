# Training: one job per (task, model, seed); checkpoints, facts, figures and the MLflow run id in its folder.
# The resume state lives outside the declared outputs (Snakemake deletes those before it reruns an
# incomplete, failed or evicted job): a rerun continues from results/resume/... and clears it when done.


rule train:
    input:
        h5=task_h5,
        validation="results/validation/{task}.json",
        tracking=TRACKING,
        code=code("seqpipe.training.train"),
    output:
        best="results/runs/{task}/{model}/{seed}/best.pt",
        last="results/runs/{task}/{model}/{seed}/last.pt",
        model="results/runs/{task}/{model}/{seed}/model.pt",
        scalars="results/runs/{task}/{model}/{seed}/scalars.csv",
        figure=report(
            "results/runs/{task}/{model}/{seed}/figures/loss.png",
            category="Training runs",
            subcategory="{task}",
            labels={"model": "{model}", "seed": "{seed}", "figure": "loss per epoch"},
            caption="../report/run_loss.rst",
        ),
        run="results/runs/{task}/{model}/{seed}/run.json",
    log:
        "logs/train/{task}/{model}/{seed}.log",
    benchmark:
        "results/benchmarks/train/{task}/{model}/{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: res("train", "threads")
    resources:
        **job_resources("train", gpu=1),
    params:
        job=train_params,
        out_dir=lambda wildcards, output: Path(output.best).parent,
        resume_dir="results/resume/{task}/{model}/{seed}",
    shell:
        "seqpipe train --data {input.h5:q} --job {params.job:q} --tracking {input.tracking:q}"
        " --threads {threads} --out-dir {params.out_dir:q} --resume-dir {params.resume_dir:q} > {log:q} 2>&1"

# Training: one job per (task, model, seed); checkpoints, facts, figures and the MLflow run id in its folder.
# The resume state lives outside the declared outputs (Snakemake deletes those before it reruns an
# incomplete, failed or evicted job): a rerun continues from results/resume/... and clears it when done.
# Without a shared file system (profiles/slurm-nofs) it lives under the fs storage prefix instead, the
# folder every node mounts, so a killed job's next attempt on another node finds it (resume_dir).
# Through the run cache (seqpipe.runcache): a job whose params, data, code and starting checkpoint
# were trained before gets that model back instead of training again, and every model trained
# stays in the cache after Snakemake deletes it for a retrain (`seqpipe run-cache list`).
# The cache's settings and the result-neutral training settings (checkpoint_every, progress, ...)
# reach the job through one environment variable (SEQPIPE_RUNTIME; see common.smk), not
# as params, so changing them retrains nothing.
# Where runs are logged is not an input that reruns training: the MLflow store is ancient() for a
# cell already trained with its settings (set up first, but a new tracking URI or experiment sets
# up the new store and retrains nothing), a plain input for a cell that must train (tracking_input).


rule train:
    """Train one (task, model, seed): checkpoints, facts, figures and its MLflow run; resumes after a kill, restores from the run cache."""
    input:
        h5=task_h5,
        validation="results/validation/{task}.json",
        tracking=tracking_input,
        code=code("seqpipe.training.train"),
        init=init_from if ANY_INIT_FROM else [],  # no input function per job when no model starts from a checkpoint
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
    group:
        "train" if res("train", "pack") > 1 else None  # packed: joined per pack by train_pack into one cluster job
    conda:
        "../../envs/train.yaml"
    threads: res("train", "threads")
    resources:
        **job_resources("train", gpu=1),
    params:
        job=train_params,
        # from the outputs: where storage puts them without a shared file system
        out_dir=per_job(lambda wildcards, output: output.best.rpartition("/")[0]),
        events=per_job(
            lambda wildcards, output: f"{output.best.rpartition('/')[0]}/events.jsonl"
        ),
        resume_dir=resume_dir,  # on the storage mount without a shared file system
    shell:
        "seqpipe run-cache --kind train --params {params.job:q}"
        " --inputs {input.h5:q} {input.code:q} {input.init:q} --outputs {output:q} --extra {params.events:q} --"
        " seqpipe train --data {input.h5:q} --job {params.job:q} --tracking {input.tracking:q} --code {input.code:q}"
        " --threads {threads} --out-dir {params.out_dir:q} --resume-dir {params.resume_dir:q}"
        " --gpu-locks .snakemake/seqpipe-gpus --gpu-share {resources.gpu_share:q} > {log:q} 2>&1"


rule train_pack:
    """Record one pack's training spans (resources.train.pack > 1); in the train group, it joins the pack's cells into one cluster job whose job step runs them side by side."""
    input:
        runs=pack_runs,
        code=code("seqpipe.training.packing"),
    output:
        plan.PACK_RECORD,
    log:
        "logs/train_pack/{pack}.log",
    wildcard_constraints:
        pack=r"\d+",
    group:
        "train"  # only in the DAG when packed; the same GPU request as the cells (a group's string resources must agree)
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        **(job_resources("train", gpu=1) | {"runtime": 1}),
    shell:
        "seqpipe pack-record --runs {input.runs:q} --out {output:q} > {log:q} 2>&1"

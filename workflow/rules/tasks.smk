# Tasks drawing on several feature sets (datasets): their samples joined into one file,
# results/tasks/<task>.h5, with a domain id per sample (the feature set it came from).


rule assemble_task:
    """Join a multi-dataset task's feature sets into results/tasks/<task>.h5 with a domain id per sample and domain_names."""
    input:
        unpack(task_sources),
        code=code("seqpipe.taskfile.assemble"),
    output:
        h5="results/tasks/{task}.h5",
    log:
        "logs/assemble_task/{task}.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        **job_resources("data"),
    params:
        task=task_params,
        sources=lambda w: [f"{name}={path}" for name, path in task_sources(w).items()],
    shell:
        "seqpipe assemble-task --task {params.task:q}"
        " --source {params.sources:q}"
        " --out {output.h5:q} > {log:q} 2>&1"

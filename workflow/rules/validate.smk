# Validation: every task's HDF5 file is checked against its task type before any training starts.


rule validate:
    input:
        h5=task_h5,
        code=code("seqpipe.data.validate"),
    output:
        report="results/validation/{task}.json",
    log:
        "logs/validate/{task}.log",
    conda:
        "../../envs/data.yaml"
    threads: res("data", "threads")
    resources:
        **job_resources("data"),
    params:
        task=task_params,
        budget=config["training"]["memory_budget_mb"],
    shell:
        "seqpipe validate --data {input.h5:q} --task {params.task:q}"
        " --memory-budget-mb {params.budget:q} --out {output.report:q} > {log:q} 2>&1"

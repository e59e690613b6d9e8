# Validation: every task's HDF5 file is checked against its task type before any training starts.


rule validate:
    """Check a task's HDF5 file against its task type (shapes, dtypes, labels, leakage, domains) before any training."""
    input:
        h5=task_h5,
        code=code("seqpipe.taskfile.validate"),
    output:
        report="results/validation/{task}.json",
    log:
        "logs/validate/{task}.log",
    benchmark:
        "results/benchmarks/validate/{task}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: res("data", "threads")
    resources:
        **job_resources("data"),
    params:
        task=data_task_params,
    shell:
        "seqpipe validate --data {input.h5:q} --task {params.task:q}"
        " --out {output.report:q} > {log:q} 2>&1"

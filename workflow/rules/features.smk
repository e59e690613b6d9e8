# Feature extraction: raw files -> one HDF5 file per feature set, plus a report of skipped files.


rule features:
    input:
        manifest="resources/raw/{dataset}.manifest.json",
        code=feature_code,
    output:
        h5="results/features/{dataset}/{feature_set}.h5",
        skipped="results/features/{dataset}/{feature_set}.skipped.json",
    log:
        "logs/features/{dataset}/{feature_set}.log",
    benchmark:
        "results/benchmarks/features/{dataset}/{feature_set}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: res("features", "threads")
    resources:
        **job_resources("features"),
    params:
        spec=feature_params,
    shell:
        "seqpipe run-cache --kind features --params {params.spec:q}"
        " --inputs {input.manifest:q} {input.code:q} --outputs {output:q} --"
        " seqpipe features --manifest {input.manifest:q} --spec {params.spec:q}"
        " --workers {threads} --out {output.h5:q} --skipped {output.skipped:q} > {log:q} 2>&1"

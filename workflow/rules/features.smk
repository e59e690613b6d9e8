# Feature extraction: raw files -> one HDF5 file per feature set, plus a report of skipped files.
# A feature set with `shards: N` (default `auto`: one shard per 2,000 expected items) is
# extracted by N `features_shard` jobs, each writing a part file of its slice of the items, and
# merged by the `features` job; with one shard the `features` job extracts everything itself.
# Either way the HDF5 bytes are the same. The skipped report is declared as a log, so Snakemake
# keeps it when the job fails; the last good HDF5 is kept under results/features/.previous/.
rule features_shard:
    """Extract one shard (a slice of the manifest's items) of a sharded feature set into a part file."""
    input:
        manifest="resources/raw/{dataset}.manifest.json",
        raw=raw_folder,
        code=feature_code,
    output:
        part=temp(
            "results/features/{dataset}/.parts/{feature_set}/{shard}-of-{shards}.h5"
        ),
    log:
        "logs/features/{dataset}/{feature_set}/{shard}-of-{shards}.log",
    benchmark:
        "results/benchmarks/features/{dataset}/{feature_set}/{shard}-of-{shards}.tsv"
    wildcard_constraints:
        dataset=config_names("datasets"),
        feature_set=config_names("features"),
        shard=r"\d+",
        shards=r"\d+",
    conda:
        "../../envs/data.yaml"
    threads: res("features", "threads")
    resources:
        **job_resources("features"),
    params:
        spec=shard_params,
        shard="{shard}/{shards}",
    shell:
        "seqpipe features --manifest {input.manifest:q} --spec {params.spec:q}"
        " --shard {params.shard:q} --part {output.part:q} --workers {threads} > {log:q} 2>&1"


rule features:
    """Build one feature set's HDF5 file: extract every item (or merge the shards' parts) and report skipped files."""
    input:
        manifest="resources/raw/{dataset}.manifest.json",
        raw=raw_folder,
        code=feature_code,
        parts=feature_parts,
    output:
        h5="results/features/{dataset}/{feature_set}.h5",
    log:
        log="logs/features/{dataset}/{feature_set}.log",
        skipped="results/features/{dataset}/{feature_set}.skipped.json",
    benchmark:
        "results/benchmarks/features/{dataset}/{feature_set}.tsv"
    wildcard_constraints:
        # only configured names: a shard's part file (.parts/<set>/0-of-8.h5) is not a feature set
        dataset=config_names("datasets"),
        feature_set=config_names("features"),
    conda:
        "../../envs/data.yaml"
    threads: lambda w: 1 if feature_parts(w) else res("features", "threads")  # merge: 1
    resources:
        **job_resources("features"),
    params:
        spec=feature_params,
        # Snakemake deletes outputs before a job runs: the last good file is kept here
        previous="results/features/.previous/{dataset}/{feature_set}.h5",
    shell:
        "seqpipe run-cache --kind features --params {params.spec:q}"
        " --inputs {input.manifest:q} {input.code:q} --trees resources/raw/{wildcards.dataset:q}"
        " --outputs {output:q} --extra {log.skipped:q} --"
        " seqpipe features --manifest {input.manifest:q} --spec {params.spec:q}"
        " --workers {threads} --out {output.h5:q} --skipped {log.skipped:q}"
        " --previous {params.previous:q} --parts {input.parts:q} > {log.log:q} 2>&1"

# Raw datasets: generated offline (source: demo), downloaded (source: download) or indexed from
# the user's copy (source: root).
# Either way the output is resources/raw/<dataset>.manifest.json, which the features depend on.


rule demo:
    """Generate a dataset's offline demo copy in its real layout (MIDI or audio files plus metadata) and its manifest."""
    input:
        code=demo_code,
    output:
        raw=directory("resources/raw/{dataset}"),
        manifest="resources/raw/{dataset}.manifest.json",
    log:
        "logs/demo/{dataset}.log",
    wildcard_constraints:
        dataset=datasets_from("demo"),
    conda:
        "../../envs/data.yaml"
    threads: res("demo", "threads")
    resources:
        **job_resources("demo"),
    params:
        n_items=lambda w: config["demo"][w.dataset]["n_items"],
        duration=lambda w: config["demo"][w.dataset].get("duration_s", 20),
        seed=config["seed"],
    shell:
        "seqpipe demo --dataset {wildcards.dataset:q} --out {output.raw:q}"
        " --n-items {params.n_items:q} --duration {params.duration:q} --seed {params.seed:q}"
        " --workers {threads}"
        " --manifest {output.manifest:q} > {log:q} 2>&1"


rule download:
    """Download a dataset's archives (resumable, size and SHA-256 checked), extract them safely and write the manifest."""
    input:
        code=dataset_code("seqpipe.raw.download", "seqpipe.raw.manifest"),
    output:
        raw=directory("resources/raw/{dataset}"),
        manifest="resources/raw/{dataset}.manifest.json",
    log:
        "logs/download/{dataset}.log",
    wildcard_constraints:
        dataset=datasets_from("download"),
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        **job_resources("download"),
    params:
        # the archives stay in resources/downloads (not a declared output, so Snakemake never
        # deletes them): a rerun re-extracts, and an interrupted download resumes
        downloads="resources/downloads",
        base_url=lambda w: config["datasets"][w.dataset]["base_url"] or "",
    shell:
        "seqpipe download --dataset {wildcards.dataset:q} --downloads {params.downloads:q}"
        " --base-url={params.base_url:q} --out {output.raw:q} --manifest {output.manifest:q} > {log:q} 2>&1"


rule index_root:
    """Index a dataset copy you already have (`datasets.<name>.root`): list its files, checksums and skipped items."""
    input:
        code=dataset_code("seqpipe.raw.manifest"),
    output:
        # update(): a failing index keeps the last good manifest (Snakemake restores it), and an
        # unchanged one is not rewritten, so what was built from it stays up to date
        manifest=update("resources/raw/{dataset}.manifest.json"),
    log:
        "logs/index_root/{dataset}.log",
    wildcard_constraints:
        dataset=datasets_from("root"),
    conda:
        "../../envs/data.yaml"
    threads: res("data", "threads")
    resources:
        **job_resources("data"),
    params:
        root=lambda w: config["datasets"][w.dataset]["root"],
        # stats of what the dataset module indexes: adding, removing or replacing a file reindexes
        tree=lambda w: tree_state(config["datasets"][w.dataset]["root"], w.dataset),
    shell:
        "seqpipe manifest --dataset {wildcards.dataset:q} --root {params.root:q}"
        " --source root --out {output.manifest:q} > {log:q} 2>&1"

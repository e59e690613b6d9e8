# Code dependencies: the checksums of the source files each rule runs, so a code edit reruns
# exactly the rules that run that code (Snakemake does not track imported modules by itself).


rule code_stamp:
    """Checksum the seqpipe source files a group of rules runs, so a code edit reruns exactly those rules."""
    input:
        local(code_files),  # the sources on this machine, not in storage (shared-fs-usage none)
    output:
        "results/code/{modules}.sha256",
    log:
        "logs/code/{modules}.log",
    localrule: True
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        **job_resources("data"),
    params:
        src=SRC_REL,
    shell:
        "seqpipe code-stamp --src {params.src:q} --out {output:q} {input:q} > {log:q} 2>&1"

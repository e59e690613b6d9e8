# seqpipe: raw datasets -> features (HDF5) -> validation -> training -> evaluation -> report.
from snakemake.utils import min_version, validate

min_version("9")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    dataset="|".join(config["datasets"]),
    task="|".join(map(re.escape, config["tasks"])),
    model="|".join(map(re.escape, config["models"])),
    seed=r"\d+",
    modules=r"seqpipe[\w.+]*",


include: "workflow/rules/code.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/tasks.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/tracking.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),

# seqpipe: raw datasets -> features (HDF5) -> validation -> training -> evaluation -> report.
from snakemake.utils import min_version

min_version("9")

# seqpipe is imported as installed (`make install`: an editable install of this checkout's src); the
# jobs' `seqpipe` commands run the same installed package. To run another copy's code, install it or
# put its src on PYTHONPATH (docs/architecture.md).
from seqpipe.config.load import checked_config


configfile: "config.yaml"


# Before any job: --config overrides and an experiment file applied, every problem of the config
# reported at once (one line each; ConfigError), defaults filled in (seqpipe.config.load.checked_config).
_checked = checked_config(config, workflow.config_settings.config)
config.clear()
config.update(_checked)


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
include: "workflow/rules/predict.smk"


rule all:
    """Everything the configuration asks for: every run, baseline and the leaderboard, and the `predict:` block's tables."""
    default_target: True
    input:
        all_targets(),
        prediction_targets(),

"""The configuration stage: one schema, every check, the typed settings each job receives.

Modules, each importing only those before it: `base` (ConfigError, deep_merge) < `types` (the frozen
dataclasses a job receives: Task, Model, Training, TrainJob, Runtime) < `overrides` (command-line
overrides, experiment files) < `sweep` (sweeps) < `checks` (every check, one line per problem) <
`load` (the schema `schema.yaml`, defaults, `checked_config`, `load_config`, the jobs' settings) <
`plan` (the files the DAG builds, the rules' params). This `__init__` imports nothing, so a job that
only parses its settings (`seqpipe.config.types`) pays for no schema library.
"""

"""What the user forced on the command line (`--forcerun`/`-R`, `--forceall`/`-F`, `--force`/`-f`), for the run cache.

Snakemake reruns a forced job, but the job itself cannot tell it was forced: wrapped in the run
cache (`seqpipe run-cache`), it would restore the earlier outputs and compute nothing. The main
Snakemake process therefore writes what was forced into `SEQPIPE_FORCED` when it starts the
jobs (`onstart:`; the DAG settings are not known yet while the Snakefile is read), declared with
`envvars:` so that cluster jobs get it too, and the run cache does not read its cache for a
forced job; it still stores what the job computes. (`--no-hooks` skips `onstart:`, and with it
this record.) Not a rule parameter: forcing changes no output, so
it must not rerun anything by itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, MutableMapping

ENV_VAR = "SEQPIPE_FORCED"


def forced_setting(forcerun: Iterable[str] = (), forceall: bool = False, forcetargets: bool = False,
                   targets: Iterable[str] = ()) -> dict:
    """What a Snakemake call forces, from its DAG settings: rule names, everything, or its target files."""
    return {
        "rules": sorted(forcerun),
        "all": bool(forceall),
        "files": sorted(os.path.normpath(t) for t in targets) if forcetargets else [],
    }


def record_forced(dag_settings: object, environ: MutableMapping[str, str] | None = None) -> str:
    """Write what Snakemake's DAG settings (`workflow.dag_settings`) force into `SEQPIPE_FORCED`; returns it."""
    value = json.dumps(forced_setting(dag_settings.forcerun, dag_settings.forceall, dag_settings.forcetargets,
                                      dag_settings.targets))
    (os.environ if environ is None else environ)[ENV_VAR] = value
    return value


def is_forced(rule: str, outputs: Iterable[str], environ: Mapping[str, str] | None = None) -> bool:
    """Whether the user forced the job of `rule` writing `outputs` (from `SEQPIPE_FORCED`; unset or blank: no)."""
    raw = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    if not raw:
        return False
    forced = json.loads(raw)
    files = set(forced.get("files", []))
    return bool(forced.get("all")) or rule in forced.get("rules", []) or any(os.path.normpath(o) in files for o in outputs)

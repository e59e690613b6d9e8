"""One id per `snakemake` invocation, so its jobs' MLflow runs can be filtered and compared together.

Snakemake gives jobs nothing that identifies the invocation, and a cluster job re-parses the
Snakefile, so a value computed there would differ per job. The id therefore travels in the
environment: the main Snakemake process sets `SEQPIPE_INVOCATION` once (if the user has not) and
declares it with `envvars:`, which local jobs inherit and cluster executors pass on to each job.
A user may also set it (`SEQPIPE_INVOCATION=lr-sweep snakemake ...`) to name an invocation.
It is not a rule parameter on purpose: a parameter that changes every invocation would make
Snakemake rerun every job.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, MutableMapping
from datetime import datetime, timezone

ENV_VAR = "SEQPIPE_INVOCATION"
TAG = "seqpipe.invocation"


def new_invocation_id(now: datetime | None = None) -> str:
    """A sortable, readable, unique id: UTC time plus 6 random hex digits (`20250131T120000Z-1a2b3c`)."""
    now = now or datetime.now(timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def invocation_id(environ: Mapping[str, str] | None = None) -> str | None:
    """The invocation id from `SEQPIPE_INVOCATION`, or None when it is unset or blank."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    return value or None


def with_invocation(tags: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """`tags` plus the invocation tag from the environment, unless `tags` already carries one."""
    out = dict(tags)
    if TAG not in out and (value := invocation_id(environ)):
        out[TAG] = value
    return out


def ensure_invocation(environ: MutableMapping[str, str]) -> str:
    """Set `SEQPIPE_INVOCATION` in `environ` unless it is set (the Snakefile calls this once); returns the id."""
    if not invocation_id(environ):
        environ[ENV_VAR] = new_invocation_id()
    return environ[ENV_VAR]

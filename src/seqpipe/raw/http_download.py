"""Resumable, verified HTTP downloads: `download(url, dest, size=..., sha256=...)` fetches one file with these guarantees:

- **Nothing unverified at `dest`.** Bytes go to `<dest>.part`; only after the size and the
  SHA-256 match is the part renamed onto `dest` (`os.replace`, atomic). A mismatch deletes the
  part and raises with the expected and actual values.
- **No needless requests.** A `dest` that already has the expected size and SHA-256 is returned
  without contacting the server (so a rerun of the rule reuses the archives on disk).
- **Resume.** An existing `.part` (from an interrupted run, or from a connection cut during this
  one) is continued with `Range: bytes=N-`. A server that ignores `Range` (200) restarts from
  zero; a 416 means the part is complete (it is verified) or larger than the file (restart).
- **Retries.** Connection errors, timeouts, truncated bodies, 5xx, 408 and 429 are retried with
  exponential back-off (`backoff * 2**attempt` seconds), each attempt resuming from the bytes on
  disk. Other 4xx answers (404, 403, ...) fail at once with the status in the message.
- **Disk space** is checked against the bytes still to fetch before the transfer starts.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from seqpipe.io import sha256_file
from seqpipe.progress import progress

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 429})  # client-side statuses that mean "try again later"


class DownloadError(RuntimeError):
    """A download or an extraction failed; the message names the URL or file, what happened and what to do."""


class _Retryable(Exception):
    """An attempt failed in a way that another attempt (resuming from disk) may fix."""


# ----------------------------------------------------------------------------- download


@dataclass(frozen=True)
class _Job:
    """What one `download` call fetches, and how patiently."""

    url: str
    dest: Path
    size: int | None
    sha256: str | None
    chunk: int
    timeout: float

    @property
    def part(self) -> Path:
        return self.dest.with_name(self.dest.name + ".part")


def download(
    url: str,
    dest: Path,
    *,
    size: int | None,
    sha256: str | None,
    retries: int = 4,
    backoff: float = 1.0,
    chunk: int = 1 << 20,
    timeout: float = 30.0,
) -> Path:
    """Fetch `url` to `dest`, resuming and retrying, and return `dest` once its size and SHA-256 match.

    `size`/`sha256` may be None to skip that check (then an existing `dest` is trusted as is).
    `retries` is the number of extra attempts after the first; `timeout` applies to connecting
    and to each read.
    """
    job = _Job(url, Path(dest), size, sha256.lower() if sha256 else None, chunk, timeout)
    if job.dest.is_file() and _matches(job.dest, size, job.sha256):
        log.info("%s: already present with the expected size and SHA-256; not downloading", job.dest)
        return job.dest
    job.dest.parent.mkdir(parents=True, exist_ok=True)
    with requests.Session() as session:
        _transfer_with_retries(session, job, retries, backoff)
    _verify_part(job)
    os.replace(job.part, job.dest)
    log.info("%s: downloaded from %s and verified", job.dest, url)
    return job.dest


def _matches(path: Path, size: int | None, sha256: str | None) -> bool:
    """True when `path` has the expected size and SHA-256 (each skipped when None)."""
    if size is not None and path.stat().st_size != size:
        return False
    return sha256 is None or sha256_file(path) == sha256


def _transfer_with_retries(session: requests.Session, job: _Job, retries: int, backoff: float) -> None:
    """Run `_attempt` until the part is complete, sleeping `backoff * 2**n` between failed attempts."""
    for attempt in range(retries + 1):
        try:
            _attempt(session, job)
            return
        except (_Retryable, requests.ConnectionError, requests.Timeout) as err:
            reason = f"{type(err).__name__}: {err}"
            if attempt == retries:
                raise DownloadError(
                    f"{job.url}: download to {job.part} failed after {retries + 1} attempt(s); last error: {reason}. "
                    f"Check the network (and that the URL opens in a browser), then rerun: the "
                    f"{_part_size(job)} byte(s) already in {job.part.name} are kept and the download resumes"
                ) from err
            delay = backoff * 2**attempt
            log.warning("%s: %s; retrying in %.2f s (attempt %d of %d)", job.url, reason, delay, attempt + 2,
                        retries + 1)
            time.sleep(delay)


def _part_size(job: _Job) -> int:
    """Bytes already in the `.part` file (0 when there is none)."""
    return job.part.stat().st_size if job.part.exists() else 0


def _attempt(session: requests.Session, job: _Job) -> None:
    """One request: resume the part from its current size, or return at once if it is already complete."""
    offset = _part_size(job)
    if job.size is not None and offset > job.size:
        log.warning("%s: %d bytes, more than the expected %d; starting over", job.part, offset, job.size)
        job.part.unlink()
        offset = 0
    if job.size is not None and offset == job.size:
        return  # complete from an earlier run; verified by the caller
    if job.size is not None:
        _check_disk_space(job, job.size - offset)
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with session.get(job.url, headers=headers, stream=True, timeout=job.timeout) as response:
        if response.status_code == 416:
            _after_416(job, response, offset)
            return
        _raise_for_status(job, response)
        offset = _start_offset(job, response, offset)
        total = _total_bytes(response, offset)
        _check_expected_size(job, total)
        if job.size is None and total is not None:
            _check_disk_space(job, total - offset)
        _write_body(job, response, offset, total)


def _raise_for_status(job: _Job, response: requests.Response) -> None:
    """Raise `_Retryable` for 5xx/408/429, `DownloadError` for any other status but 200/206."""
    status = response.status_code
    if status in (200, 206):
        return
    what = f"HTTP {status} {response.reason or ''}".strip()
    if status >= 500 or status in RETRY_STATUS:
        raise _Retryable(f"server answered {what}")
    raise DownloadError(
        f"{job.url}: server answered {what} while downloading {job.dest.name}; expected 200 or 206. "
        f"The URL may have moved or need permission: check it in a browser, or download the file by hand "
        f"to {job.dest} (it is verified and used as is)"
    )


def _start_offset(job: _Job, response: requests.Response, offset: int) -> int:
    """The offset the body starts at: `offset` for a matching 206, 0 when the server sent the whole file."""
    if response.status_code == 200:
        if offset:
            log.warning("%s: server ignored the Range request; restarting from byte 0", job.url)
        return 0
    start = _content_range(response.headers.get("Content-Range", ""))[0]
    if start != offset:
        job.part.unlink(missing_ok=True)
        raise _Retryable(f"asked for bytes from {offset} but the server sent from {start}; restarting from byte 0")
    return offset


def _content_range(value: str) -> tuple[int | None, int | None]:
    """(first byte, total size) of a `Content-Range: bytes a-b/n` or `bytes */n` header; None where unknown."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value)
    if not match:
        return None, None
    start, total = match.groups()
    return (int(start) if start else None), (int(total) if total and total != "*" else None)


def _total_bytes(response: requests.Response, offset: int) -> int | None:
    """Size of the whole file from the headers (Content-Range total, else offset + Content-Length)."""
    if response.status_code == 206:
        total = _content_range(response.headers.get("Content-Range", ""))[1]
        if total is not None:
            return total
    length = response.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _check_expected_size(job: _Job, total: int | None) -> None:
    """Fail before transferring when the server announces a file of another size than expected."""
    if job.size is None or total is None or total == job.size:
        return
    job.part.unlink(missing_ok=True)
    raise DownloadError(
        f"{job.url}: the server offers {total:,} bytes for {job.dest.name}, expected {job.size:,}. "
        f"The file on the server changed or the URL is wrong; check the URL, or report it if it is the official one"
    )


def _after_416(job: _Job, response: requests.Response, offset: int) -> None:
    """Range not satisfiable: the part is complete (keep it for verification) or too long (delete, retry)."""
    total = _content_range(response.headers.get("Content-Range", ""))[1]
    expected = total if total is not None else job.size
    if offset and expected is not None and offset == expected:
        return
    job.part.unlink(missing_ok=True)
    raise _Retryable(
        f"server answered 416 for bytes={offset}- (file has {expected if expected is not None else 'unknown'} "
        "bytes); restarting from byte 0"
    )


def _check_disk_space(job: _Job, needed: int) -> None:
    """Raise when the folder of `dest` has less free space than the `needed` bytes still to fetch."""
    free = shutil.disk_usage(job.dest.parent).free
    if needed > free:
        raise DownloadError(
            f"{job.url}: not enough disk space for {job.dest.name}: {needed:,} bytes still to download, "
            f"{free:,} bytes free in {job.dest.parent}. Free some space there, or download to a folder on a "
            f"larger disk (--downloads)"
        )


def _write_body(job: _Job, response: requests.Response, offset: int, total: int | None) -> None:
    """Stream the body into the part (append from `offset`), with a progress bar; raise if it ends early."""
    length = response.headers.get("Content-Length")
    expected = int(length) if length and length.isdigit() else None
    received = 0
    with (
        open(job.part, "ab" if offset else "wb") as fh,
        progress(total, job.dest.name, unit="B", unit_scale=True, initial=offset) as bar,
    ):
        try:
            for block in response.iter_content(chunk_size=job.chunk):
                fh.write(block)
                received += len(block)
                bar.update(len(block))
        except requests.exceptions.ChunkedEncodingError as err:  # connection dropped mid-body
            raise _Retryable(f"connection lost after {offset + received:,} bytes ({err})") from err
        except OSError as err:  # disk full, quota, permissions: not fixed by retrying
            raise DownloadError(
                f"{job.url}: writing {job.part} failed after {offset + received:,} bytes ({err}); fix the disk "
                f"problem and rerun: the bytes already written are kept and the download resumes"
            ) from err
        fh.flush()
        os.fsync(fh.fileno())
    if expected is not None and received < expected:
        raise _Retryable(f"body ended after {received:,} of {expected:,} bytes")


def _verify_part(job: _Job) -> None:
    """Check the finished part's size, then its SHA-256; on a mismatch delete it and raise."""
    actual_size = job.part.stat().st_size
    if job.size is not None and actual_size != job.size:
        job.part.unlink()
        raise DownloadError(
            f"{job.url}: {job.dest.name} has {actual_size:,} bytes, expected {job.size:,}; the partial file was "
            f"deleted. Rerun to download it again; if this repeats, the file on the server changed: report it"
        )
    if job.sha256 is None:
        return
    actual = sha256_file(job.part)
    if actual != job.sha256:
        job.part.unlink()
        raise DownloadError(
            f"{job.url}: SHA-256 of {job.dest.name} is {actual}, expected {job.sha256}; the file was deleted. "
            f"Rerun to download it again; if this repeats, the file on the server changed: report it"
        )

"""Download dataset archives and unpack them safely: the `download` stage.

`download(url, dest, size=..., sha256=...)` fetches one file with these guarantees:

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

`safe_extract(archive, target)` unpacks `.zip`, `.tar`, `.tar.gz`/`.tgz` only after checking every
member: absolute paths, `..` that leaves `target`, links whose target leaves `target` (zip
symlinks are recognised from their mode bits), members reached through a link, and device files,
FIFOs or sockets are refused with nothing written. Extraction goes to a temporary folder beside
`target`, which is then renamed into place, so a failure never leaves a half-unpacked tree.

`fetch_dataset(name, downloads, out)` does both for every archive of a dataset's `REMOTES` and
returns the dataset root inside `out`. One process per `dest` at a time: two concurrent downloads
of the same file would share its `.part` (Snakemake never runs the same job twice at once).
"""

from __future__ import annotations

import argparse
import logging
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import urlsplit

import requests

from seqpipe.datasets import dataset_names, get_dataset
from seqpipe.io import sha256_file
from seqpipe.progress import progress

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 429})  # client-side statuses that mean "try again later"
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


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


# ----------------------------------------------------------------------------- safe extraction


@dataclass(frozen=True)
class _Member:
    """One archive member, the same for zip and tar: its name, kind and (for links) its link target."""

    name: str
    kind: str  # "file", "dir", "symlink", "hardlink" or "special"
    link: str = ""


def safe_extract(archive: Path, target: Path) -> list[Path]:
    """Unpack `archive` into `target` after checking every member; return the extracted files and links.

    Top-level entries of the archive replace entries of the same name already in `target`; other
    entries of `target` stay. On any refusal or error nothing is written to `target`.
    """
    archive, target = Path(archive), Path(target)
    opener = _opener(archive)
    try:
        with opener(archive) as handle:
            members = _zip_members(handle) if isinstance(handle, zipfile.ZipFile) else _tar_members(handle)
            _check_members(archive, members)
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".extract", dir=target.parent))
            try:
                _unpack(handle, members, staging, archive)
                return _move_into_place(staging, target, members)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as err:
        if isinstance(err, FileNotFoundError) and not archive.exists():
            raise DownloadError(f"{archive}: archive not found; run the download first") from err
        raise DownloadError(
            f"{archive}: could not extract into {target} ({type(err).__name__}: {err}); nothing was written there. "
            f"If the archive is damaged, delete it and rerun the download"
        ) from err


def _opener(archive: Path) -> Callable[[Path], zipfile.ZipFile | tarfile.TarFile]:
    """`zipfile.ZipFile` or `tarfile.open` by the archive's suffix; refuse other types."""
    name = archive.name.lower()
    if name.endswith(".zip"):
        return lambda path: zipfile.ZipFile(path)
    if name.endswith(TAR_SUFFIXES):
        return lambda path: tarfile.open(path, "r:*")
    raise DownloadError(f"{archive}: unsupported archive type; expected .zip, .tar, .tar.gz or .tgz")


def _zip_members(zf: zipfile.ZipFile) -> list[_Member]:
    """Zip members as `_Member`s; symlinks and special files are told apart by the Unix mode bits."""
    members = []
    for info in zf.infolist():
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            members.append(_Member(info.filename, "symlink", zf.read(info).decode("utf-8", "replace")))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            members.append(_Member(info.filename, "special"))
        else:
            members.append(_Member(info.filename, "dir" if info.is_dir() else "file"))
    return members


def _tar_members(tf: tarfile.TarFile) -> list[_Member]:
    """Tar members as `_Member`s."""
    members = []
    for info in tf.getmembers():
        if info.issym():
            members.append(_Member(info.name, "symlink", info.linkname))
        elif info.islnk():
            members.append(_Member(info.name, "hardlink", info.linkname))
        elif info.isdir():
            members.append(_Member(info.name, "dir"))
        elif info.isfile():
            members.append(_Member(info.name, "file"))
        else:
            members.append(_Member(info.name, "special"))
    return members


def _check_members(archive: Path, members: list[_Member]) -> None:
    """Raise `DownloadError` naming the first unsafe member; nothing has been written yet."""
    links = {_normal(m.name) for m in members if m.kind in ("symlink", "hardlink")}
    for member in members:
        problem = _member_problem(member, links)
        if problem:
            raise DownloadError(
                f"{archive}: refusing to extract member {member.name!r}: {problem}; nothing was extracted. "
                f"The archive is not the expected one or was tampered with: delete it, download it again "
                f"from the official source, and report it if this repeats"
            )


def _member_problem(member: _Member, links: set[str]) -> str | None:
    """Why `member` is unsafe, or None when it may be extracted."""
    if member.kind == "special":
        return "it is a device file, FIFO or socket, expected a regular file, folder or link"
    if not member.name or "\x00" in member.name:
        return "its name is empty or holds a NUL byte"
    if _is_absolute(member.name):
        return "it has an absolute path, expected a path relative to the target folder"
    problem = _walk_problem(_posix(member.name), links)
    if problem:
        return f"its path {problem}"
    if member.kind in ("symlink", "hardlink"):
        return _link_problem(member, links)
    return None


def _link_problem(member: _Member, links: set[str]) -> str | None:
    """Why a link's target is unsafe (empty, absolute, leaving the target folder), or None.

    A symlink's target is read from the link's folder, a tar hard link's from the archive root.
    """
    what = "symlink" if member.kind == "symlink" else "hard link"
    if not member.link:
        return f"it is a {what} with an empty target"
    if _is_absolute(member.link):
        return f"it is a {what} to the absolute path {member.link!r}, which leaves the target folder"
    base = posixpath.dirname(_normal(member.name)) if member.kind == "symlink" else ""
    problem = _walk_problem(posixpath.join(base, _posix(member.link)), links)
    return f"it is a {what} to {member.link!r}, whose target {problem}" if problem else None


def _walk_problem(relative: str, links: set[str]) -> str | None:
    """Follow a relative POSIX path component by component from the target folder.

    Returns why it is unsafe: it climbs above the target folder with `..`, or it passes through
    one of the archive's own links (whose real place the lexical path cannot know); else None.
    """
    parts: list[str] = []
    components = [c for c in relative.split("/") if c not in ("", ".")]
    for index, component in enumerate(components):
        if component == "..":
            if not parts:
                return "leads outside the target folder with '..'"
            parts.pop()
            continue
        parts.append(component)
        prefix = "/".join(parts)
        if prefix in links and index < len(components) - 1:
            return f"goes through the link {prefix!r}, which could lead outside the target folder"
    return None


def _posix(name: str) -> str:
    """A member name with `\\` read as a separator too (some zips are written on Windows)."""
    return name.replace("\\", "/")


def _normal(name: str) -> str:
    """The normalised relative path of a member (`a/./b/` → `a/b`)."""
    return posixpath.normpath(_posix(name)).lstrip("/")


def _is_absolute(name: str) -> bool:
    """True for `/x`, `\\x`, `C:x` or `C:\\x`."""
    return PurePosixPath(_posix(name)).is_absolute() or bool(PureWindowsPath(name).drive)


def _unpack(handle: zipfile.ZipFile | tarfile.TarFile, members: list[_Member], staging: Path, archive: Path) -> None:
    """Write the (already checked) members into the empty `staging` folder."""
    if isinstance(handle, zipfile.ZipFile):
        _unpack_zip(handle, members, staging, archive)
    elif hasattr(tarfile, "data_filter"):
        handle.extractall(staging, filter="data")
    else:  # Python without extraction filters: our own checks above are the safeguard
        handle.extractall(staging)  # noqa: S202
    _check_tree_inside(staging, archive)


def _unpack_zip(zf: zipfile.ZipFile, members: list[_Member], staging: Path, archive: Path) -> None:
    """Extract zip members one by one (files streamed, symlinks as real symlinks)."""
    for info, member in zip(zf.infolist(), members, strict=True):
        path = staging / _normal(member.name)
        _check_inside(path.parent, staging, archive)
        if member.kind == "dir":
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.is_file():
            path.unlink()  # a later duplicate replaces the earlier one, as unzip does
        if member.kind == "symlink":
            os.symlink(member.link, path)
            continue
        with zf.open(info) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def _check_inside(path: Path, staging: Path, archive: Path) -> None:
    """Refuse `path` when it (as far as it exists) resolves outside `staging`."""
    root = os.path.realpath(staging)
    resolved = os.path.realpath(path)  # unlike Path.resolve, no error on a link loop
    if os.path.commonpath([root, resolved]) != root:
        raise DownloadError(
            f"{archive}: extracted entry {os.path.relpath(path, staging)} resolves to {resolved}, outside the "
            f"target folder; nothing was extracted. Delete the archive and download it again"
        )


def _check_tree_inside(staging: Path, archive: Path) -> None:
    """Last safeguard after unpacking: every extracted path must resolve inside `staging`."""
    for folder, dirs, files in os.walk(staging):
        for name in dirs + files:
            _check_inside(Path(folder) / name, staging, archive)


def _move_into_place(staging: Path, target: Path, members: list[_Member]) -> list[Path]:
    """Rename the staged tree onto `target` (whole folder if new, else entry by entry); list the files."""
    if not target.exists():
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; give the folder the usual mode
        os.replace(staging, target)
    else:
        if not target.is_dir():
            raise DownloadError(f"{target}: exists and is not a folder; remove it and rerun the download")
        for entry in sorted(staging.iterdir()):
            _replace_entry(entry, target / entry.name)
    names = dict.fromkeys(_normal(m.name) for m in members if m.kind != "dir")
    return [target / name for name in names]


def _replace_entry(new: Path, old: Path) -> None:
    """Put `new` at `old`, replacing what is there (moved aside first, deleted after)."""
    if not (old.exists() or old.is_symlink()):
        os.replace(new, old)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{old.name}.", suffix=".old", dir=old.parent))
    os.replace(old, aside / old.name)
    os.replace(new, old)
    shutil.rmtree(aside)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------- datasets


def remote_url(url: str, base_url: str | None) -> str:
    """`url`, or `base_url` + the file name of `url` when a base is given (mirrors, local test servers)."""
    if not base_url:
        return url
    return f"{base_url.rstrip('/')}/{posixpath.basename(urlsplit(url).path)}"


def fetch_dataset(name: str, downloads: Path, out: Path, *, base_url: str | None = None) -> Path:
    """Download every archive of dataset `name` into `downloads`, extract each into `out`, return the root.

    `base_url` replaces the scheme, host and folder of every URL in the dataset's `REMOTES`
    (`https://host/a/b/file.zip` → `<base_url>/file.zip`): a mirror, or a local server in tests.
    Sizes and SHA-256 checksums are always those of `REMOTES`.
    """
    module = get_dataset(name)
    downloads, out = Path(downloads), Path(out)
    for key, remote in module.REMOTES.items():
        url = remote_url(remote["url"], base_url)
        log.info("%s/%s: %s", name, key, url)
        archive = download(url, downloads / remote["filename"], size=remote["bytes"], sha256=remote["sha256"])
        safe_extract(archive, out)
    return module.find_root(out)


def main(argv: list[str] | None = None) -> None:
    """`seqpipe download --dataset NAME --out DIR [--downloads DIR] [--manifest FILE] [--base-url URL]`"""
    parser = argparse.ArgumentParser(prog="seqpipe download", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, choices=dataset_names(), help="the dataset to download")
    parser.add_argument("--downloads", default="resources/downloads", help="folder for the archives (kept, reused)")
    parser.add_argument("--out", required=True, help="folder to extract the archives into")
    parser.add_argument("--manifest", help="also write the manifest of the extracted files here")
    parser.add_argument("--base-url", help="replace scheme://host/folder of every archive URL (mirror)")
    args = parser.parse_args(argv)
    root = fetch_dataset(args.dataset, Path(args.downloads), Path(args.out), base_url=args.base_url)
    if args.manifest:
        from seqpipe.data.manifest import build_manifest, write_manifest

        write_manifest(build_manifest(args.dataset, root, "download"), args.manifest)

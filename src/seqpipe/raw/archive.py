"""Safe archive extraction: `safe_extract(archive, target)` unpacks `.zip`, `.tar`, `.tar.gz`/`.tgz` only after checking every
member: absolute paths, `..` that leaves `target`, links whose target leaves `target` (zip
symlinks are recognised from their mode bits), members reached through a link, and device files,
FIFOs or sockets are refused with nothing written. Extraction goes to a temporary folder beside
`target`, which is then renamed into place, so a failure never leaves a half-unpacked tree.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from seqpipe.raw.http_download import DownloadError

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


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

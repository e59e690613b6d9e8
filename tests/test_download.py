"""seqpipe.raw.download against a real HTTP server on 127.0.0.1 serving archives built here."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import random
import re
import shutil
import stat
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pretty_midi
import pytest
import soundfile

from seqpipe.raw import download as dl
from seqpipe.raw.download import DownloadError, download, fetch_dataset, remote_url, safe_extract
from seqpipe.datasets import deam, groove, maestro

# ----------------------------------------------------------------------------- local HTTP server


@dataclass
class Behaviour:
    """How the test server misbehaves; every field is reset per test by the fixture."""

    root: Path
    requests: list[dict] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in turn before any file is served
    cut_after: int | None = None  # first request only: send this many body bytes, then drop the connection
    delay_first: float = 0.0  # first request only: wait this long before answering
    ignore_range: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class Handler(BaseHTTPRequestHandler):
    """Serves files of `server.behaviour.root`, with `Range` support and scripted failures."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        how: Behaviour = self.server.behaviour  # type: ignore[attr-defined]
        with how.lock:
            first = not how.requests
            how.requests.append({"path": self.path, "range": self.headers.get("Range")})
            status = how.statuses.pop(0) if how.statuses else None
        if first and how.delay_first:
            time.sleep(how.delay_first)
        if status is not None:
            self._send_empty(status)
            return
        path = how.root / self.path.lstrip("/")
        if not path.is_file():
            self._send_empty(404)
            return
        self._send_file(path.read_bytes(), how, cut=how.cut_after if first else None)

    def _send_empty(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_file(self, data: bytes, how: Behaviour, cut: int | None) -> None:
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(match.group(1)) if match and not how.ignore_range else 0
        if match and not how.ignore_range and start >= len(data):
            self._send_empty(416, {"Content-Range": f"bytes */{len(data)}"})
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # a client that timed out: not our concern
        pass


@dataclass
class Server:
    url: str
    how: Behaviour

    def publish(self, name: str, data: bytes) -> str:
        """Serve `data` as `/name`; return its URL."""
        path = self.how.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return f"{self.url}/{name}"


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[Server]:
    how = Behaviour(root=tmp_path / "www")
    how.root.mkdir()
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.behaviour = how  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", how)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture()
def dest(tmp_path: Path) -> Path:
    return tmp_path / "downloads" / "file.bin"


DATA = random.Random(0).randbytes(300_000)
SHA = hashlib.sha256(DATA).hexdigest()
FAST = dict(backoff=0.01, chunk=16_384, timeout=5.0)


def part_of(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------- download


def test_clean_download_is_verified_and_leaves_no_part(server: Server, dest: Path) -> None:
    url = server.publish("file.bin", DATA)
    assert download(url, dest, size=len(DATA), sha256=SHA, **FAST) == dest
    assert dest.read_bytes() == DATA
    assert not part_of(dest).exists()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o666 & ~umask()
    assert [r["range"] for r in server.how.requests] == [None]


def test_download_logs_its_progress_when_not_on_a_terminal(server: Server, dest: Path, caplog) -> None:
    caplog.set_level("INFO", logger="seqpipe.progress")
    url = server.publish("file.bin", DATA)
    download(url, dest, size=len(DATA), sha256=SHA, **FAST)
    [line] = [r.getMessage() for r in caplog.records if r.name == "seqpipe.progress"]
    assert line.startswith("file.bin") and "100%" in line and "B/s" in line


def test_transfer_cut_midway_resumes_with_range(server: Server, dest: Path) -> None:
    url = server.publish("file.bin", DATA)
    server.how.cut_after = 100_000
    download(url, dest, size=len(DATA), sha256=SHA, **FAST)
    assert dest.read_bytes() == DATA
    first, second = server.how.requests
    assert first["range"] is None
    resumed_at = int(re.fullmatch(r"bytes=(\d+)-", second["range"]).group(1))
    assert 0 < resumed_at <= 100_000


def test_part_from_an_earlier_run_is_resumed(server: Server, dest: Path) -> None:
    url = server.publish("file.bin", DATA)
    dest.parent.mkdir(parents=True)
    part_of(dest).write_bytes(DATA[:12_345])
    download(url, dest, size=len(DATA), sha256=SHA, **FAST)
    assert dest.read_bytes() == DATA
    assert [r["range"] for r in server.how.requests] == ["bytes=12345-"]


def test_server_ignoring_range_restarts_from_zero(server: Server, dest: Path) -> None:
    url = server.publish("file.bin", DATA)
    server.how.ignore_range = True
    dest.parent.mkdir(parents=True)
    part_of(dest).write_bytes(b"x" * 5_000)  # wrong bytes: appending the full body would corrupt the file
    download(url, dest, size=len(DATA), sha256=SHA, **FAST)
    assert dest.read_bytes() == DATA
    assert [r["range"] for r in server.how.requests] == ["bytes=5000-"]


def test_416_with_a_complete_part_verifies_it(server: Server, dest: Path) -> None:
    url = server.publish("file.bin", DATA)
    dest.parent.mkdir(parents=True)
    part_of(dest).write_bytes(DATA)
    download(url, dest, size=None, sha256=SHA, **FAST)  # size unknown: the server is asked
    assert dest.read_bytes() == DATA
    assert len(server.how.requests) == 1


def test_416_with_a_too_long_part_restarts(server: Server, dest: Path) -> None:
    url = server.publish("file.bin", DATA)
    dest.parent.mkdir(parents=True)
    part_of(dest).write_bytes(DATA + b"junk")
    download(url, dest, size=None, sha256=SHA, **FAST)
    assert dest.read_bytes() == DATA
    assert [r["range"] for r in server.how.requests] == [f"bytes={len(DATA) + 4}-", None]


def test_complete_part_with_known_size_needs_no_request(server: Server, dest: Path) -> None:
    url = server.publish("file.bin", DATA)
    dest.parent.mkdir(parents=True)
    part_of(dest).write_bytes(DATA)
    download(url, dest, size=len(DATA), sha256=SHA, **FAST)
    assert dest.read_bytes() == DATA and server.how.requests == []


def test_wrong_checksum_names_both_hashes_and_leaves_nothing(server: Server, dest: Path) -> None:
    url = server.publish("file.bin", DATA)
    expected = "ab" * 32
    with pytest.raises(DownloadError) as err:
        download(url, dest, size=len(DATA), sha256=expected, **FAST)
    message = str(err.value)
    assert expected in message and SHA in message and url in message
    assert not dest.exists() and not part_of(dest).exists()


def test_size_announced_by_server_differs(server: Server, dest: Path) -> None:
    url = server.publish("file.bin", DATA)
    with pytest.raises(DownloadError, match=r"300,000 bytes.*expected 299,999"):
        download(url, dest, size=len(DATA) - 1, sha256=SHA, **FAST)
    assert not dest.exists() and not part_of(dest).exists()


def test_404_fails_at_once(server: Server, dest: Path) -> None:
    with pytest.raises(DownloadError, match="404") as err:
        download(f"{server.url}/missing.zip", dest, size=10, sha256=None, retries=3, backoff=0.01)
    assert "missing.zip" in str(err.value)
    assert len(server.how.requests) == 1 and not dest.exists()


def test_403_fails_at_once(server: Server, dest: Path) -> None:
    url = server.publish("file.bin", DATA)
    server.how.statuses = [403]
    with pytest.raises(DownloadError, match="403"):
        download(url, dest, size=len(DATA), sha256=SHA, retries=3, backoff=0.01)
    assert len(server.how.requests) == 1


def test_5xx_is_retried_then_succeeds(server: Server, dest: Path) -> None:
    url = server.publish("file.bin", DATA)
    server.how.statuses = [500, 503]
    download(url, dest, size=len(DATA), sha256=SHA, **FAST)
    assert dest.read_bytes() == DATA and len(server.how.requests) == 3


def test_5xx_forever_gives_up_after_the_retries(server: Server, dest: Path) -> None:
    url = server.publish("file.bin", DATA)
    server.how.statuses = [502] * 10
    with pytest.raises(DownloadError, match=r"after 3 attempt\(s\).*502") as err:
        download(url, dest, size=len(DATA), sha256=SHA, retries=2, **FAST)
    assert url in str(err.value) and len(server.how.requests) == 3 and not dest.exists()


def test_timeout_is_retried(server: Server, dest: Path) -> None:
    url = server.publish("file.bin", DATA)
    server.how.delay_first = 0.6
    download(url, dest, size=len(DATA), sha256=SHA, backoff=0.01, timeout=0.2)
    assert dest.read_bytes() == DATA and len(server.how.requests) == 2


def test_connection_refused_is_retried_then_reported(dest: Path) -> None:
    with pytest.raises(DownloadError, match=r"after 2 attempt\(s\).*ConnectionError"):
        download("http://127.0.0.1:9/x.zip", dest, size=1, sha256=None, retries=1, backoff=0.01, timeout=1.0)


def test_not_enough_disk_space(server: Server, dest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = server.publish("file.bin", DATA)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1_000, 1_000))
    with pytest.raises(DownloadError, match=r"300,000 bytes still to download, 1,000 bytes free"):
        download(url, dest, size=len(DATA), sha256=SHA, **FAST)
    assert server.how.requests == [] and not dest.exists()


def test_present_file_makes_no_request(server: Server, dest: Path) -> None:
    url = server.publish("file.bin", b"other bytes on the server")
    dest.parent.mkdir(parents=True)
    dest.write_bytes(DATA)
    assert download(url, dest, size=len(DATA), sha256=SHA, **FAST) == dest
    assert server.how.requests == []


def test_present_but_wrong_file_is_downloaded_again(server: Server, dest: Path) -> None:
    url = server.publish("file.bin", DATA)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(bytes([DATA[0] ^ 0xFF]) + DATA[1:])  # same size, other bytes
    download(url, dest, size=len(DATA), sha256=SHA, **FAST)
    assert dest.read_bytes() == DATA and len(server.how.requests) == 1


def test_remote_url_replaces_scheme_host_and_folder() -> None:
    url = "https://storage.googleapis.com/magentadata/datasets/groove/groove-v1.0.0-midionly.zip"
    assert remote_url(url, None) == url
    assert remote_url(url, "http://127.0.0.1:8000/mirror/") == "http://127.0.0.1:8000/mirror/groove-v1.0.0-midionly.zip"


# ----------------------------------------------------------------------------- safe_extract

Entry = tuple[str, str, bytes | str]  # (member name, kind: file/dir/symlink/hardlink/chardev, payload or link)


def make_zip(path: Path, entries: list[Entry]) -> Path:
    """A zip with the given members; symlinks and devices carry their Unix mode in external_attr."""
    modes = {"file": stat.S_IFREG | 0o644, "symlink": stat.S_IFLNK | 0o777, "chardev": stat.S_IFCHR | 0o600}
    with zipfile.ZipFile(path, "w") as zf:
        for name, kind, payload in entries:
            if kind == "dir":
                zf.mkdir(name) if hasattr(zf, "mkdir") else zf.writestr(name.rstrip("/") + "/", b"")
                continue
            info = zipfile.ZipInfo(name)
            info.external_attr = modes[kind] << 16
            zf.writestr(info, payload)
    return path


def make_tar(path: Path, entries: list[Entry]) -> Path:
    """A tar (gzipped for .tar.gz/.tgz) with the given members."""
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE, "chardev": tarfile.CHRTYPE}  # fmt: skip
    mode = "w:gz" if path.name.endswith((".tar.gz", ".tgz")) else "w"
    with tarfile.open(path, mode) as tf:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.type = types[kind]
            info.mode = 0o755 if kind == "dir" else 0o644
            if kind in ("symlink", "hardlink"):
                info.linkname = str(payload)
                tf.addfile(info)
            elif kind == "file":
                data = payload if isinstance(payload, bytes) else payload.encode()
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return path


def make_archive(path: Path, entries: list[Entry]) -> Path:
    return make_zip(path, entries) if path.suffix == ".zip" else make_tar(path, entries)


GOOD = ("data/good.txt", "file", b"fine")


def unsafe_cases(tmp_path: Path) -> dict[str, list[Entry]]:
    outside = tmp_path / "evil_abs"  # absolute, outside the target: must never be created
    return {
        "dotdot": [GOOD, ("../evil", "file", b"x")],
        "nested-dotdot": [GOOD, ("data/../../evil", "file", b"x")],
        "absolute": [GOOD, (str(outside), "file", b"x")],
        "symlink-abs": [GOOD, ("data/passwd", "symlink", "/etc/passwd")],
        "symlink-up": [GOOD, ("data/up", "symlink", "../../evil")],
        "through-link": [GOOD, ("data/here", "symlink", "."), ("data/here/x", "file", b"x")],
        "link-chain": [GOOD, ("d/x", "symlink", ".."), ("y", "symlink", "d/x/..")],
        "device": [GOOD, ("data/dev", "chardev", b"")],
    }


CASES = ["dotdot", "nested-dotdot", "absolute", "symlink-abs", "symlink-up", "through-link", "link-chain", "device"]


def check_refused(tmp_path: Path, archive: Path, evil_member: str) -> None:
    target = tmp_path / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(DownloadError, match="refusing to extract") as err:
        safe_extract(archive, target)
    assert repr(evil_member) in str(err.value) and archive.name in str(err.value)
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temporary folder left behind
    assert not (tmp_path / "evil").exists() and not (tmp_path / "evil_abs").exists()


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
def test_unsafe_members_are_refused(tmp_path: Path, case: str, suffix: str) -> None:
    entries = unsafe_cases(tmp_path)[case]
    archive = make_archive(tmp_path / f"bad{suffix}", entries)
    check_refused(tmp_path, archive, entries[-1][0])


@pytest.mark.parametrize("link", ["../../evil", "/etc/passwd"])
def test_tar_hardlink_escaping_is_refused(tmp_path: Path, link: str) -> None:
    archive = make_tar(tmp_path / "bad.tar", [GOOD, ("data/hard", "hardlink", link)])
    check_refused(tmp_path, archive, "data/hard")


def test_refusal_leaves_an_existing_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "out"
    (target / "data").mkdir(parents=True)
    (target / "data" / "good.txt").write_bytes(b"old")
    archive = make_zip(tmp_path / "bad.zip", [("data/good.txt", "file", b"new"), ("../evil", "file", b"x")])
    with pytest.raises(DownloadError):
        safe_extract(archive, target)
    assert (target / "data" / "good.txt").read_bytes() == b"old"
    assert sorted(p.name for p in target.iterdir()) == ["data"]


@pytest.mark.parametrize("suffix", [".zip", ".tar", ".tar.gz", ".tgz"])
def test_safe_archive_extracts_with_internal_links(tmp_path: Path, suffix: str) -> None:
    entries: list[Entry] = [
        ("top/", "dir", b""),
        ("top/a/one.txt", "file", b"1"),
        ("./top/b/two.txt", "file", b"22"),
        ("top/b/link", "symlink", "../a/one.txt"),
        ("top/b/inside", "file", b"dots stay inside: top/b/../b"),
    ]
    archive = make_archive(tmp_path / f"good{suffix}", entries)
    target = tmp_path / "out"
    files = safe_extract(archive, target)
    assert files == [target / "top/a/one.txt", target / "top/b/two.txt", target / "top/b/link", target / "top/b/inside"]
    assert (target / "top/b/two.txt").read_bytes() == b"22"
    assert (target / "top/b/link").is_symlink() and (target / "top/b/link").read_bytes() == b"1"
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~umask()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_second_archive_merges_and_replaces_its_own_entries(tmp_path: Path) -> None:
    target = tmp_path / "out"
    safe_extract(make_zip(tmp_path / "a.zip", [("A/x.txt", "file", b"a1"), ("A/old.txt", "file", b"o")]), target)
    safe_extract(make_zip(tmp_path / "b.zip", [("B/y.txt", "file", b"b")]), target)
    safe_extract(make_zip(tmp_path / "c.zip", [("A/x.txt", "file", b"a2")]), target)
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == ["A/x.txt", "B/y.txt"]
    assert (target / "A/x.txt").read_bytes() == b"a2"


def test_damaged_or_unknown_archives_fail_clearly(tmp_path: Path) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DownloadError, match="broken.zip.*delete it and rerun"):
        safe_extract(broken, tmp_path / "out")
    with pytest.raises(DownloadError, match="unsupported archive type"):
        safe_extract(tmp_path / "file.rar", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("suffix", [".zip", ".tar"])
def test_link_loop_inside_the_archive_is_harmless(tmp_path: Path, suffix: str) -> None:
    archive = make_archive(tmp_path / f"loop{suffix}", [("d/a", "symlink", "b"), ("d/b", "symlink", "a"), GOOD])
    files = safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out/d/a").is_symlink() and (tmp_path / "out/data/good.txt").read_bytes() == b"fine"
    assert len(files) == 3


# ----------------------------------------------------------------------------- fetch_dataset


def midi_bytes(drums: bool) -> bytes:
    """A tiny valid MIDI file written with pretty_midi."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    inst = pretty_midi.Instrument(program=0, is_drum=drums)
    for i, pitch in enumerate((36, 38, 42, 38)):
        inst.notes.append(pretty_midi.Note(velocity=90, pitch=pitch, start=i * 0.25, end=i * 0.25 + 0.1))
    pm.instruments.append(inst)
    buffer = io.BytesIO()
    pm.write(buffer)
    return buffer.getvalue()


def csv_text(rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def groove_archive(path: Path) -> Path:
    midi = "drummer1/session1/1_funk-groove1_138_beat_4-4.mid"
    info = csv_text([list(groove.COLUMNS), ["drummer1", "drummer1/session1", "drummer1/session1/1", "funk/groove1",
                                            "138", "beat", "4-4", midi, "", "2.0", "train"]])  # fmt: skip
    members: list[Entry] = [("groove/info.csv", "file", info.encode()), (f"groove/{midi}", "file", midi_bytes(True))]
    return make_zip(path, members)


def maestro_archive(path: Path) -> Path:
    rows = [list(maestro.COLUMNS), ["Frédéric Chopin", "Ballade", "validation", 2004, "2004/x.midi", "2004/x.wav", 1.0]]
    return make_zip(path, [
        ("maestro-v3.0.0/maestro-v3.0.0.csv", "file", csv_text(rows).encode()),
        ("maestro-v3.0.0/2004/x.midi", "file", midi_bytes(False)),
    ])  # fmt: skip


def mp3_bytes() -> bytes:
    import numpy as np
    import soundfile as sf

    buffer = io.BytesIO()
    tone = 0.1 * np.sin(2 * np.pi * 440 * np.arange(22_050) / 44_100).astype(np.float32)
    sf.write(buffer, tone, 44_100, format="MP3")
    return buffer.getvalue()


def deam_archives(folder: Path) -> dict[str, Path]:
    static_1 = "song_id, valence_mean, valence_std, arousal_mean, arousal_std\n2,3.1,0.9,3,0.7\n"
    static_2 = "song_id, valence_mean, valence_std, valence_ max_mean, arousal_mean, arousal_std\n"
    dynamic = "song_id,sample_15000ms,sample_15500ms\n2,0.1,0.2\n"
    annotations = [(f"{relative.as_posix()}", "file", text.encode())
                   for relative, text in zip(deam.STATIC_FILES, (static_1, static_2))]  # fmt: skip
    annotations += [(relative.as_posix(), "file", dynamic.encode()) for relative in deam.DYNAMIC_FILES.values()]
    return {
        "audio": make_zip(folder / "DEAM_audio.zip", [("MEMD_audio/2.mp3", "file", mp3_bytes())]),
        "annotations": make_zip(folder / "DEAM_Annotations.zip", annotations),
        "metadata": make_zip(folder / "metadata.zip", [("metadata/metadata_2013.csv", "file", b"song_id\n2\n")]),
    }


def serve_as_remotes(server: Server, module, archives: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> str:
    """Publish the archives under /mirror and point the module's REMOTES (size, checksum) at them."""
    remotes = {}
    for key, archive in archives.items():
        data = archive.read_bytes()
        server.publish(f"mirror/{archive.name}", data)
        remotes[key] = {**module.REMOTES[key], "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    monkeypatch.setattr(module, "REMOTES", remotes)
    return f"{server.url}/mirror"


def test_fetch_groove_end_to_end(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = groove_archive(tmp_path / groove.REMOTES["midi"]["filename"])
    base = serve_as_remotes(server, groove, {"midi": archive}, monkeypatch)
    out = tmp_path / "raw" / "groove"
    root = fetch_dataset("groove", tmp_path / "downloads", out, base_url=base)
    assert root == out / "groove"
    (item,) = groove.load_items(root)
    assert item.item_id == "drummer1/session1/1" and item.labels["style"] == "funk"
    assert len(pretty_midi.PrettyMIDI(str(item.path)).instruments[0].notes) == 4
    assert [r["path"] for r in server.how.requests] == ["/mirror/groove-v1.0.0-midionly.zip"]
    assert (tmp_path / "downloads" / "groove-v1.0.0-midionly.zip").read_bytes() == archive.read_bytes()

    shutil.rmtree(out)  # a rerun (Snakemake removes the output first) reuses the verified archive
    assert fetch_dataset("groove", tmp_path / "downloads", out, base_url=base) == root
    assert len(server.how.requests) == 1 and len(groove.load_items(root)) == 1


def test_fetch_with_real_checksums_refuses_other_bytes(server: Server, tmp_path: Path) -> None:
    groove_archive(server.how.root / groove.REMOTES["midi"]["filename"])
    with pytest.raises(DownloadError, match="expected 3,260,318"):
        fetch_dataset("groove", tmp_path / "downloads", tmp_path / "raw", base_url=server.url)
    assert not (tmp_path / "raw").exists() and not list((tmp_path / "downloads").iterdir())


def test_main_fetches_maestro_and_writes_manifest(server: Server, tmp_path: Path, monkeypatch) -> None:
    archive = maestro_archive(tmp_path / maestro.REMOTES["midi"]["filename"])
    base = serve_as_remotes(server, maestro, {"midi": archive}, monkeypatch)
    out, manifest = tmp_path / "raw" / "maestro", tmp_path / "raw" / "maestro.manifest.json"
    dl.main(["--dataset", "maestro", "--downloads", str(tmp_path / "dl"), "--out", str(out),
             "--manifest", str(manifest), "--base-url", base])  # fmt: skip
    (item,) = maestro.load_items(out / "maestro-v3.0.0")
    assert item.item_id == "2004/x" and item.split == "val"
    from seqpipe.raw.manifest import read_manifest

    written = read_manifest(manifest)
    assert written["source"] == "download" and Path(written["root"]) == (out / "maestro-v3.0.0").resolve()
    assert sorted(written["files"]) == ["2004/x.midi", "maestro-v3.0.0.csv"]


def test_fetch_deam_three_archives(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = serve_as_remotes(server, deam, deam_archives(tmp_path), monkeypatch)
    root = fetch_dataset("deam", tmp_path / "downloads", tmp_path / "raw" / "deam", base_url=base)
    assert root == tmp_path / "raw" / "deam"
    (item,) = deam.load_items(root)
    assert item.item_id == "2" and item.labels["arousal_mean"] == 3.0
    assert soundfile.info(str(item.path)).samplerate == 44_100
    assert len(server.how.requests) == 3

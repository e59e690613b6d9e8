"""Download dataset archives and unpack them safely: the `download` stage.

The HTTP part (`download`: resumable, verified, retried) is seqpipe.raw.http_download; the archive
part (`safe_extract`: every member checked before anything is written) is seqpipe.raw.archive.

`fetch_dataset(name, downloads, out)` does both for every archive of a dataset's `REMOTES` and
returns the dataset root inside `out`. One process per `dest` at a time: two concurrent downloads
of the same file would share its `.part` (Snakemake never runs the same job twice at once).
"""

from __future__ import annotations

import argparse
import logging
import posixpath
from pathlib import Path
from urllib.parse import urlsplit

from seqpipe.raw.archive import safe_extract
from seqpipe.raw.http_download import DownloadError, download  # noqa: F401 - DownloadError: the stage's error
from seqpipe.datasets import dataset_names, get_dataset

log = logging.getLogger(__name__)


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
        from seqpipe.raw.manifest import build_manifest, write_manifest

        write_manifest(build_manifest(args.dataset, root, "download"), args.manifest)

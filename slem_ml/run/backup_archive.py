"""The plaintext inside a backup: a tar of staged files with a manifest first (SPEC §11).

Members::

    manifest.json                      slem version, schema revision, created at, row counts, SHA-256 of
                                       every other member
    tables/<table>.parquet             one per table of slem's database (slem_ml.storage.backup)
    mlflow/mlflow.db                   the MLflow tracking store (SQLite), when there is one
    mlflow/mlruns/…                    its artifacts
    models/…                           the exported champion (joblib + manifest.json)

:func:`tar_chunks` produces the tar as a stream of byte strings, file by file, so that the encryption pulls
it without the whole tar ever being in memory or on disk; :func:`extract_verified` unpacks a decrypted tar,
refusing anything but plain files under plain relative names, and :func:`check_members` holds what came out
against the manifest before anything is restored.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from slem_ml.errors import SlemError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "ArchiveError",
    "check_members",
    "copy_hashed",
    "extract_verified",
    "read_manifest",
    "sha256_file",
    "tar_chunks",
]

MANIFEST = "manifest.json"
FORMAT = "slem-backup"
FORMAT_VERSION = 1
_BLOCK = tarfile.BLOCKSIZE  # 512 B
_READ = 1 << 20  # [B] read and hash files a MiB at a time


class ArchiveError(SlemError):
    """The decrypted archive is not what its manifest says (or not a slem archive at all)."""


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_READ):
            digest.update(block)
    return digest.hexdigest()


def copy_hashed(source: Path, target: Path) -> str:
    """Copy ``source`` to a new file ``target`` (owner-only) and return the SHA-256 of what was copied."""
    digest = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with source.open("rb") as src, target.open("xb") as dst:
        target.chmod(0o600)
        while block := src.read(_READ):
            digest.update(block)
            dst.write(block)
    return digest.hexdigest()


def tar_chunks(members: Sequence[tuple[str, Path]]) -> Iterator[bytes]:
    """A POSIX (pax) tar of ``(name, file)`` pairs as a stream of byte strings, each file read a MiB at a
    time. The files must not change while the stream is read (they are staged copies)."""
    now = int(time.time())
    for name, path in members:
        info = tarfile.TarInfo(_safe_name(name))
        info.size = path.stat().st_size
        info.mtime = now
        info.mode = 0o600
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        left = info.size
        with path.open("rb") as handle:
            while left:
                block = handle.read(min(_READ, left))
                if not block:
                    raise SlemError(f"{path} shrank while it was archived")
                left -= len(block)
                yield block
        if info.size % _BLOCK:
            yield b"\0" * (_BLOCK - info.size % _BLOCK)
    yield b"\0" * (2 * _BLOCK)  # the end-of-archive marker


def extract_verified(tar_path: Path, folder: Path) -> dict[str, str]:
    """Unpack the tar at ``tar_path`` into ``folder`` and return member name → SHA-256 of its bytes.

    Only regular files under relative names without ``..`` are accepted (:class:`ArchiveError` otherwise),
    each name once; nothing is ever written outside ``folder``."""
    hashes: dict[str, str] = {}
    try:
        with tarfile.open(tar_path, mode="r|") as archive:
            for info in archive:
                name = _safe_name(info.name)
                if not info.isfile():
                    raise ArchiveError(f"the archive holds {name!r}, which is not a plain file")
                if name in hashes:
                    raise ArchiveError(f"the archive holds {name!r} twice")
                source = archive.extractfile(info)
                assert source is not None  # a regular file always has content
                target = folder / name
                target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                digest = hashlib.sha256()
                with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
                    while block := source.read(_READ):
                        digest.update(block)
                        out.write(block)
                hashes[name] = digest.hexdigest()
    except tarfile.TarError as exc:
        raise ArchiveError(f"the decrypted archive is not a readable tar: {exc}") from None
    return hashes


def read_manifest(folder: Path, hashes: Mapping[str, str]) -> dict[str, Any]:
    """The manifest of an unpacked archive, checked to be a slem backup manifest of a format this slem
    reads."""
    if MANIFEST not in hashes:
        raise ArchiveError("the archive has no manifest.json: it is not a slem backup")
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ArchiveError("the archive's manifest.json is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError("the archive's manifest.json is not a slem backup manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArchiveError(
            f"the archive is in slem backup format {version}; this slem reads format {FORMAT_VERSION}: "
            "upgrade slem"
        )
    if not isinstance(manifest.get("members"), dict) or not isinstance(manifest.get("tables"), dict):
        raise ArchiveError("the archive's manifest.json lists no members")
    return manifest


def check_members(manifest: Mapping[str, Any], hashes: Mapping[str, str]) -> None:
    """Every member the manifest lists is there with its SHA-256, and nothing else is (besides the
    manifest itself); :class:`ArchiveError` naming the first that is not."""
    listed: Mapping[str, Any] = manifest["members"]
    present = {name for name in hashes if name != MANIFEST}
    for name in sorted(set(listed) | present):
        if name not in present:
            raise ArchiveError(f"the archive lacks {name}, which its manifest lists")
        if name not in listed:
            raise ArchiveError(f"the archive holds {name}, which its manifest does not list")
        if hashes[name] != listed[name].get("sha256"):
            raise ArchiveError(f"{name} does not match its SHA-256 in the manifest: the archive was altered")


def _safe_name(name: str) -> str:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name or name != path.as_posix():
        raise ArchiveError(f"the archive holds an unsafe name {name[:100]!r}")
    return name

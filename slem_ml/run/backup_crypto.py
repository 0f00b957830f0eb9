"""How a backup is encrypted: the age format through ``pyrage`` (SPEC §11), streamed in both directions.

Two ways to hold the key, both with memory that does not grow with the archive:

* **Recipients** (``--recipient age1…``, X25519 public keys): the archive *is* an age file, streamed through
  ``pyrage.encrypt_io``; ``age -d -i KEYFILE FILE | tar -t`` reads it without slem.
* **A passphrase** (from an environment variable, never from the command line): ``pyrage`` encrypts with a
  passphrase only in memory (``pyrage.passphrase``, whole plaintext and ciphertext at once), so the archive
  is encrypted as above to a key made for this archive alone, and that key is kept in front of it,
  encrypted with the passphrase (age's scrypt, work factor 2^18)::

      slem-backup-passphrase/1\\n
      <N>\\n
      <N bytes: age file (passphrase) holding AGE-SECRET-KEY-1…>
      <age file to that key's public key: the archive>

A wrong key or passphrase is :class:`pyrage.DecryptError` before any plaintext; a flipped byte or a cut
file fails age's authentication (``OSError``) at the chunk that shows it — the caller writes the plaintext
only to a private staging folder and uses it once decryption has finished.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyrage
from pyrage import passphrase as age_passphrase
from pyrage import x25519

from slem_ml.errors import SlemError

__all__ = [
    "AGE_MAGIC",
    "PASSPHRASE_MAGIC",
    "BackupKey",
    "DecryptionFailed",
    "decrypt_archive",
    "encrypt_archive",
    "read_identities",
]

AGE_MAGIC = b"age-encryption.org/v1\n"
PASSPHRASE_MAGIC = b"slem-backup-passphrase/1\n"
_MAX_WRAPPED_KEY = 4096  # [B] the passphrase-encrypted key is about 250 bytes


class DecryptionFailed(SlemError):
    """The archive cannot be opened with the key given, or it is damaged."""


@dataclass(frozen=True)
class BackupKey:
    """What encrypts or decrypts an archive: age recipients, age identities, or a passphrase.

    Build it with :meth:`for_recipients`, :meth:`for_identities` or :meth:`for_passphrase`; ``str()`` never
    shows the passphrase or a secret key."""

    recipients: tuple[x25519.Recipient, ...] = ()
    identities: tuple[x25519.Identity, ...] = ()
    secret: str | None = None

    @classmethod
    def for_recipients(cls, keys: Iterable[str]) -> BackupKey:
        """Public keys ``age1…``; a malformed one is a :class:`SlemError` naming it."""
        parsed = []
        for key in keys:
            try:
                parsed.append(x25519.Recipient.from_str(key.strip()))
            except pyrage.RecipientError:
                raise SlemError(
                    f"--recipient {key.strip()[:70]!r} is not an age public key (age1…)"
                ) from None
        if not parsed:
            raise SlemError("--recipient: give at least one age public key (age1…)")
        return cls(recipients=tuple(parsed))

    @classmethod
    def for_identities(cls, identities: Iterable[x25519.Identity]) -> BackupKey:
        return cls(identities=tuple(identities))

    @classmethod
    def for_passphrase(cls, secret: str) -> BackupKey:
        if not secret:
            raise SlemError("the passphrase is empty")
        return cls(secret=secret)

    def __repr__(self) -> str:
        if self.secret is not None:
            return "BackupKey(passphrase)"
        return f"BackupKey({len(self.recipients)} recipients, {len(self.identities)} identities)"

    __str__ = __repr__

    @property
    def described(self) -> str:
        """How the archive is or will be encrypted, in words (no secret in it)."""
        if self.secret is not None:
            return "encrypted with a passphrase"
        n = len(self.recipients)
        return f"encrypted to {n} age recipient{'s' if n != 1 else ''}"


def read_identities(path: Path) -> BackupKey:
    """The X25519 identities (``AGE-SECRET-KEY-1…`` lines) of an age key file, as ``age-keygen`` writes it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SlemError(f"--identity {path}: cannot read it ({exc.__class__.__name__})") from None
    keys = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            keys.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise SlemError(
                f"--identity {path}: not an age identity file (AGE-SECRET-KEY-1… lines)"
            ) from None
    if not keys:
        raise SlemError(f"--identity {path}: holds no age identity (AGE-SECRET-KEY-1… lines)")
    return BackupKey.for_identities(keys)


def encrypt_archive(chunks: Iterable[bytes], out: BinaryIO, key: BackupKey) -> None:
    """Encrypt the plaintext ``chunks`` (read one at a time) into ``out``, as the module docstring says."""
    reader = io.BufferedReader(_ChunkReader(chunks), buffer_size=1 << 20)
    if key.secret is not None:
        own = x25519.Identity.generate()
        wrapped = age_passphrase.encrypt(str(own).encode("ascii"), key.secret)
        out.write(PASSPHRASE_MAGIC + f"{len(wrapped)}\n".encode("ascii") + wrapped)
        recipients: list[x25519.Recipient] = [own.to_public()]
    else:
        recipients = list(key.recipients)
    pyrage.encrypt_io(reader, out, recipients)  # type: ignore[arg-type]  # any object with read() will do


def decrypt_archive(path: Path, out: BinaryIO, key: BackupKey) -> None:
    """Decrypt the archive at ``path`` into ``out``; :class:`DecryptionFailed` (one line) when the key does
    not open it or the file is damaged or cut short. ``out`` may then hold a part of the plaintext."""
    with path.open("rb") as source:
        head = source.read(len(PASSPHRASE_MAGIC))
        if head.startswith(AGE_MAGIC):
            if key.secret is not None:
                raise DecryptionFailed(
                    f"{path} is encrypted to age keys, not with a passphrase: "
                    "restore it with --identity KEYFILE"
                )
            identities = list(key.identities)
            source.seek(0)
        elif head == PASSPHRASE_MAGIC:
            if key.secret is None:
                raise DecryptionFailed(
                    f"{path} is encrypted with a passphrase: restore it with --passphrase-env VARIABLE"
                )
            identities = [_unwrap_key(path, source, key.secret)]
        else:
            raise DecryptionFailed(
                f"{path} is not a slem backup (neither an age file nor a passphrase archive)"
            )
        try:
            pyrage.decrypt_io(source, out, identities)  # type: ignore[arg-type]
        except pyrage.DecryptError as exc:
            if "no matching keys" in str(exc).lower():
                raise DecryptionFailed(
                    f"{path}: none of the --identity keys opens it (a wrong key, or a damaged header)"
                ) from None
            raise DecryptionFailed(f"{path} cannot be decrypted: {exc}") from None
        except OSError as exc:
            if exc.errno is not None:  # the plaintext's disk, not the archive
                raise SlemError(f"cannot write the decrypted archive: {exc.strerror}") from None
            raise DecryptionFailed(
                f"{path} is damaged or cut short: it fails age's authentication ({exc})"
            ) from None


# --- internals --------------------------------------------------------------------------------------


def _unwrap_key(path: Path, source: BinaryIO, secret: str) -> x25519.Identity:
    line = source.readline(16)
    try:
        size = int(line.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        size = -1
    if not 0 < size <= _MAX_WRAPPED_KEY:
        raise DecryptionFailed(f"{path} is damaged: its passphrase header is unreadable")
    wrapped = source.read(size)
    try:
        plain = age_passphrase.decrypt(wrapped, secret)
        return x25519.Identity.from_str(plain.decode("ascii").strip())
    except (pyrage.DecryptError, pyrage.IdentityError, UnicodeDecodeError):
        raise DecryptionFailed(f"{path}: wrong passphrase (or a damaged archive)") from None


class _ChunkReader(io.RawIOBase):
    """A readable stream over an iterable of byte strings (what ``pyrage.encrypt_io`` pulls from)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

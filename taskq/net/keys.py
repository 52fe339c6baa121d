"""Where authkeys come from: an explicit file, ``TASKQ_AUTHKEY``, or (master only) a
generated key in a file only its owner can read. There is no built-in default key, and
no function here ever logs or prints a key; only file paths, and fingerprints.

A master may accept several keys, to rotate them without downtime (``--authkey-file``
given twice, or a key file with one key per line): ``KeyRing`` holds them, checks a peer's
answer to the challenge against each, and counts the connections using each by its
fingerprint (slow to compute from a guess, so it tells nothing of a weak key)::

    master: KeyRing([new, old]) ── deliver_challenge_any ── the key the peer answered with
            in_use() ──► ClusterStatus.keys {"3f9a61c2": 12, "b07e44d1": 2} ──► taskq status
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from collections import Counter
from multiprocessing import AuthenticationError, connection
from pathlib import Path
from typing import Any

from taskq.defaults import ENV_AUTHKEY, state_dir


class AuthkeyMissing(ValueError):
    """No authkey was given where one is needed."""


def read_key_file(path: Path) -> bytes:
    """The key in a key file: its first non-empty line (a master's file may hold more)."""
    try:
        lines = [ln.strip() for ln in path.read_bytes().splitlines() if ln.strip()]
    except OSError as exc:
        raise AuthkeyMissing(f"cannot read authkey file {path}: {exc.strerror}") from None
    if not lines:
        raise AuthkeyMissing(f"authkey file {path} is empty")
    return lines[0]


def resolve_authkey(authkey: bytes | str | None = None, key_file: Path | None = None, *,
                    how: str = f"set {ENV_AUTHKEY} or pass --authkey-file PATH") -> bytes:
    """The key to use: an explicit key, then --authkey-file, then TASKQ_AUTHKEY. ``how``:
    how this peer's user gives a key (a command's flag, a ``Client`` argument)."""
    if authkey:
        return authkey.encode() if isinstance(authkey, str) else authkey
    if key_file is not None:
        return read_key_file(key_file)
    env = os.environ.get(ENV_AUTHKEY, "").strip()
    if env:
        return env.encode()
    raise AuthkeyMissing(f"no authkey: {how} (the master prints where its key file is)")


def master_authkeys(key_files: list[Path]) -> tuple[list[bytes], Path | None]:
    """A master's keys (every line of every --authkey-file, the first one its own), and the
    path of the generated key file if it made (or reused) one."""
    if key_files:
        return read_keys(key_files), None
    key, path = master_authkey(None)
    return [key], path


def master_authkey(key_file: Path | None) -> tuple[bytes, Path | None]:
    """The master's key, and the path of the generated key file if it made (or reused) one."""
    try:
        return resolve_authkey(None, key_file), None
    except AuthkeyMissing:
        if key_file is not None:
            raise
    path = state_dir() / "authkey"
    if path.exists():
        return read_key_file(path), path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_urlsafe(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    return key, path


def read_keys(paths: list[Path]) -> list[bytes]:
    """Every key in these files (one per non-empty line), in order, without repeats."""
    keys: list[bytes] = []
    for path in paths:
        read_key_file(path)  # a clear error for an unreadable or empty file
        for line in path.read_bytes().splitlines():
            if line.strip() and line.strip() not in keys:
                keys.append(line.strip())
    return keys


def fingerprint(key: bytes) -> str:
    """A short name for a key that can be logged: 8 hex digits of a slow hash of it."""
    return hashlib.pbkdf2_hmac("sha256", key, b"taskq key fingerprint", 100_000)[:4].hex()


class KeyRing:
    """The keys a master accepts (the first is the one it uses itself)."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise AuthkeyMissing("a master needs at least one authkey")
        self.keys = list(keys)
        self.fingerprints = {key: fingerprint(key) for key in self.keys}
        self._lock = threading.Lock()
        self._open: Counter[str] = Counter()

    def challenge(self, conn: Any) -> bytes:
        """Challenge a peer; the key it answered with (AuthenticationError if none)."""
        message = os.urandom(40)
        modern = hasattr(connection, "_verify_challenge")  # Python 3.12+: sha256, tagged
        if modern:
            message = b"{sha256}" + message
        conn.send_bytes(connection.CHALLENGE + message)  # type: ignore[attr-defined]
        response = conn.recv_bytes(256)
        for key in self.keys:
            if _verified(key, message, response, modern):
                conn.send_bytes(connection.WELCOME)  # type: ignore[attr-defined]
                return key
        conn.send_bytes(connection.FAILURE)  # type: ignore[attr-defined]
        raise AuthenticationError("digest received was wrong")

    def opened(self, key: bytes) -> str:
        with self._lock:
            self._open[self.fingerprints[key]] += 1
        return self.fingerprints[key]

    def closed(self, key: bytes) -> None:
        with self._lock:
            self._open[self.fingerprints[key]] -= 1

    def in_use(self) -> dict[str, int]:
        """Open connections per key fingerprint (every key, in order)."""
        with self._lock:
            return {self.fingerprints[k]: self._open[self.fingerprints[k]] for k in self.keys}


def _verified(key: bytes, message: bytes, response: bytes, modern: bool) -> bool:
    if modern:
        try:
            connection._verify_challenge(key, message, response)  # type: ignore[attr-defined]
        except AuthenticationError:
            return False
        return True
    return hmac.compare_digest(hmac.new(key, message, "md5").digest(), response)

"""Where authkeys come from: an explicit file, ``TASKQ_AUTHKEY``, or (master only) a
generated key in a file only its owner can read. There is no built-in default key, and
no function here ever logs or prints a key; only file paths.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from taskq.defaults import ENV_AUTHKEY, state_dir


class AuthkeyMissing(ValueError):
    """No authkey was given where one is needed."""


def read_key_file(path: Path) -> bytes:
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise AuthkeyMissing(f"cannot read authkey file {path}: {exc.strerror}") from None
    if not key:
        raise AuthkeyMissing(f"authkey file {path} is empty")
    return key


def resolve_authkey(authkey: bytes | str | None = None, key_file: Path | None = None) -> bytes:
    """The key to use: an explicit key, then --authkey-file, then TASKQ_AUTHKEY."""
    if authkey:
        return authkey.encode() if isinstance(authkey, str) else authkey
    if key_file is not None:
        return read_key_file(key_file)
    env = os.environ.get(ENV_AUTHKEY, "").strip()
    if env:
        return env.encode()
    raise AuthkeyMissing(f"no authkey: set {ENV_AUTHKEY} or pass --authkey-file PATH "
                         f"(the master prints where its key file is)")


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

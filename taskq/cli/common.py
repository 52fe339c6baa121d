"""What every ``taskq`` command shares: one-line errors, the shared options, and how a
command reaches the master, declared once.

A command that talks to a master takes one parameter ``master: MasterOpts``; ``reaches_master``
turns it into the same five options on every such command (``--address``,
``--authkey-file``, ``--tls-ca``, ``--tls-cert``, ``--tls-key``), so no command can lack one::

    @reaches_master                      taskq status --address H:P --tls-ca ca.pem
    def status(..., master: MasterOpts)   ──► MasterOpts(address=…, tls_ca=…)
        master.ask(lambda r: r.status())  ──► Link (key, TLS) ──► one call ──► closed

Errors a user can fix are one line on stderr, never a traceback: a usage error (a bad
flag, a missing argument, a bad value) exits 2, any other error (the master unreachable
or failing, a rejected key) exits 1.
"""

from __future__ import annotations

import functools
import inspect
import signal
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from taskq import defaults, logs
from taskq.errors import TaskqError
from taskq.net import tls
from taskq.net.connection import parse_address
from taskq.net.keys import AuthkeyMissing, resolve_authkey
from taskq.net.link import Link
from taskq.protocol.api import BrokerAPI
from taskq.protocol.options import parse_duration

R = TypeVar("R")

AddressOpt = Annotated[str | None, typer.Option(
    "--address", envvar=defaults.ENV_ADDRESS, show_envvar=True,
    help="The master as HOST:PORT.")]
KeyFileOpt = Annotated[Path | None, typer.Option(
    "--authkey-file", help=f"File holding the authkey (else ${defaults.ENV_AUTHKEY}).")]
TlsCaOpt = Annotated[Path | None, typer.Option(
    "--tls-ca", envvar=tls.ENV_CA, show_envvar=True,
    help="CA certificate(s): verify the master (on the master: require client certificates "
         "signed by it).")]
TlsCertOpt = Annotated[Path | None, typer.Option(
    "--tls-cert", envvar=tls.ENV_CERT, show_envvar=True,
    help="This side's certificate (the master's; a peer's for mutual TLS).")]
TlsKeyOpt = Annotated[Path | None, typer.Option(
    "--tls-key", envvar=tls.ENV_KEY, show_envvar=True, help="The private key of --tls-cert.")]
LogJsonOpt = Annotated[bool, typer.Option("--log-json", help="Log JSON lines even on a terminal.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _log_level(value: str) -> str:
    try:
        logs.parse_level(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


LogLevelOpt = Annotated[str, typer.Option("--log-level", callback=_log_level,
                                          help="debug, info, warning or error.")]


def one_line(message: str) -> str:
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"taskq: error: {one_line(message)}", err=True)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can act on into one line and exit code 1."""
    try:
        yield
    except (TaskqError, AuthkeyMissing, ValueError, OSError) as exc:
        fail(str(exc) or type(exc).__name__)


def address_of(text: str | None, flag: str = "--address") -> tuple[str, int]:
    if not text:
        raise typer.BadParameter(f"no master address: pass {flag} HOST:PORT or set "
                                 f"{defaults.ENV_ADDRESS}", param_hint=flag)
    try:
        return parse_address(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from None


def tls_of(ca: Path | None, cert: Path | None, key: Path | None) -> tls.TLS | None:
    """TLS settings from --tls-ca/--tls-cert/--tls-key (or TASKQ_TLS_*); None: plain TCP."""
    try:
        return tls.TLS.from_env(ca, cert, key)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--tls-ca/--tls-cert/--tls-key") from None


def duration(text: str, flag: str, *, positive: bool = True) -> float:
    """A duration flag (``protocol.options.parse_duration``'s grammar, more than 0 unless
    not ``positive``)."""
    try:
        return parse_duration(text, positive=positive)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from None


def on_signals(handler: Callable[[], None]) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: handler())


@dataclass(frozen=True, kw_only=True)
class MasterOpts:
    """How a command reaches the master: the five options every such command takes."""

    address: str | None = None
    authkey_file: Path | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def where(self) -> tuple[str, int]:
        """HOST and PORT (a usage error, exit 2, when missing or malformed)."""
        return address_of(self.address)

    def tls(self) -> tls.TLS | None:
        return tls_of(self.tls_ca, self.tls_cert, self.tls_key)

    def link(self, on_connect: Callable[[BrokerAPI], None] | None = None) -> Link:
        """An open link to the master (raises what ``user_errors`` turns into one line)."""
        where, settings = self.where(), self.tls()
        link = Link(where, resolve_authkey(None, self.authkey_file),
                    reconnect_for=defaults.CONNECT_TIMEOUT_S, on_connect=on_connect,
                    tls_settings=settings)
        link.open(0.0)  # one attempt: no master there is said at once, not after retries
        return link

    def ask(self, call: Callable[[BrokerAPI], R]) -> R:
        """One call to the master over a fresh link; errors as one line, exit 1 (a bad
        address or TLS option stays a usage error: ``user_errors`` does not take those)."""
        with user_errors():
            link = self.link()
            try:
                return call(link.remote)
            finally:
                link.close()


_MASTER_OPTIONS: dict[str, Any] = {
    "address": AddressOpt, "authkey_file": KeyFileOpt, "tls_ca": TlsCaOpt,
    "tls_cert": TlsCertOpt, "tls_key": TlsKeyOpt,
}
if set(_MASTER_OPTIONS) != {f.name for f in fields(MasterOpts)}:  # pragma: no cover
    raise TypeError("MasterOpts and its options disagree")


def reaches_master(command: Callable[..., R]) -> Callable[..., R]:
    """Give ``command`` (which takes ``master: MasterOpts``) the options of ``MasterOpts``
    in its ``--help``, and build its ``MasterOpts`` from them."""
    hints = typing.get_type_hints(command, include_extras=True)
    own = [p.replace(annotation=hints.get(p.name, p.annotation))
           for p in inspect.signature(command).parameters.values() if p.name != "master"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                               annotation=option) for name, option in _MASTER_OPTIONS.items()]

    @functools.wraps(command)
    def run(**kwargs: Any) -> R:
        master = MasterOpts(**{name: kwargs.pop(name) for name in _MASTER_OPTIONS})
        return command(master=master, **kwargs)

    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + added
    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params}
    del run.__wrapped__  # typer reads the signature above, not the command's own
    return run

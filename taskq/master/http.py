"""The master's web server: the dashboard, a JSON API and Prometheus metrics.

    browser / script / Prometheus ──► ThreadingHTTPServer (one thread per request)
        GET /                 the dashboard, rendered from Broker.monitor() (web/page.py);
                              its script and style (web/app.js, app.css) are served here too
        GET /api/status       Broker.monitor()        workers, queues, jobs, failures, figures
        GET /api/tasks        Broker.history(...)     ?state=failed&job=NAME&since=SECONDS
        GET /api/tasks/ID     Broker.inspect(ID)      a task's attempts
        GET /api/tasks/ID/explain  Broker.explain(ID) why it is where it is
        GET /metrics          prometheus_client exposition of Broker.metrics()
        GET /healthz          200 "ok", or 503 and a short reason (Health.problem())
        GET|POST /login       a form that sets the token cookie
        POST /api/tasks/ID/replay  Broker.replay(ID)  a failed task run again (job "replayed"):
                              only with a token (none: 403, and the page shows the command)

It reads the broker only through its snapshot methods, which copy under the broker's lock
and shape the copy outside it. Bound to loopback, no token is asked; bound elsewhere, every
request must carry the token (``Authorization: Bearer``, or the cookie the login form sets),
except /metrics with ``metrics_public`` and /healthz, which a probe asks without one and
which says only whether the task port accepts and the journal can be written. The token is
compared in constant time and never logged; request lines are not logged at all.

The one write, a replay, is served only when the page has a token: on loopback with none,
any web page the browser visits could post to it, so it is refused and the dashboard shows
the ``taskq replay`` command instead. With a token it needs the token (the login cookie is
SameSite=Strict, so no other site's form carries it), and a browser's Origin, when sent,
must be this server's.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from taskq import logs
from taskq.master import metrics
from taskq.master.web import page
from taskq.protocol import names
from taskq.protocol.api import BrokerAPI

log = logs.get_logger(__name__)

COOKIE = "taskq_token"
REPLAY = "/replay"
REPLAY_OUTBOX = "job:replayed"  # the dashboard's replays: `taskq results replayed`
_ASSETS = {"/app.js": ("app.js", "text/javascript; charset=utf-8"),
           "/app.css": ("app.css", "text/css; charset=utf-8")}
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "style-src 'self'; script-src 'self'; connect-src 'self'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(slots=True)
class HttpConfig:
    host: str
    port: int
    token: str | None = None
    metrics_public: bool = False


class JournalProbe(Protocol):
    def problem(self) -> str | None: ...


def _not_yet() -> bool:
    return False


@dataclass(slots=True)
class Health:
    """What /healthz checks; the master fills it in once its task port accepts."""

    accepting: Callable[[], bool] = field(default=_not_yet)
    journal: JournalProbe | None = None

    def problem(self) -> str | None:
        """Why the master is not healthy (None: it is), in a few words and no secret."""
        if not self.accepting():
            return "the task port is not accepting connections"
        return self.journal.problem() if self.journal is not None else None


class TokenRequired(ValueError):
    """A non-loopback address was asked for without a token."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_http(text: str) -> tuple[str, int] | None:
    """``HOST:PORT`` or ``off`` -> (host, port) or None; ValueError naming the value."""
    if text.strip().lower() == "off":
        return None
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"bad --http {text!r}: expected HOST:PORT (e.g. 127.0.0.1:8265, "
                         f"0.0.0.0:8265, 127.0.0.1:0 for a free port) or off")
    return host.strip("[]") or "127.0.0.1", int(port_text)


def make_config(text: str, token_file: Path | None, env_token: str,
                metrics_public: bool) -> HttpConfig | None:
    """Settings from ``--http``, ``--http-token-file`` (else the env's token) and
    ``--metrics-public``; ValueError naming what is wrong."""
    where = parse_http(text)
    if where is None:
        return None
    token = env_token.strip() or None
    if token_file is not None:
        try:
            token = token_file.read_text().strip() or None
        except OSError as exc:
            raise ValueError(f"cannot read --http-token-file {token_file}: "
                             f"{exc.strerror}") from None
        if token is None:
            raise ValueError(f"--http-token-file {token_file} is empty")
    if token is None and not is_loopback(where[0]):
        raise ValueError(f"the web page would listen on {where[0]}, which is not loopback: "
                         f"give a token with --http-token-file PATH or TASKQ_HTTP_TOKEN, "
                         f"or pass --http off")
    return HttpConfig(where[0], where[1], token, metrics_public)


class WebServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, config: HttpConfig, broker: BrokerAPI) -> None:
        if config.token is None and not is_loopback(config.host):
            raise TokenRequired(
                f"the web page would listen on {config.host}, which is not loopback: give a "
                f"token with --http-token-file PATH or TASKQ_HTTP_TOKEN, or --http off")
        super().__init__((config.host, config.port), Handler)
        self.config = config
        self.broker = broker
        self.registry = metrics.registry_for(broker)
        self.health = Health()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        text = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{text}]" if ":" in text else text
        return f"http://{shown}:{port}/"


class Handler(BaseHTTPRequestHandler):
    server: WebServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Request lines are not logged (a query or header could carry a secret)."""

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/login":
            self._send(HTTPStatus.OK, _login_page(""), "text/html; charset=utf-8")
            return
        if url.path == "/healthz":  # no token: probes carry none, and it says nothing else
            problem = self.server.health.problem()
            self._send(HTTPStatus.SERVICE_UNAVAILABLE if problem else HTTPStatus.OK,
                       f"{problem or 'ok'}\n".encode(), "text/plain; charset=utf-8")
            return
        if not self._allowed(url.path):
            return
        try:
            self._route(url.path, urllib.parse.parse_qs(url.query))
        except ValueError as exc:
            self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
        except Exception as exc:  # the master keeps serving; the page shows the error
            log.warning("http_request_failed", path=url.path, error=str(exc))
            self._json({"error": f"{type(exc).__name__}: {exc}"},
                       HTTPStatus.INTERNAL_SERVER_ERROR)

    def do_POST(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/api/tasks/") and path.endswith(REPLAY):
            try:
                self._replay(urllib.parse.unquote(path[len("/api/tasks/"):-len(REPLAY)]))
            except Exception as exc:  # the master keeps serving; the caller sees why
                log.warning("http_request_failed", path=path, error=str(exc))
                self._json({"error": f"{type(exc).__name__}: {exc}"},
                           HTTPStatus.INTERNAL_SERVER_ERROR)
            return
        if path != "/login":
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
            return
        length = min(int(self.headers.get("Content-Length") or 0), 4096)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode(errors="replace"))
        given = form.get("token", [""])[0]
        if not self._token_ok(given):
            self._send(HTTPStatus.UNAUTHORIZED, _login_page("wrong token"),
                       "text/html; charset=utf-8")
            return
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", "/")
        self.send_header("Set-Cookie", f"{COOKIE}={urllib.parse.quote(given)}; HttpOnly; "
                                       f"SameSite=Strict; Path=/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    # ------------------------------------------------------------------ routing

    def _route(self, path: str, query: dict[str, list[str]]) -> None:
        broker = self.server.broker
        if path in ("/", "/index.html"):
            writable = self.server.config.token is not None
            self._send(HTTPStatus.OK, page.render(broker.monitor(), writable).encode(),
                       "text/html; charset=utf-8")
        elif path in _ASSETS:
            name, kind = _ASSETS[path]
            self._send(HTTPStatus.OK, _asset(name), kind)
        elif path == "/metrics":
            self._send(HTTPStatus.OK, metrics.exposition(self.server.registry),
                       metrics.CONTENT_TYPE)
        elif path == "/api/status":
            self._json(broker.monitor())
        elif path == "/api/tasks":
            job, failed, since, limit = _task_filters(query)
            self._json(broker.history(job=job, failed=failed, since=since, limit=limit))
        elif path.startswith("/api/tasks/") and path.endswith("/explain"):
            task_id = urllib.parse.unquote(path[len("/api/tasks/"):-len("/explain")])
            self._json(broker.explain(task_id).as_dict())
        elif path.startswith("/api/tasks/"):
            task = broker.inspect(urllib.parse.unquote(path[len("/api/tasks/"):]))
            if task is None:
                self._json({"error": "no such task"}, HTTPStatus.NOT_FOUND)
            else:
                self._json(task)
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    def _replay(self, task_id: str) -> None:
        """Replay a failed task; a form is sent to the task's replay, a script gets JSON."""
        self.rfile.read(min(int(self.headers.get("Content-Length") or 0), 4096))
        if self.server.config.token is None:
            self._json({"error": f"this dashboard has no token, so it changes nothing: run "
                                 f"`taskq replay {task_id}`"}, HTTPStatus.FORBIDDEN)
            return
        if not self._allowed("/api/replay"):
            return
        origin = self.headers.get("Origin")
        if origin is not None and urllib.parse.urlsplit(origin).netloc != self.headers.get(
                "Host", ""):
            self._json({"error": "a replay from another site is refused"},
                       HTTPStatus.FORBIDDEN)
            return
        new_id = f"{names.task_prefix(REPLAY_OUTBOX)}{secrets.token_hex(6)}"
        [out] = self.server.broker.replay([task_id], [new_id], outbox=REPLAY_OUTBOX)
        if out.error:
            self._json({"error": out.error}, HTTPStatus.CONFLICT)
        elif "application/json" in self.headers.get("Accept", ""):
            self._json({"task_id": task_id, "replayed_as": out.new_id})
        else:
            self.send_response(HTTPStatus.SEE_OTHER)
            self.send_header("Location", f"/#task/{urllib.parse.quote(out.new_id)}")
            self.send_header("Content-Length", "0")
            self.end_headers()

    # ------------------------------------------------------------------ tokens

    def _allowed(self, path: str) -> bool:
        config = self.server.config
        if config.token is None or (path == "/metrics" and config.metrics_public):
            return True
        auth = self.headers.get("Authorization", "")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else _cookie(
            self.headers.get("Cookie", ""))
        if self._token_ok(given):
            return True
        if path in ("/", "/index.html"):
            self.send_response(HTTPStatus.SEE_OTHER)
            self.send_header("Location", "/login")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._json({"error": "a token is needed (Authorization: Bearer TOKEN)"},
                       HTTPStatus.UNAUTHORIZED)
        return False

    def _token_ok(self, given: str) -> bool:
        token = self.server.config.token
        return token is not None and hmac.compare_digest(given.encode(), token.encode())

    # ------------------------------------------------------------------ replies

    def _json(self, value: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in _SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _task_filters(query: dict[str, list[str]]) -> tuple[str | None, bool, float | None, int]:
    def one(name: str) -> str | None:
        return query.get(name, [None])[0]

    state = one("state") or "all"
    if state not in ("all", "failed"):
        raise ValueError(f"bad state {state!r}: expected failed or all")
    since = one("since")
    limit = one("limit") or "200"
    try:
        since_at = time.time() - float(since) if since else None
        return one("job"), state == "failed", since_at, max(1, min(int(limit), 10_000))
    except ValueError:
        raise ValueError(f"bad since {since!r} or limit {limit!r}: expected numbers "
                         f"(seconds, count)") from None


def _cookie(header: str) -> str:
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return urllib.parse.unquote(value)
    return ""


_CACHE: dict[str, bytes] = {}


def _asset(name: str) -> bytes:
    data = _CACHE.get(name)
    if data is None:
        data = _CACHE[name] = resources.files("taskq.master.web").joinpath(name).read_bytes()
    return data


def _login_page(message: str) -> bytes:
    note = f"<p class=err>{message}</p>" if message else ""
    return (f"<!doctype html><html><head><meta charset=utf-8><meta name=viewport "
            f"content='width=device-width'><title>taskq login</title>"
            f"<link rel=stylesheet href=/app.css></head><body><main class=login>"
            f"<h1>taskq</h1>{note}<form method=post action=/login><label>Token "
            f"<input type=password name=token autofocus></label> <button>Log in</button>"
            f"</form></main></body></html>").encode()


def serve(config: HttpConfig, broker: BrokerAPI) -> WebServer:
    """Bind and serve in a daemon thread; ``stop(server)`` ends it."""
    server = WebServer(config, broker)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5},
                              name="taskq-http", daemon=True)
    thread.start()
    log.info("http_started", url=server.url, token=config.token is not None)
    return server


def stop(server: WebServer) -> None:
    server.shutdown()
    server.server_close()

"""The files in deploy/ and the deployment docs: the compose file parses, every taskq command
line in them (and in the docs' shell examples) uses only flags the CLI accepts, stop timeouts
outlast the worker grace, and no key is written down."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from cluster import ROOT
from taskq_help import accepts, option, unknown_flags

DEPLOY = ROOT / "deploy"
SYSTEMD = DEPLOY / "systemd"
COMPOSE = DEPLOY / "compose.yaml"
UNITS = sorted(SYSTEMD.glob("*.service"))
ENV_EXAMPLES = sorted(SYSTEMD.glob("*.env.example"))
# Where the deployment instructions live now; the other pages show command lines too.
DEPLOYMENT_DOC = ROOT / "docs" / "operations" / "deployment.md"
DOC_PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
# Where the README tells users to put a real key next to compose.yaml; git-ignored (checked
# below), so they are the only files under deploy/ allowed to hold one.
LOCAL_SECRETS = ("authkey", ".env")
GRACE_DEFAULT = 30.0  # taskq.defaults.GRACE_S


def unit_exec_lines(path: Path) -> list[list[str]]:
    """ExecStart= command lines of a unit, continuation lines joined, split like systemd."""
    text = re.sub(r"\\\n", " ", path.read_text())
    return [shlex.split(line.split("=", 1)[1]) for line in text.splitlines()
            if line.startswith("ExecStart=")]


def taskq_argv(words: list[str]) -> list[str]:
    """The subcommand and arguments after the ``taskq`` executable; words systemd expands
    at run time ($VAR, ${VAR}) become a placeholder value."""
    for i, word in enumerate(words):
        if Path(word).name == "taskq":
            return ["<env>" if w.startswith("$") else w for w in words[i + 1:]]
    raise AssertionError(f"no taskq command in {words}")


def seconds(text: str) -> float:
    """A systemd or compose duration: "60", "60s", "1min", "1m30s"."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text.strip())
    assert parts, f"not a duration: {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


@pytest.fixture(scope="module")
def compose() -> dict:
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_help_check_is_not_vacuous() -> None:
    for flag in ("--state", "--authkey-file", "--in-memory"):
        assert accepts("master", flag)
    for flag in ("--connect", "--grace", "--max-tasks-per-child", "--max-memory-per-child"):
        assert accepts("worker", flag)
    assert not accepts("master", "--no-such-flag")
    assert not accepts("master", "--stat")  # a prefix of --state is not a flag
    assert not accepts("worker", "--state")


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_commands_use_real_flags(unit: Path) -> None:
    lines = unit_exec_lines(unit)
    assert lines, f"{unit.name} has no ExecStart="
    for words in lines:
        argv = taskq_argv(words)
        assert argv[0] in ("master", "worker")
        assert unknown_flags(argv) == [], f"{unit.name}: {argv}"


def test_env_examples_use_real_flags() -> None:
    found = 0
    for path in ENV_EXAMPLES:
        for line in path.read_text().splitlines():
            m = re.match(r"#?\s*TASKQ_(MASTER|WORKER)_ARGS=(.*)", line)
            if m:
                found += 1
                argv = [m[1].lower(), *shlex.split(m[2])]
                assert unknown_flags(argv) == [], f"{path.name}: {line}"
    assert found, "no TASKQ_MASTER_ARGS / TASKQ_WORKER_ARGS example"


def test_worker_unit_stop_timeout_outlasts_grace() -> None:
    unit = SYSTEMD / "taskq-worker@.service"
    text = unit.read_text()
    assert re.search(r"^KillMode=mixed$", text, re.M)
    timeout = re.search(r"^TimeoutStopSec=(.+)$", text, re.M)
    assert timeout, "no TimeoutStopSec="
    (argv,) = [taskq_argv(w) for w in unit_exec_lines(unit)]
    grace = float(option(argv, "--grace") or GRACE_DEFAULT)
    assert seconds(timeout[1]) > grace


def test_compose_commands(compose: dict) -> None:
    services = compose["services"]
    assert {"master", "worker"} <= set(services)
    declared_secrets = set(compose.get("secrets", {}))
    for name, service in services.items():
        # The image's ENTRYPOINT is ["taskq"]; `command` holds its arguments.
        entry = service.get("entrypoint", ["taskq"])
        words = entry + service["command"]
        argv = taskq_argv([str(w) for w in words])
        assert unknown_flags(argv) == [], f"{name}: {argv}"
        key_file = option(argv, "--authkey-file")
        if key_file and key_file.startswith("/run/secrets/"):
            secret = key_file.removeprefix("/run/secrets/")
            assert secret in declared_secrets
            assert secret in service.get("secrets", []), f"{name} does not mount {secret}"
        assert service.get("restart") or service.get("deploy", {}).get("restart_policy")
    worker = services["worker"]
    grace = float(option([str(w) for w in worker["command"]], "--grace") or GRACE_DEFAULT)
    assert seconds(worker["stop_grace_period"]) > grace
    assert "TASKQ_WORKERS" in str(worker["deploy"]["replicas"])


def test_key_files_are_kept_out_of_git_and_images() -> None:
    ignored = (DEPLOY / ".gitignore").read_text().split()
    docker_ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for name in LOCAL_SECRETS:
        assert f"/{name}" in ignored or name in ignored
        assert f"deploy/{name}" in docker_ignored


KEY_ASSIGNED = re.compile(r"TASKQ_AUTHKEY\s*[=:]\s*[\"']?(?P<value>[^\s\"'#`]*)")
# What secrets.token_urlsafe / token_hex print: long runs of the URL-safe alphabet.
LONG_TOKEN = re.compile(r"(?<![\w/.-])[A-Za-z0-9_-]{32,}(?![\w-])")


def looks_like_key(token: str) -> bool:
    mixed = (re.search(r"[A-Z]", token) and re.search(r"[a-z]", token)
             and re.search(r"\d", token))
    return bool(mixed or re.fullmatch(r"[0-9a-f]{32,}", token))


def deploy_files() -> list[Path]:
    skip = {DEPLOY / name for name in LOCAL_SECRETS}
    return [*(p for p in sorted(DEPLOY.rglob("*")) if p.is_file() and p not in skip),
            DEPLOYMENT_DOC]


def test_no_literal_key_under_deploy() -> None:
    files = deploy_files()
    assert files
    for path in files:
        text = path.read_text(errors="replace")
        for m in KEY_ASSIGNED.finditer(text):
            value = m["value"]
            # Allowed: nothing, a reference ($VAR, ${VAR}, $(cat ...)), or a placeholder.
            assert value in ("", "...") or value.startswith(("$", "<")), (
                f"{path.relative_to(ROOT)}: TASKQ_AUTHKEY given a literal value")
        for token in LONG_TOKEN.findall(text):
            assert not looks_like_key(token), (
                f"{path.relative_to(ROOT)}: {token[:6]}... looks like a key")


def test_compose_speaks_tls_with_certificates_mounted_as_secrets(compose: dict) -> None:
    services = compose["services"]
    declared = compose.get("secrets", {})
    for name, flags in (("master", ("--tls-cert", "--tls-key")), ("worker", ("--tls-ca",))):
        argv = [str(w) for w in services[name]["command"]]
        for flag in flags:
            path = option(argv, flag)
            assert path and path.startswith("/run/secrets/"), (name, flag)
            secret = path.removeprefix("/run/secrets/")
            assert secret in declared and secret in services[name]["secrets"], (name, secret)
            assert declared[secret]["file"].startswith("./tls/")
    assert "/tls/" in (DEPLOY / ".gitignore").read_text().split()
    assert "deploy/tls" in (DEPLOY / "Dockerfile.dockerignore").read_text().split()



# `taskq master ...` / `taskq worker ...` in a docs page: in a shell block or an indented
# command line, after a prompt, an environment assignment or `docker run ... IMAGE`.
DOC_COMMAND = re.compile(r"(?:^|[\s(])taskq (?P<argv>(?:master|worker)(?: [^#`|\n]*)?)")


def doc_command_lines(path: Path) -> list[list[str]]:
    """The master and worker command lines a docs page shows (comments dropped, continuation
    lines joined, `[--flag]` optional parts unbracketed)."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    found = []
    for m in DOC_COMMAND.finditer(text):
        words = m["argv"].replace("[", " ").replace("]", " ").split()
        found.append([w for w in words if w not in ("...", "…")])
    return found


def test_deployment_doc_is_where_deploy_readme_points() -> None:
    assert "docs/operations/deployment.md" in (DEPLOY / "README.md").read_text()
    assert doc_command_lines(DEPLOYMENT_DOC), "no taskq command line in the deployment page"


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_command_lines_use_real_flags(page: Path) -> None:
    for argv in doc_command_lines(page):
        assert unknown_flags(argv) == [], f"{page.relative_to(ROOT)}: taskq {' '.join(argv)}"


def test_doc_command_check_is_not_vacuous() -> None:
    lines = [argv for page in DOC_PAGES for argv in doc_command_lines(page)]
    assert len(lines) >= 10
    assert unknown_flags(["worker", "--connect", "h:5000", "--no-such-flag"]) == [
        "--no-such-flag"]

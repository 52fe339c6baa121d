"""Key rotation without downtime: a master accepts every key of its key files; peers with the
old key and with the new one work side by side, the master logs the fingerprint each used
(never a key), and ``taskq status`` counts the connections on each."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import tasks_mod
from cluster import Cluster, wait_for

from taskq.net import keys

pytestmark = pytest.mark.timeout(120)


def _key_file(path: Path, *keys: str) -> Path:
    path.write_text("".join(f"{k}\n" for k in keys))
    path.chmod(0o600)
    return path


def test_key_files_hold_one_key_per_line_and_fingerprints_hide_them(tmp_path: Path) -> None:
    both = _key_file(tmp_path / "both", "new-key", "", "old-key", "new-key")
    assert keys.read_keys([both]) == [b"new-key", b"old-key"]
    assert keys.read_key_file(both) == b"new-key"  # a peer uses the first
    fp = keys.fingerprint(b"new-key")
    assert len(fp) == 8 and fp == keys.fingerprint(b"new-key") != keys.fingerprint(b"old-key")
    with pytest.raises(keys.AuthkeyMissing, match="is empty"):
        keys.read_keys([_key_file(tmp_path / "empty")])


def test_old_and_new_keys_work_side_by_side_and_status_counts_them(
        cluster: Cluster, tmp_path: Path) -> None:
    old, new, stranger = (secrets.token_hex(16) for _ in range(3))
    master = cluster.start_master("--authkey-file", str(_key_file(tmp_path / "new", new)),
                                  "--authkey-file", str(_key_file(tmp_path / "old", old)))
    cluster.spawn(["worker", "--connect", cluster.address, "--procs", "1"],
                  env={**cluster.env, "TASKQ_AUTHKEY": old})  # not rotated yet
    cluster.authkey = new  # the client and the CLI below: rotated
    with cluster.client() as client:
        assert client.submit(tasks_mod.add, 1, 2).result(timeout=60) == 3
        status = cluster.status()
        new_fp, old_fp = keys.fingerprint(new.encode()), keys.fingerprint(old.encode())
        assert list(status["keys"]) == [new_fp, old_fp]
        assert status["keys"][new_fp] >= 1 and status["keys"][old_fp] >= 1
        text = cluster.cli("status").stdout
        assert f"{old_fp}=" in text and f"{new_fp}=" in text
    out = cluster.cli("status", env={**cluster.env, "TASKQ_AUTHKEY": stranger,
                                     "TASKQ_ADDRESS": cluster.address})
    assert out.returncode == 1 and "authkey rejected" in out.stderr
    log = master.stderr()
    wait_for(lambda: f"key='{old_fp}'" in master.stderr() or f'"key": "{old_fp}"' in
             master.stderr(), 10, "the old key's fingerprint in the log")
    for key in (old, new, stranger):
        assert key not in master.stderr() and key not in log


def test_a_key_file_with_two_lines_accepts_both(cluster: Cluster, tmp_path: Path) -> None:
    old, new = secrets.token_hex(16), secrets.token_hex(16)
    cluster.start_master("--authkey-file", str(_key_file(tmp_path / "keys", new, old)))
    for key in (old, new):
        out = cluster.cli("status", "--json", env={**cluster.env, "TASKQ_AUTHKEY": key,
                                                   "TASKQ_ADDRESS": cluster.address})
        assert out.returncode == 0, out.stderr
        assert len(json.loads(out.stdout)["keys"]) == 2

"""A host of its own on this machine, to cut off from the master and heal: a Linux network
namespace joined to this one by a veth pair on a private bridge (root, and ``ip``).

    Net().up() ── bridge (master_ip) ═ veth ═ namespace ``ns`` (host_ip)
    cut()  ── the veth down: nothing passes either way, no connection is closed
    heal() ── the veth up again
    down() ── namespace, veth and bridge removed

Processes run inside with ``prefix`` (``ip netns exec NS``) and reach the master at
``master_ip``. The partition test and ``python -m bench chaos --partition`` use it.
"""

from __future__ import annotations

import random
import subprocess


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Net:
    """One namespace host on a private bridge; the bridge end is this namespace's side."""

    def __init__(self) -> None:
        tag = f"{random.randrange(16**4):04x}"
        self.ns, self.bridge, self.veth = f"tq{tag}h1", f"tq{tag}br", f"tq{tag}v1"
        subnet = f"10.78.{random.randrange(1, 250)}"
        self.master_ip, self.host_ip = f"{subnet}.254", f"{subnet}.1"

    @property
    def prefix(self) -> tuple[str, ...]:
        """The command prefix that runs a process on the namespace host."""
        return ("ip", "netns", "exec", self.ns)

    def up(self) -> None:
        """Make the host; OSError or CalledProcessError where namespaces are not allowed
        (call ``down`` then, to remove what was made)."""
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.master_ip}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        _ip("netns", "add", self.ns)
        _ip("link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        _ip("link", "set", self.veth, "master", self.bridge, "up")
        _ip("-n", self.ns, "addr", "add", f"{self.host_ip}/24", "dev", "eth0")
        _ip("-n", self.ns, "link", "set", "eth0", "up")
        _ip("-n", self.ns, "link", "set", "lo", "up")

    def cut(self) -> None:
        _ip("link", "set", self.veth, "down")

    def heal(self) -> None:
        _ip("link", "set", self.veth, "up")

    def down(self) -> None:
        for args in (("netns", "del", self.ns), ("link", "del", self.veth),
                     ("link", "del", self.bridge)):
            subprocess.run(["ip", *args], capture_output=True, timeout=30)

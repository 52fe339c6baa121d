"""The remote calls on shared primitives, declared: part of the broker's interface.

Extended by ``taskq.protocol.api.BrokerAPI``; implemented by ``taskq.master.broker_prims``.
Primitives are shared by name (whoever names one reaches it), so none of these calls takes
a claim; a waiting call's ``wait`` and a leased one's ``session`` and ``lease`` are keywords.
"""

from __future__ import annotations

from typing import Protocol

from taskq.protocol.calls import shared
from taskq.protocol.prims import PrimRow


class PrimitivesAPI(Protocol):
    """The master's primitives, as every process calls them."""

    @shared
    def prim_open(self, kind: str, name: str, param: int) -> int: ...

    @shared
    def prim_acquire(self, kind: str, name: str, capacity: int, token: str, *, session: str,
                     lease: float, wait: float) -> bool: ...

    @shared
    def prim_release(self, kind: str, name: str, token: str) -> str: ...

    @shared
    def prim_renew(self, session: str, tokens: list[str]) -> list[str]: ...

    @shared
    def dict_get(self, name: str, key: str) -> bytes | None: ...

    @shared
    def dict_set(self, name: str, key: str, value: bytes) -> None: ...

    @shared
    def dict_pop(self, name: str, key: str) -> bytes | None: ...

    @shared
    def dict_setdefault(self, name: str, key: str, value: bytes) -> bytes: ...

    @shared
    def dict_cas(self, name: str, key: str, expected: bytes, value: bytes) -> bool: ...

    @shared
    def dict_keys(self, name: str) -> list[str]: ...

    @shared
    def counter_add(self, name: str, n: int) -> int: ...

    @shared
    def event_set(self, name: str, *, flag: bool) -> None: ...

    @shared
    def event_wait(self, name: str, *, wait: float) -> bool: ...

    @shared
    def queue_put(self, name: str, maxsize: int, item_id: str, body: bytes, *,
                  wait: float) -> bool: ...

    @shared
    def queue_get(self, name: str, token: str, *, session: str, lease: float,
                  wait: float) -> tuple[str, bytes] | None: ...

    @shared
    def queue_done(self, name: str, item_id: str, token: str, *, requeue: bool) -> bool: ...

    @shared
    def queue_size(self, name: str) -> tuple[int, int]: ...

    @shared
    def queue_join(self, name: str, *, wait: float) -> bool: ...

    @shared
    def primitives(self) -> list[PrimRow]: ...

    @shared
    def delete_primitive(self, name: str, *, kind: str | None = None) -> list[str]: ...

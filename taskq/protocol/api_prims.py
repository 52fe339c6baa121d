"""The remote calls on shared primitives, typed: twins of ``taskq.master.broker_prims``.

Mixed into ``taskq.protocol.api.Remote``; the same test checks these against the broker's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from taskq.protocol.prims import PrimRow


class RemotePrimitives:
    """The master's primitives, as seen from another process."""

    __slots__ = ()
    _call: Callable[..., Any]

    def prim_open(self, kind: str, name: str, param: int) -> int:
        return cast(int, self._call("prim_open", kind, name, param))

    def prim_acquire(self, kind: str, name: str, capacity: int, token: str, session: str,
                     lease: float, wait: float) -> bool:
        return cast(bool, self._call("prim_acquire", kind, name, capacity, token, session,
                                     lease, wait))

    def prim_release(self, kind: str, name: str, token: str) -> str:
        return cast(str, self._call("prim_release", kind, name, token))

    def prim_renew(self, session: str, tokens: list[str]) -> list[str]:
        return cast("list[str]", self._call("prim_renew", session, tokens))

    def dict_get(self, name: str, key: str) -> bytes | None:
        return cast("bytes | None", self._call("dict_get", name, key))

    def dict_set(self, name: str, key: str, value: bytes) -> None:
        self._call("dict_set", name, key, value)

    def dict_pop(self, name: str, key: str) -> bytes | None:
        return cast("bytes | None", self._call("dict_pop", name, key))

    def dict_setdefault(self, name: str, key: str, value: bytes) -> bytes:
        return cast(bytes, self._call("dict_setdefault", name, key, value))

    def dict_cas(self, name: str, key: str, expected: bytes, value: bytes) -> bool:
        return cast(bool, self._call("dict_cas", name, key, expected, value))

    def dict_keys(self, name: str) -> list[str]:
        return cast("list[str]", self._call("dict_keys", name))

    def counter_add(self, name: str, n: int) -> int:
        return cast(int, self._call("counter_add", name, n))

    def event_set(self, name: str, flag: bool) -> None:
        self._call("event_set", name, flag)

    def event_wait(self, name: str, wait: float) -> bool:
        return cast(bool, self._call("event_wait", name, wait))

    def queue_put(self, name: str, maxsize: int, item_id: str, body: bytes,
                  wait: float) -> bool:
        return cast(bool, self._call("queue_put", name, maxsize, item_id, body, wait))

    def queue_get(self, name: str, token: str, session: str, lease: float,
                  wait: float) -> tuple[str, bytes] | None:
        return cast("tuple[str, bytes] | None",
                    self._call("queue_get", name, token, session, lease, wait))

    def queue_done(self, name: str, item_id: str, token: str, requeue: bool) -> bool:
        return cast(bool, self._call("queue_done", name, item_id, token, requeue))

    def queue_size(self, name: str) -> tuple[int, int]:
        return cast("tuple[int, int]", self._call("queue_size", name))

    def queue_join(self, name: str, wait: float) -> bool:
        return cast(bool, self._call("queue_join", name, wait))

    def primitives(self) -> list[PrimRow]:
        return cast("list[PrimRow]", self._call("primitives"))

    def delete_primitive(self, name: str, kind: str | None = None) -> list[str]:
        return cast("list[str]", self._call("delete_primitive", name, kind))

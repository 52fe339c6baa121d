"""Unique tasks: while a task with a ``unique`` key lives, a submit with that key joins it.

Pure. A joining submit does not become a task: its id is an alias of the live task, and when
that task ends its result is copied to every alias (each in its own submitter's outbox), so
each submitter's future sees the one outcome::

    submit(unique=K) ── K free ──► a task; live[K] = its id
                     ── K live ──► alias: joined[target] += (outbox, id)
    the task ends ──► a copy of its result per alias; K free again (or, with unique_for,
                      recent[K] keeps the result: a submit within that time gets it at once)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from taskq.protocol.messages import ResultMsg


@dataclass(slots=True)
class Recent:
    result: ResultMsg
    until: float


@dataclass(slots=True)
class Uniques:
    live: dict[str, str] = field(default_factory=dict)  # key -> task id
    joined: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # target -> aliases
    aliases: dict[str, str] = field(default_factory=dict)  # alias id -> target id
    recent: dict[str, Recent] = field(default_factory=dict)  # key -> result (unique_for)
    new_aliases: list[tuple[str, str, str]] = field(default_factory=list)  # for the journal
    gone_aliases: list[str] = field(default_factory=list)

    def target(self, key: str, now: float) -> str | ResultMsg | None:
        """The live task a submit with ``key`` joins, the result it gets at once (an ended
        task within its unique_for), or None: it is a new task."""
        if key in self.live:
            return self.live[key]
        recent = self.recent.get(key)
        if recent is None:
            return None
        if recent.until > now:
            return recent.result
        del self.recent[key]
        return None

    def join(self, target: str, outbox: str, alias: str) -> None:
        self.joined.setdefault(target, []).append((outbox, alias))
        self.aliases[alias] = target
        self.new_aliases.append((alias, outbox, target))

    def leave(self, alias: str) -> str | None:
        """Detach an alias (it was cancelled); returns its outbox."""
        target = self.aliases.pop(alias, None)
        if target is None:
            return None
        members = self.joined.get(target, [])
        outbox = next((o for o, a in members if a == alias), None)
        self.joined[target] = [(o, a) for o, a in members if a != alias]
        self.gone_aliases.append(alias)
        return outbox

    def ended(self, key: str, task_id: str, result: ResultMsg, keep_until: float,
              now: float) -> list[tuple[str, ResultMsg]]:
        """The task ended: frees its key; returns a copy of its result for each alias."""
        if self.live.get(key) == task_id:
            del self.live[key]
            if keep_until > now:
                self.recent[key] = Recent(result, keep_until)
        copies = []
        for outbox, alias in self.joined.pop(task_id, []):
            self.aliases.pop(alias, None)
            self.gone_aliases.append(alias)
            copies.append((outbox, replace(result, task_id=alias)))
        return copies

    def drain(self) -> tuple[list[tuple[str, str, str]], list[str]]:
        new, gone = self.new_aliases, self.gone_aliases
        self.new_aliases, self.gone_aliases = [], []
        return new, gone

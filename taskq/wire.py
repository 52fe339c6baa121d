"""The names older releases pickled the messages under (``taskq.wire.TaskMsg`` …): they live in
``taskq.protocol.messages``; this module only keeps those names loadable."""

from taskq.protocol.messages import ResultMsg, Schedule, Status, TaskMsg, TaskOptions, WorkerHello

__all__ = ["ResultMsg", "Schedule", "Status", "TaskMsg", "TaskOptions", "WorkerHello"]

"""Loaded into the process pool's forkserver only (``ProcessPool.start`` preloads it):
importing it is what makes that process outlive SIGTERM and SIGINT sent to the worker's
whole process group, and with it every pool process it forks.

Without it a group signal kills the forkserver, and each pool process's sentinel (a pipe
from the forkserver) then reads as if the process had died: its running task would be
reported as crashed though it still runs. Only the worker stops its pool; a pool process
still exits at once when the worker dies (its watchdog, ``taskq.worker.pools.child``).
Nothing else imports this module.
"""

from __future__ import annotations

from taskq.worker.pools.child import shield_stop_signals

shield_stop_signals()

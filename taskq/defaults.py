"""Defaults and tuning constants, each with the trade-off it settles."""

from __future__ import annotations

import os
from pathlib import Path

# The port `taskq master` listens on and `--connect HOST` assumes when no port is given.
PORT = 5000
# Environment variables the CLI and the API read.
ENV_ADDRESS = "TASKQ_ADDRESS"
ENV_AUTHKEY = "TASKQ_AUTHKEY"
ENV_STATE_DIR = "TASKQ_STATE_DIR"
# Where a worker tells its pool processes the master is, and its key, for current_client()
# (set only in the worker's own environment; never printed).
ENV_TASK_MASTER = "TASKQ_TASK_MASTER"
ENV_TASK_AUTHKEY = "TASKQ_TASK_AUTHKEY"

# Workers heartbeat this often; cheap (one small call), and it bounds how fast a loss is seen.
HEARTBEAT_S = 1.0
# The master lengthens the heartbeat interval it tells workers as the crowd grows, so that
# all of them together beat at most this often: 1 s up to 50 workers, 4 s at 200, 20 s at
# 1,000. A beat wakes an idle master (about 100 µs of its CPU here), so this is what a crowd
# of idle workers costs it: about 0.5% of a core, however large the crowd.
MAX_BEATS_PER_S = 50.0
# A worker is lost once silent for this many of its heartbeat intervals, when that is longer
# than LOST_AFTER_S: a big crowd notices a silent (cut off) worker later, the price of a
# flat beat rate. A worker whose poll's connection ends (its process died) is lost
# LOST_AFTER_S later however big the crowd, unless it joins again meanwhile.
LOST_BEATS = 3
# A worker whose poll's connection ended has LOST_AFTER_S to join again, or as long as the
# whole crowd would take to rejoin at this many joins a second if that is longer (a network
# reset cuts every connection at once; one master here admits 650-750 a second).
REJOINS_PER_S = 100.0
# A worker silent this long is lost and its leases go back to the queue. Shorter redelivers
# sooner after a crash; longer rides out GC pauses and short network blips.
LOST_AFTER_S = 5.0
# How many times a task may be handed to a worker that is then lost before it fails with
# WorkerLost: a task that kills every worker it touches must not loop forever.
MAX_LOST_ATTEMPTS = 3
# How many distinct workers may fail to load a task (its module does not import there)
# before it fails, even if more serve its queue: a task that this many could not import
# is a deployment problem to report, not one to walk the whole crowd with.
MAX_LOAD_REFUSALS = 8
# How often the master looks for expired leases; the loss is seen within LOST_AFTER_S + this.
REAP_EVERY_S = 0.25

# Longest a blocking call waits on the master for work or results. Short keeps every call
# bounded and lets a caller notice stop requests; long costs nothing (the wait is a condition).
LONG_POLL_S = 1.0
# Longest a call parked on the master's loop may wait (it holds no thread while it waits):
# a worker's poll (take) asks for this long, since work for it or a cancel wakes
# it at once, so an idle worker costs the master a call per poll and no more.
PARKED_POLL_MAX_S = 30.0
# A reply from the master that takes longer than this (plus the call's own wait, for a
# long-poll) means the link is dead: the caller reconnects.
CALL_TIMEOUT_S = 15.0
# Time allowed for a TCP connect plus the authkey handshake.
CONNECT_TIMEOUT_S = 5.0
# A worker that cannot reach its master within this long says once that it waits, and how long.
CONNECT_NOTICE_S = 1.0
# How long a client or worker keeps trying to reach a master that went away before it gives up
# (clients fail their futures with ConnectError, workers exit non-zero).
RECONNECT_FOR_S = 60.0
# A new connection that has not finished the handshake and first request in this time is
# dropped: a silent peer holds a server thread no longer than this.
HANDSHAKE_TIMEOUT_S = 5.0
# A TLS peer sends its hello at once; one silent this long on a TLS master is a plain-text
# peer waiting for the challenge, and is told so. Longer tolerates slower links; shorter
# tells a plain peer sooner. Well under HANDSHAKE_TIMEOUT_S.
PLAIN_PEER_WAIT_S = 2.0
# Keepalive on every master socket: a peer that vanished (power loss, partition) is noticed
# after about IDLE + INTERVAL * COUNT seconds and its server thread is freed.
KEEPALIVE_IDLE_S = 10
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3

# Submissions are flushed in batches of at most this many tasks: large enough to amortise a
# round trip, small enough that one call does not hold the broker lock for long.
SUBMIT_BATCH = 1000
# A client fetches at most this many results per call, for the same reason.
RESULT_BATCH = 2000
# ... and no batch (submitted, leased or fetched) carries much more than this many bytes of
# bodies: large payloads then flow through the master in a pipeline instead of one lump.
BATCH_BYTES = 4 * 1024 * 1024
# Tasks a worker asks for per pool process: at least MIN, at most MAX, aiming at about
# PREFETCH_TARGET_S of queued work so short tasks are batched and long ones are not hoarded.
PREFETCH_MIN = 2
PREFETCH_MAX = 256
PREFETCH_TARGET_S = 0.02
# While more tasks are queued than processes run (throughput, not latency, is at stake) a
# worker gathers outcomes this long before reporting them in one call: fewer, larger reports.
REPORT_LINGER_S = 0.002
# A worker tells the master a task began (for Future.running) in the report of its outcome when
# that comes within this long, else on its own: a short task costs no extra call, and a long
# one shows running this much after it began.
START_LINGER_S = 0.05
# With reported results the master has not journaled yet, the worker asks for their
# receipt after this long without another outcome (a later report brings it otherwise).
ACK_LINGER_S = 0.05
# Tasks written ahead into one pool process's pipe: the process runs them back to back
# without waiting for the worker between tasks (no-op tasks go about twice as fast at 8 as at
# 2). The worker's prefetch, not this, bounds how much work it holds, so long tasks are not
# hoarded; a task written ahead but not begun is handed back when the worker stops.
CHILD_DEPTH = 8

# A client remembers the ids of tasks it got results for during this long (at most this many):
# a master killed before it journaled those ends would run them again after its restart, so the
# client names them when it reconnects. Longer than any journal commit can lag; ids are small.
RESOLVED_KEPT_S = 5.0
RESOLVED_KEPT_MAX = 200_000

# Pending tasks the master holds before a submit waits for room (backpressure): bounds the
# master's memory (about 1 KiB per small task) while workers catch up.
MAX_PENDING = 1_000_000
# Tasks a client keeps encoded but not yet sent before `submit` blocks: bounds a client that
# submits faster than the master accepts.
CLIENT_MAX_UNSENT = 100_000

# Results waiting for a `Client` (outboxes named CLIENT_OUTBOX_PREFIX...) that has not been
# in touch for this long are dropped: that client is gone and no one else can fetch them.
# Named jobs of `taskq submit` are kept until fetched, however long.
RESULT_TTL_S = 3600.0
CLIENT_OUTBOX_PREFIX = "client-"
# A task's result is kept for reading by id (``result_ttl``) this long when neither the task
# nor the master (``taskq master --result-ttl``) says otherwise: not at all, so a task that
# asks for nothing costs nothing.
KEPT_RESULT_TTL_S = 0.0
# Ids whose kept result expired that the master still remembers, so a late reader hears
# ``ResultExpired`` rather than "no such task" (oldest first out; an id is ~40 bytes).
EXPIRED_IDS_KEPT = 100_000
# Named jobs of `taskq submit` are outboxes named JOB_OUTBOX_PREFIX + name. The master remembers
# this many jobs whose results were all fetched, so `taskq results` of such a job says it is
# done rather than that no such job exists (bounded: names cost memory).
JOB_OUTBOX_PREFIX = "job:"
KNOWN_JOBS_KEPT = 10_000

# A schedule's tick found this much later than its time was missed (the master was down): its
# catch_up policy decides ("once": one run, not one per missed tick; "skip": none). Well above
# any delay of the master's timer, well below the shortest sensible interval's worth of outage.
SCHEDULE_MISSED_AFTER_S = 60.0
# Results a schedule's job keeps when no one fetches them (the oldest go first): a schedule
# that runs every 30 s for a year must not fill the master.
SCHEDULE_RESULTS_KEPT = 100

# After a restart, a journaled task that was leased waits for the worker that held it to
# claim it back (so that it does not run twice), until that worker has said what it holds,
# or for the master's --lost-after (at least this long) if it does not come back. A task
# that no worker held runs at once.
RESTORE_CLAIM_S = 2.0

# Largest encoded task (function plus arguments) the master accepts by default.
MAX_PAYLOAD_MB = 64.0
# Journal commits: tasks journaled within one call are committed together; the WAL file is
# checkpointed by SQLite itself. synchronous=NORMAL survives a killed master (not power loss).
JOURNAL_SYNCHRONOUS = "NORMAL"
# The journal's writer gathers changes this long before each commit: a trickle of tasks costs
# one transaction per window instead of three per task (and a task that starts and ends
# within it is never written); a durable submit waits this much longer.
JOURNAL_WINDOW_S = 0.002
# The journal's writer gives freed space back to the disk (incremental vacuum, then the WAL
# truncated) once it has had nothing to commit for this long: shorter shrinks the files
# sooner after results are fetched, longer keeps that work further from bursts of commits.
JOURNAL_IDLE_S = 0.5
# ... and, when commits never pause that long, in one round between two commits at most this
# often: bounds how long freed space stays on disk under steady load, at the price of one
# commit every so often waiting up to JOURNAL_UPKEEP_BUDGET_S.
JOURNAL_UPKEEP_MAX_S = 10.0
# Longest one round of that upkeep holds the writer: a durable submit arriving meanwhile waits
# at most this much; a large free list is given back over several rounds.
JOURNAL_UPKEEP_BUDGET_S = 0.05
# Pages (4 KiB) one incremental-vacuum step frees: larger steps mean fewer transactions,
# smaller ones keep a round closer to its budget.
JOURNAL_VACUUM_PAGES = 256
# Free pages and WAL the journal may keep without upkeep (also SQLite's journal_size_limit):
# below it, free pages are left for new rows and the WAL for the next commits to reuse, so
# commits do not grow the files again; above it, they are given back.
JOURNAL_SLACK_BYTES = 1024 * 1024

# A graceful worker stop waits this long for running tasks before it kills them.
GRACE_S = 30.0


def state_dir() -> Path:
    """Where the master keeps its journal and generated authkey by default."""
    env = os.environ.get(ENV_STATE_DIR)
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "taskq"


# Every frame read on a connection to or from the master is refused (its connection closed)
# when it claims more than the master's --max-payload plus this, before anything is
# allocated for it. The largest legitimate message is a batch: its bodies stop growing past
# BATCH_BYTES, so they hold at most that plus one task or result of at most --max-payload
# (workers keep results within it); the ids, options and details around them take well
# under 16 MiB even for the thousands of tasks of a large worker's lease or heartbeat.
FRAME_OVER_PAYLOAD_BYTES = BATCH_BYTES + 16 * 1024 * 1024
# A frame that did not come in one read must be whole within FRAME_TIMEOUT_S plus one second
# per FRAME_MIN_BYTES_PER_S of it, and on the master no read inside it (nor a send) may wait
# longer than FRAME_TIMEOUT_S: a peer that stops mid-frame frees its server thread. Longer
# bounds suit slower links; a connection's wait between requests stays unbounded.
FRAME_TIMEOUT_S = 15.0
FRAME_MIN_BYTES_PER_S = 256 * 1024
# The master takes FRAME_TIMEOUT_S from this environment variable (seconds) when it is set.
ENV_FRAME_TIMEOUT = "TASKQ_FRAME_TIMEOUT_S"


# Worker pools. An asyncio worker runs this many tasks at once by default: coroutines that
# wait cost little, and more would only hoard tasks other workers could run.
ASYNC_CONCURRENCY = 1000
# A thread or asyncio worker holds what its slots run in PREFETCH_TARGET_S, as a process
# worker does, but at most PREFETCH_MAX in all or this many per slot, whichever is more: its
# slots are many and cheap, and more would hoard the queue (1,000 coroutines x 256).
PREFETCH_PER_SLOT = 2
# Threads of an asyncio worker's executor, where plain functions sent to it run: as asyncio's
# own default, enough for blocking calls without a thread per task.
ASYNC_EXECUTOR_THREADS = 32
# The asyncio pool's loop ticks this often; a watchdog thread logs the task running when a
# tick is LOOP_SLOW_S late (asyncio's debug-mode slow-callback threshold): a task blocking the
# loop is named while it blocks, at the cost of a timer call per tick.
LOOP_TICK_S = 0.05
LOOP_SLOW_S = 0.1
# How long a stopping asyncio pool waits for its cancelled coroutines before leaving them.
LOOP_STOP_S = 5.0
# --------------------------------------------------------------------------- seeing in
# The master's web page and /metrics listen here by default: loopback only, so no token is
# needed; any other address requires one. "off" serves nothing.
HTTP_DEFAULT = "127.0.0.1:8265"
ENV_HTTP_TOKEN = "TASKQ_HTTP_TOKEN"  # noqa: S105 (the name of a variable, not a secret)
# Task history (every attempt) is kept this long by default (`--history`), and for at most
# this many tasks: the bound keeps the master's memory and the journal's size in check
# (about 1 KiB per task with a short traceback) whatever the task rate.
HISTORY_KEEP_S = 7 * 24 * 3600.0
HISTORY_MAX_TASKS = 100_000
# The reaper prunes history this often, at most this many tasks per round: off the hot path,
# and one round never holds the broker's lock for long.
HISTORY_PRUNE_EVERY_S = 5.0
HISTORY_PRUNE_BATCH = 5_000
# A failed task's call is kept as long as its history (`--history`, HISTORY_MAX_TASKS); once
# dropped, its id is remembered at least this much longer (a few bytes each), so that a replay
# says the call expired rather than that no such task failed.
DEAD_LETTER_TOMBSTONE_S = 24 * 3600.0
# A failed attempt's traceback is kept up to this many characters (its last ones): with
# HISTORY_MAX_TASKS, bounds the history's memory even when every task fails.
TRACEBACK_MAX_CHARS = 4_000
# A worker still starts a task whose expiry deadline (the master's wall clock) passed less
# than this ago by its own clock: the master leased it in time, and hosts' clocks (NTP)
# differ by less than this; a larger skew only moves the edge by that much.
EXPIRES_SKEW_S = 0.25
# The dashboard's charts cover this many one-minute windows.
STATS_WINDOWS = 15
# Bucket bounds (seconds) of the wait and run time histograms in /metrics.
HIST_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0, 300.0, 1800.0)
# Workers declared lost stay listed (as lost) this long on the page and in /metrics.
LOST_WORKERS_SHOWN_S = 900.0

# `Client.future(task_id)` of another submitter's task: how long the master may take to hear
# of it (its submitter sends it milliseconds after submit) before the id counts as unknown.
DEP_LOOKUP_GRACE_S = 1.0
# Progress from inside a task (taskq.report_progress): a message longer than this is cut, so
# a task cannot grow the worker's heartbeats or the master's memory with it.
PROGRESS_MESSAGE_MAX = 200
# Progress updates carried by one heartbeat at most (the latest value per task): bounds the
# call for a worker running thousands of reporting tasks; the rest go with the next one.
PROGRESS_PER_HEARTBEAT = 1000
# Task ids one `cancel` call may name: bounds the time one call holds the broker lock.
CANCEL_MAX_IDS = 10_000

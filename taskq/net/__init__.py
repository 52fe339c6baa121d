"""How processes reach the master: all of the ``multiprocessing.managers`` wiring. A framed
connection (``connection``), TLS on it (``tls``, ``secure``), keys (``keys``), the master's
server and the peers' proxy (``managers``), the epoll loop that serves every connection
(``serving``) and a peer's self-healing link (``link``). Imports ``protocol`` and the leaves."""

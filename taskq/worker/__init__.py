"""What runs in ``taskq worker`` and its pools: the worker that leases tasks and reports
outcomes (``worker``), what runs one task (``execute``, ``context``, ``report``) and the
pools (``pools/``). A pool process loads no master, network or CLI module."""

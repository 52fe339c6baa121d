"""What runs in a submitter's process: ``Client`` and its futures, cancels, dependencies,
``map``, schedules, the asyncio client, the local cluster, shared primitives and named jobs.
Never imports the master or the worker."""

"""taskq.worker.pools."""

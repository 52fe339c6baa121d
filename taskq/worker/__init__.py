"""taskq.worker."""

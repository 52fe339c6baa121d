"""taskq.protocol."""

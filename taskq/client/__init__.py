"""taskq.client."""

"""taskq.master."""

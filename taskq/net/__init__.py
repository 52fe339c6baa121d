"""taskq.net."""

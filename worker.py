"""`python worker.py ...` is `taskq worker ...`."""
import sys; from taskq.cli import main; sys.argv.insert(1, "worker"); main()  # noqa: E702,I001

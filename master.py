"""`python master.py ...` is `taskq master ...`."""
import sys; from taskq.cli import main; sys.argv.insert(1, "master"); main()  # noqa: E702,I001

"""`python -m kiteline` runs the CLI."""

from kiteline.cli import main

main()

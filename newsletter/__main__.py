"""`python -m newsletter`."""

from newsletter.cli.script import main

main()

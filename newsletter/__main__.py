"""`python -m newsletter`."""

from newsletter.cli.app import main

main()

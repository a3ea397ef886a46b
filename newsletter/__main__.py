"""`python -m newsletter`."""

from .cli import main

main()

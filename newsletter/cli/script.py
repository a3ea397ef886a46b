"""The `newsletter` script's entry point (and `python -m newsletter`'s).

The cyclic garbage collector is off while the command line is imported: those imports make
some hundred thousand objects that live until the end and no cyclic garbage, and the collector
would walk them again and again for nothing (about 10 ms of every command's start-up).
`app.main` turns it back on before the command runs.
"""

from __future__ import annotations

import gc


def main() -> None:
    """Run `newsletter` with the arguments in sys.argv."""
    gc.disable()
    from newsletter.cli.app import main as run

    run()

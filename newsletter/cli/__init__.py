"""CLI: the `newsletter` command. One thin module per command group: parse options, call the
library, print results (rich on a terminal, `--json` for scripts). The only package that
imports Typer; `common.reports_errors` is the one place errors become messages and exit codes.
"""

"""`python -m bot ...`: the `opsbot` command line (bot.cli) without its console script, with
the same commands: `python -m bot run`, `python -m bot worker [--drain]` (crash tests,
scripts), `python -m bot status`, ..."""

from __future__ import annotations

import sys

from bot.cli import main

if __name__ == "__main__":
    main(sys.argv[1:])

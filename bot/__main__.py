"""`python -m bot worker [--drain]`: the worker process without the CLI (crash tests, scripts)."""

from __future__ import annotations

import logging
import sys

from bot.config import load_settings
from bot.runtime import run_worker


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "worker" or set(argv[1:]) - {"--drain"}:
        print("usage: python -m bot worker [--drain]", file=sys.stderr)
        return 2
    settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr)
    return run_worker(settings, drain="--drain" in argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`python -m bot.sandbox [STATE_DIR] [--port N]`: the sandbox without the CLI (what
`opsbot run --sandbox` does)."""

from __future__ import annotations

import argparse
import asyncio

from bot.config import load_settings
from bot.logs import configure_logging
from bot.sandbox.run import DEFAULT_STATE_DIR, run_sandbox


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.sandbox", description=__doc__)
    parser.add_argument("state_dir", nargs="?", default=str(DEFAULT_STATE_DIR))
    parser.add_argument("--port", type=int, default=None, help="the page's port")
    args = parser.parse_args()
    configure_logging(load_settings())
    try:
        return asyncio.run(run_sandbox(args.state_dir, page_port=args.port))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

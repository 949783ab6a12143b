"""The `vispod` command: gathers the sub-commands every installed vispod package registers.

A package adds commands through the entry-point group `vispod.commands`; each entry point is a
`register(subparsers)` function that adds its parsers and sets `func` (args -> exit code).
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib.metadata import entry_points

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vispod", description="vispod: photo stories -> podcast dialogues")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for ep in sorted(entry_points(group="vispod.commands"), key=lambda e: e.name):
        try:
            register = ep.load()
        except (ImportError, AttributeError) as exc:  # a package without a CLI yet
            log.debug("skipping vispod.commands entry %s: %s", ep.name, exc)
            continue
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

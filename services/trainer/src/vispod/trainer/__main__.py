"""`python -m vispod.trainer …`: the Job's entry point; same flags as `vispod train`, or VISPOD_TRAINER_* env."""

from __future__ import annotations

import argparse
import sys

from vispod.trainer.cli import _train, add_arguments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vispod.trainer", description=__doc__)
    add_arguments(parser)
    return _train(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

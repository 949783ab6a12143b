"""`python -m vispod.trainer.launch [torchrun flags] -m vispod.trainer [trainer flags]`: torchrun, keeping exit codes.

torchrun's own CLI exits 1 whatever its workers returned, but the Job's podFailurePolicy decides on the trainer's
codes: 2 (bad input) and 3 (version already published) fail the Job at once, since a retry cannot help; 143 means
interrupted after a checkpoint. This runs torchrun's launcher (torch.distributed.run, unchanged flags) and exits
with the code of the rank that failed first; anything else, a killed rank included, is 1 (retry: the next pods
resume from the last checkpoint).

`--standalone` is one node: its rendezvous store, the workers' MASTER_ADDR and gloo's sockets stay on 127.0.0.1
unless told otherwise (torchrun would use whatever this host's name resolves to: the node's outward address, or
nothing at all on a machine without a resolver).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import MutableMapping

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import get_args_parser, run

PASSED_THROUGH = (2, 3, 143)
LOOPBACK = "127.0.0.1"
LOOPBACK_INTERFACE = "lo"


def exit_code(error: ChildFailedError) -> int:
    _, failure = error.get_first_failure()
    return failure.exitcode if failure.exitcode in PASSED_THROUGH else 1


def keep_standalone_on_loopback(args: argparse.Namespace, env: MutableMapping[str, str]) -> None:
    """A standalone gang talks over loopback: the node address it publishes and the interface gloo binds."""
    if not args.standalone:
        return
    args.local_addr = args.local_addr or LOOPBACK
    env.setdefault("GLOO_SOCKET_IFNAME", LOOPBACK_INTERFACE)  # inherited by the workers


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    keep_standalone_on_loopback(args, os.environ)
    try:
        run(args)
    except ChildFailedError as error:
        code = exit_code(error)
        print(f"vispod.trainer.launch: ranks failed, first: {error.get_first_failure()[1].message or 'see above'}; "
              f"exit {code}", file=sys.stderr)
        return code
    except SignalException as error:  # SIGTERM to the launcher: torchrun has stopped the workers
        return 128 + int(error.sigval) if error.sigval == signal.SIGTERM else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

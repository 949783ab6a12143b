"""A standalone torchrun gang stays on loopback: it must not depend on what this host's name resolves to.

CI once ran on a machine whose host name resolved through an unreachable DNS server; torchrun published that name as
MASTER_ADDR and gloo bound to it, and a rank aborted. `vispod.trainer.launch --standalone` now pins both to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from torch.distributed.run import get_args_parser

from vispod.trainer.launch import keep_standalone_on_loopback

WORKER = """
import json, os, sys
import torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
out = os.path.join(sys.argv[1], f"rank{dist.get_rank()}.json")
with open(out, "w") as fh:
    json.dump({"rank": dist.get_rank(), "sum": t.item(), "master_addr": os.environ["MASTER_ADDR"],
               "gloo_ifname": os.environ.get("GLOO_SOCKET_IFNAME")}, fh)
dist.destroy_process_group()
"""


def test_standalone_workers_meet_on_loopback_and_reduce(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "GLOO_SOCKET_IFNAME")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, "-m", "vispod.trainer.launch", "--standalone", "--nproc-per-node", "2",
                           "--max-restarts", "0", "--monitor-interval", "0.1", str(script), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # each rank writes its own file: two workers printing to one pipe can interleave their lines
    docs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert docs == [{"rank": r, "sum": 3.0, "master_addr": "127.0.0.1", "gloo_ifname": "lo"} for r in (0, 1)]


def test_only_standalone_is_pinned_and_explicit_choices_win() -> None:
    parser = get_args_parser()
    multi_node = parser.parse_args(["--nnodes", "2", "--rdzv-endpoint", "head:29400", "train.py"])
    env: dict[str, str] = {}
    keep_standalone_on_loopback(multi_node, env)
    assert multi_node.local_addr is None and env == {}

    chosen = parser.parse_args(["--standalone", "--local-addr", "10.1.2.3", "train.py"])
    env = {"GLOO_SOCKET_IFNAME": "eth1"}
    keep_standalone_on_loopback(chosen, env)
    assert chosen.local_addr == "10.1.2.3" and env == {"GLOO_SOCKET_IFNAME": "eth1"}

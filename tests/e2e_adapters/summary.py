"""The last line of `make e2e-adapters`, from the figures the tests recorded ($VISPOD_E2E_REPORT)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def line(report: dict) -> str:
    share = report.get("canary_share_pct")
    parts = [f"published {report.get('published', 0)}",
             f"canary share {share}%" if share is not None else "canary share not measured",
             "rollback ok" if report.get("rollback_ok") else "rollback NOT shown",
             "tampered rejected" if report.get("tampered_rejected") else "tampering NOT shown"]
    return "adapter e2e: " + ", ".join(parts)


def main(path: str) -> int:
    report = json.loads(Path(path).read_text()) if Path(path).stat().st_size else {}
    details = {k: v for k, v in report.items() if k not in ("published", "canary_share_pct", "rollback_ok",
                                                            "tampered_rejected", "exitstatus")}
    if details:
        print("figures: " + ", ".join(f"{k}={v}" for k, v in sorted(details.items())))
    print(line(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))

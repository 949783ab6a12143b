"""`python -m vispod.common.healthcheck`: the image's HEALTHCHECK. Exit 0 when the service in this container
(VISPOD_SERVICE) answers /readyz on its metrics port (VISPOD_<SERVICE>_METRICS_PORT, else 8082)."""

from __future__ import annotations

import os
import sys
import urllib.request

from vispod.common.settings import METRICS_PORT


def ready(service: str, timeout: float = 4.0) -> bool:
    port = os.environ.get(f"VISPOD_{service.upper()}_METRICS_PORT", str(METRICS_PORT))
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=timeout) as resp:
            return resp.status == 200
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(0 if ready(os.environ.get("VISPOD_SERVICE", "")) else 1)

"""The checkout the developer kit is installed from (always editable, never in an image) and what lies beside
it. The runtime knows none of this: the kit hands it over as settings."""

from __future__ import annotations

import os
from pathlib import Path

# services/devkit/src/vispod/devkit/checkout.py -> the repository root.
CHECKOUT = Path(__file__).resolve().parents[5]
SHARED_DATASETS = CHECKOUT.parent / "shared" / "datasets"


def use_shared_datasets() -> None:
    """VISPOD_DATASETS_ROOT defaults to `shared/datasets` beside the checkout (an explicit setting wins)."""
    os.environ.setdefault("VISPOD_DATASETS_ROOT", str(SHARED_DATASETS))

"""Loading an open_clip model from a local checkpoint, or random-initialised when explicitly asked.

Never downloads: the architecture comes from open_clip's bundled configs, the BPE vocabulary from its package,
the weights from a file we were given. Random weights are recorded on the bundle so every result can say so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch and open_clip load lazily: style-only processes never import them
    import torch
    from PIL import Image

log = logging.getLogger(__name__)

RANDOM_WEIGHTS_NOTE = "CLIP weights are RANDOM (random_weights=true): these grounding scores measure nothing"


class ClipLoadError(RuntimeError):
    pass


@dataclass
class ClipBundle:
    model: Any  # open_clip.CLIP (or CustomTextCLIP)
    preprocess: Callable[[Image.Image], torch.Tensor]
    tokenizer: Any  # open_clip SimpleTokenizer-like: encode(), sot/eot ids, context_length
    name: str
    random_weights: bool

    @property
    def context_length(self) -> int:
        return int(getattr(self.tokenizer, "context_length", 77))

    @property
    def label(self) -> str:
        return f"{self.name} (random weights)" if self.random_weights else self.name


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    import torch  # heavy (seconds): only a service with grounding on loads CLIP

    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as exc:  # pragma: no cover - depends on the image
            raise ClipLoadError(f"{path}: reading .safetensors needs the safetensors package") from exc
        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ClipLoadError(f"{path}: not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_clip(
    name: str = "ViT-B-32",
    weights: Path | None = None,
    *,
    random_init: bool = False,
    seed: int = 0,
) -> ClipBundle:
    """The named open_clip model with weights from `weights`, or random weights when `random_init` is set."""
    # heavy (seconds): only a service with grounding on loads CLIP
    import open_clip
    import torch

    if (weights is None) == (not random_init):
        raise ClipLoadError("give exactly one of a local weights file or random_init=True")
    if name not in open_clip.list_models():
        raise ClipLoadError(f"unknown open_clip model {name!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # random init is reproducible: parity checks can rebuild the same model
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None)
    if weights is not None:
        state = _read_state_dict(Path(weights))
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatches
            raise ClipLoadError(f"{weights} does not fit {name}: {exc}") from exc
        # position_ids-like buffers may legitimately differ; real parameters must all be there
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise ClipLoadError(
                f"{weights} does not fit {name}: missing {missing[:5]}…, unexpected {list(unexpected)[:5]}…"
            )
        log.info("loaded CLIP %s weights from %s", name, weights)
    else:
        log.warning("%s: %s", name, RANDOM_WEIGHTS_NOTE)
    model.eval()
    tokenizer = open_clip.get_tokenizer(name)
    return ClipBundle(model=model, preprocess=preprocess, tokenizer=tokenizer, name=name,
                      random_weights=weights is None)

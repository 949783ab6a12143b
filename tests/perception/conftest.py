"""Perception fixtures: the real offline models, loaded once, and real photos (scikit-image's bundled samples)."""

from __future__ import annotations

import pytest
import skimage.data
from PIL import Image

from vispod.perception.perceiver import PhotoPerceiver


@pytest.fixture(scope="session")
def perceiver() -> PhotoPerceiver:
    p = PhotoPerceiver()
    p.models  # noqa: B018 - loads the three models once for the session
    return p


@pytest.fixture(scope="session")
def photos() -> dict[str, Image.Image]:
    """Real photographs shipped with scikit-image: a cat, a cup of coffee, an astronaut."""
    return {name: Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
            for name in ("chelsea", "coffee", "astronaut")}


@pytest.fixture(scope="session")
def facts(perceiver: PhotoPerceiver, photos: dict[str, Image.Image]) -> dict:
    """Each photo's facts, perceived once for the session."""
    return {name: perceiver.perceive(img) for name, img in photos.items()}

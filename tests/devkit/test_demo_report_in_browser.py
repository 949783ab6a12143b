"""The demo's report in a real headless browser (Debian's chromium): each photo shows perception's boxes and the
facts beside the turns that discuss it. The same report without facts shows neither, so the check can fail."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from vispod.evaluation.story_report import render_story_report
from vispod.v1 import common_pb2, events_pb2

BOX_RGB = (0xFF, 0x00, 0xC8)      # the report's box colour
# No background traffic: tests stay on this machine.
QUIET = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
         "--dns-prefetch-disable", "--window-size=1200,2600"]


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: `make test` installs it (scripts/install-system-packages.sh test)")
    return path


def _dialogue(photo: Path, with_facts: bool) -> events_pb2.DialogueGenerated:
    ref = common_pb2.ImageRef(uri=photo.as_uri())
    if with_facts:
        ref.perception.objects.add(label="cat", score=0.91, box=common_pb2.Box(x_min=0.1, y_min=0.1, x_max=0.8,
                                                                                  y_max=0.9))
        ref.perception.labels.add(label="Egyptian cat", score=0.76)
        ref.perception.text.add(text="CHELSEA", score=0.88)
        ref.perception.models.add(task="objects", name="ssd-mobilenet-v2-coco", weights_sha256="a" * 64)
    turns = [common_pb2.Turn(speaker="Alex", text="The first photo shows a cat on a rug.", image_refs=[0]),
             common_pb2.Turn(speaker="Sam", text="What a calm cat she is.", image_refs=[0])]
    return events_pb2.DialogueGenerated(image_set_id="browser", status=common_pb2.STATUS_OK, images=[ref],
                                        input_mode=events_pb2.INPUT_MODE_FACTS, model="smollm2",
                                        dialogue=common_pb2.Dialogue(turns=turns))


def _render(tmp: Path, with_facts: bool) -> tuple[np.ndarray, str]:
    photo = tmp / "cat.jpg"
    Image.fromarray(skimage.data.chelsea()).save(photo)
    report = render_story_report(tmp / f"report-{with_facts}.html", None, [photo], [""], _dialogue(photo, with_facts),
                                 None, None, [])
    shot = tmp / f"shot-{with_facts}.png"
    subprocess.run([_chromium(), *QUIET, f"--screenshot={shot}", report.as_uri()], check=True, timeout=120,
                   capture_output=True)
    dom = subprocess.run([_chromium(), *QUIET, "--dump-dom", report.as_uri()], check=True, timeout=120,
                         capture_output=True, text=True).stdout
    return np.asarray(Image.open(shot).convert("RGB")), dom


def _box_pixels(pixels: np.ndarray) -> np.ndarray:
    return np.argwhere((np.abs(pixels.astype(int) - BOX_RGB) <= 8).all(axis=-1))


def test_the_report_draws_perceptions_boxes_and_lists_its_facts(tmp_path: Path) -> None:
    pixels, dom = _render(tmp_path, with_facts=True)
    drawn = _box_pixels(pixels)
    assert len(drawn) > 500, "no box drawn over the photo"
    height, width = drawn.max(axis=0) - drawn.min(axis=0)
    assert height > 100 and width > 100, "the box does not frame the cat"
    assert "Detected objects:" in dom and "cat (0.91)" in dom and "CHELSEA" in dom and "Egyptian cat" in dom
    assert "ssd-mobilenet-v2-coco" in dom and "machine-detected facts" in dom


def test_without_facts_there_is_nothing_to_draw(tmp_path: Path) -> None:
    pixels, dom = _render(tmp_path, with_facts=False)
    assert len(_box_pixels(pixels)) == 0 and "Detected objects:" not in dom

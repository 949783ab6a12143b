"""The images a judge sees pass the same access and format checks as everywhere else."""

from __future__ import annotations

import io
from pathlib import Path

from judge_scripted import ScriptedJudge
from PIL import Image

from vispod.common.images import ImageFetcher
from vispod.common.settings import ImageAccessSettings
from vispod.judge.judging import Comparer
from vispod.judge.protocol import Panel
from vispod.judge.rubrics import load_rubric
from vispod.judge.settings import JudgeSettings
from vispod.v1 import common_pb2


def _image(path: Path, fmt: str) -> common_pb2.ImageRef:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (120, 30, 200)).save(buf, fmt)
    path.write_bytes(buf.getvalue())
    return common_pb2.ImageRef(uri=path.as_uri(), caption="a boat")


def test_a_tiff_refused_elsewhere_is_refused_for_the_judges_too(tmp_path: Path) -> None:
    images = ImageAccessSettings(file_roots=[tmp_path])  # default formats: no TIFF
    settings = JudgeSettings(images=images, state_dir=tmp_path / "state", criteria=["naturalness"])
    comparer = Comparer(settings, Panel([ScriptedJudge()], load_rubric("v1")), ImageFetcher(images))
    refs = [_image(tmp_path / "ok.png", "PNG"), _image(tmp_path / "bad.tif", "TIFF")]
    pair, warnings = comparer.pair_input(refs, "A: hi", "B: hello")
    assert len(pair.images) == 1 and pair.images[0].mime == "image/jpeg"
    assert len(warnings) == 1 and "bad.tif" in warnings[0] and "format TIFF is not allowed" in warnings[0]

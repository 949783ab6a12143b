"""The demo's one-dialogue HTML page: photos beside the turns that discuss them, metrics, judgement, plot, notes."""

from __future__ import annotations

from pathlib import Path

from vispod.evaluation.story_report import render_story_report
from vispod.v1 import common_pb2, events_pb2


def _dialogue() -> events_pb2.DialogueGenerated:
    turns = [
        common_pb2.Turn(speaker="Alex", text="The waves at the beach were huge that morning.", image_refs=[0]),
        common_pb2.Turn(speaker="Sam", text="And the kids built a <castle> by the water!", image_refs=[1, 0]),
        common_pb2.Turn(speaker="Alex", text="Then the sun went down behind the pier.", image_refs=[4]),
        common_pb2.Turn(speaker="Sam", text="What a day.", image_refs=[]),
    ]
    return events_pb2.DialogueGenerated(
        image_set_id="story-9000", status=common_pb2.STATUS_OK, model="SmolLM2-135M-Instruct", backend="local",
        system="smollm2-135m", dialogue=common_pb2.Dialogue(turns=turns, text="..."),
        input_mode=events_pb2.INPUT_MODE_CAPTIONS, latency_seconds=12.5)


def test_story_report_is_one_self_contained_page(builtin_set: Path, tmp_path: Path) -> None:
    story = sorted(builtin_set.iterdir())[0]
    images = [story / f"image_{i}.png" for i in range(1, 6)]
    captions = [f"caption {i}" for i in range(1, 6)]
    metrics = events_pb2.MetricsComputed(
        style=common_pb2.StyleMetrics(words=30, num_turns=4, switch_rate=100.0),
        paper_style=common_pb2.StyleMetrics(words=34, num_turns=0),
        grounding=common_pb2.GroundingMetrics(clipscore=21.5, clip_model="ViT-B-32", random_weights=True))
    judgement = events_pb2.JudgementCompleted(system_a="smollm2-135m", system_b="baseline", verdicts=[
        events_pb2.Verdict(judge="local", criterion="naturalness", outcome=events_pb2.OUTCOME_TIE,
                           outcome_ab=events_pb2.OUTCOME_A_WINS, outcome_ba=events_pb2.OUTCOME_B_WINS,
                           rationale="equally natural")])
    notes = ["Generator: SmolLM2-135M-Instruct, REAL weights", "CLIP: random weights"]
    out = render_story_report(tmp_path / "demo" / "report.html", story, images, captions, _dialogue(), metrics,
                              judgement, notes)
    html = out.read_text()
    assert out == tmp_path / "demo" / "report.html"
    assert html.count("data:image/jpeg;base64,") == 5  # every photo embedded, nothing linked
    assert "data:image/png;base64," in html  # words-per-turn plot
    assert 'src="file:' not in html and "http" not in html.replace("http-equiv", "")
    # notes first, including what the events themselves say
    assert html.index("Read this first") < html.index("Photos, what perception found, and the turns")
    assert "REAL weights" in html and "captions, not their pixels" in html and "RANDOM" in html
    # photo 1 is discussed by turns 1 and 2, photo 5 by turn 3, photos 3-4 by none
    section = html[html.index("Photos, what perception found, and the turns"):html.index("The whole dialogue")]
    blocks = section.split('<div class="photo">')[1:]
    assert len(blocks) == 5
    assert "waves" in blocks[0] and "castle" in blocks[0] and "sun went down" in blocks[4]
    assert "No turn refers" in blocks[2]
    assert "&lt;castle&gt;" in html and "<castle>" not in html  # model text is escaped
    assert "naturalness" in html and "equally natural" in html and "21.500" in html


def test_story_report_without_metrics_or_judgement(tmp_path: Path) -> None:
    failed = events_pb2.DialogueGenerated(image_set_id="x", status=common_pb2.STATUS_FAILED,
                                          error="malformed model output", random_weights=True,
                                          dialogue=common_pb2.Dialogue(text="garbled"))
    html = render_story_report(tmp_path / "r.html", None, [], [], failed, None, None, []).read_text()
    assert "malformed model output" in html and "RANDOM weights" in html and "No metrics." in html

"""Caption grounding with the real all-MiniLM-L6-v2 weights: discussed photos, retrieval, long and empty turns."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from vispod.metrics.caption_grounding import COVERAGE_THRESHOLD, CaptionGrounder
from vispod.metrics.speaker_turns import parse_turns

CAPTIONS = [
    "the family rode the carousel at the county fair.",
    "our dog caught a frisbee on the beach.",
    "we lit the candles on the birthday cake.",
]
TURNS = [
    "Welcome back to the show, everyone!",
    "So the whole family went to the county fair, and the kids would not get off the carousel.",
    "Interest rates and the bond market kept traders nervous all week.",
    "Then grandma brought out the birthday cake, and we lit every single candle.",
]


@pytest.fixture(scope="module")
def grounder(caption_grounder: CaptionGrounder) -> CaptionGrounder:
    return caption_grounder


def test_discussed_photos_and_their_turns(grounder: CaptionGrounder) -> None:
    g = grounder.score(CAPTIONS, TURNS)
    assert g.weights == "all-MiniLM-L6-v2 (real)" and g.threshold == COVERAGE_THRESHOLD
    assert g.best_turn[0] == 1 and g.best_turn[2] == 3
    assert g.discussed == (True, False, True)
    assert g.coverage == pytest.approx(2 / 3)
    assert g.best_similarity[0] > 0.5 and g.best_similarity[1] < COVERAGE_THRESHOLD
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_turn_to_photo_retrieval(grounder: CaptionGrounder) -> None:
    right = grounder.score(CAPTIONS, TURNS, [None, 0, None, 2])
    assert (right.retrieval_hits, right.retrieval_n, right.retrieval_accuracy) == (2, 2, 1.0)
    wrong = grounder.score(CAPTIONS, TURNS, [None, 1, 7, 2])  # 7 is no photo of this story: not counted
    assert (wrong.retrieval_hits, wrong.retrieval_n) == (1, 2)
    assert grounder.score(CAPTIONS, TURNS).retrieval_accuracy is None
    with pytest.raises(ValueError, match="turn_photos"):
        grounder.score(CAPTIONS, TURNS, [0])


def test_empty_turns_and_no_captions(grounder: CaptionGrounder) -> None:
    for turns in ([], ["   ", ""]):
        g = grounder.score(CAPTIONS, turns)
        assert g.coverage == 0.0 and g.best_similarity == (None, None, None) and g.discussed == (False,) * 3
    blank_first = grounder.score(CAPTIONS, ["", TURNS[1]], [None, 0])
    assert blank_first.best_turn[0] == 1 and blank_first.retrieval_accuracy == 1.0
    assert grounder.score([], TURNS).coverage is None


def test_a_long_turn_is_windowed_not_cut(grounder: CaptionGrounder) -> None:
    filler = "and then we talked about the weather for a while " * 26  # 262 tokens: the fair lies beyond 256
    fair = ("Later that afternoon the whole family went to the county fair. The kids rode the carousel again and "
            "again, waving at us every time they came around on the painted horses.")
    windowed = grounder.score(CAPTIONS[:1], [filler + fair])
    cut = grounder.score(CAPTIONS[:1], [filler])  # what truncation at 256 tokens would have seen
    assert windowed.discussed == (True,)
    assert windowed.best_similarity[0] > cut.best_similarity[0] + 0.3


def test_concurrent_scoring_gives_the_same_numbers(grounder: CaptionGrounder) -> None:
    expected = grounder.score(CAPTIONS, TURNS).best_similarity
    fresh = CaptionGrounder()  # lazy load raced by four threads
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: fresh.score(CAPTIONS, TURNS).best_similarity, range(4)))
    for r in results:
        assert r == pytest.approx(expected, abs=1e-5)


def test_paper_transcripts_discuss_their_own_captions_more_than_others(grounder: CaptionGrounder,
                                                                       vist_podcast_50: Path) -> None:
    dataset = vist_podcast_50
    ids = ["46019", "47023", "48383"]
    docs = {s: json.loads((dataset / f"story_{s}" / "story.json").read_text()) for s in ids}
    captions = [(s, i["vist_caption"]) for s in ids for i in sorted(docs[s]["images"], key=lambda i: i["position"])]
    own, other = [], []
    for sid in ids:
        text = (dataset / f"story_{sid}" / docs[sid]["transcripts"]["qwen3-vl-32b-sporc-lora"]).read_text()
        rows = grounder.similarities([c for _, c in captions], [t.text for t in parse_turns(text)])
        for (owner, _), row in zip(captions, rows, strict=True):
            (own if owner == sid else other).append(max(row) >= COVERAGE_THRESHOLD)
    assert sum(own) / len(own) > sum(other) / len(other) + 0.2

"""The mini-paper's evaluation: results.json's shape, intervals, comparisons, the gate's decision, report.html."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from vispod.evaluation.mini_paper import (
    StoryOutput,
    SystemInfo,
    SystemRun,
    eval_stories,
    reference_runs,
    run,
)
from vispod.evaluation.mini_paper.report import Showcase, render
from vispod.evaluation.plan import load_plan
from vispod.evaluation.splits import SplitOverlapError
from vispod.metrics.caption_grounding import CaptionGrounder
from vispod.v1 import common_pb2, events_pb2

STORIES = {
    "s1": ["the family rode the carousel at the county fair.", "we ate cotton candy by the ferris wheel."],
    "s2": ["our dog caught a frisbee on the beach.", "the sun set over the ocean waves."],
    "s3": ["grandma baked a birthday cake.", "everyone sang while she blew out the candles."],
    "s4": ["the team crossed the marathon finish line.", "they hugged and held up their medals."],
    "s5": ["the ferry left the harbour at dawn.", "gulls followed the boat out to sea."],
    "s6": ["we hiked up to the snowy mountain pass.", "a hot cup of cocoa waited at the hut."],
}
# what a tuned model says about each photo: the caption's content in its own words (a verbatim run of 8 caption
# words would be an echoed prompt)
SAID = {
    "s1": ["the whole family went round and round on the carousel at the fair.",
           "we shared cotton candy right under the big ferris wheel."],
    "s2": ["the dog leapt and caught the frisbee down on the beach.", "the sun went down over the waves of the ocean."],
    "s3": ["grandma had baked a huge birthday cake.", "we all sang as she blew the candles out."],
    "s4": ["the team ran across the finish line of the marathon.", "they hugged each other, medals held high."],
    "s5": ["the ferry pulled away from the harbour as the sun came up.", "gulls chased the boat out over the sea."],
    "s6": ["we climbed all the way to the snowy pass in the mountains.", "cocoa was waiting for us in the hut."],
}
PROMPT = "Write a dialogue between Alex and Sam about these scenes, in order:\n"


def tuned_output(sid: str) -> StoryOutput:
    a, b = SAID[sid]
    turns = [("Alex", f"Picture this: {a} What a start to the day.", [0]),
             ("Sam", "I can almost hear it, the noise and the laughter all around.", []),
             ("Alex", f"And right after that, {b} It felt like the best part.", [1]),
             ("Sam", "Moments like that stay with you for years, honestly.", []),
             ("Alex", "Would you go back and do it all again next year?", []),
             ("Sam", "Without a second thought, I would do it all again in a heartbeat.", [])]
    text = "\n".join(f"{s}: {t}" for s, t, _ in turns)
    return StoryOutput(sid, list(STORIES[sid]), PROMPT + "\n".join(STORIES[sid]), text, turns)


def small_base_output(sid: str) -> StoryOutput:
    prompt = PROMPT + "\n".join(STORIES[sid])
    turns = [("Alex", "I am Alex.", [0]), ("Sam", "I am Sam.", [1])]  # the scaffold's turns; the text echoes
    return StoryOutput(sid, list(STORIES[sid]), prompt, prompt + "\nAlex: I am Alex.\nSam: I am Sam.", turns)


def bigger_base_output(sid: str) -> StoryOutput:
    turns = [("Alex" if i % 2 == 0 else "Sam", f"Thing number {i} we could talk about on a podcast {sid}.", [i % 2])
             for i in range(6)]
    return StoryOutput(sid, list(STORIES[sid]), PROMPT + "\n".join(STORIES[sid]),
                       "\n".join(f"{s}: {t}" for s, t, _ in turns), turns)


def systems() -> list[SystemRun]:
    ids = sorted(STORIES)
    return [
        SystemRun(SystemInfo("tuned-135m", "SmolLM2-135M-Instruct (real) + LoRA test@1", adapter="test@1"),
                  [tuned_output(s) for s in ids]),
        SystemRun(SystemInfo("smollm2-135m-base", "SmolLM2-135M-Instruct (real)"), [small_base_output(s) for s in ids]),
        SystemRun(SystemInfo("gemma3-270m-base", "Gemma 3 270M (real)", is_base_model=True),
                  [bigger_base_output(s) for s in ids]),
    ]


@pytest.fixture(scope="session")
def grounder() -> CaptionGrounder:
    return CaptionGrounder()


def test_results_report_and_decision(tmp_path: Path, grounder: CaptionGrounder) -> None:
    partial = SystemRun(SystemInfo("same-on-two", "a copy of the tuned outputs on s1, s2 only"),
                        [tuned_output(s) for s in ("s1", "s2")])
    results = run([*systems(), partial], tmp_path, tuned="tuned-135m", bigger_base="gemma3-270m-base",
                  small_base="smollm2-135m-base", adapter="test@1", train_ids=["t1", "t2"], grounder=grounder,
                  n_resamples=300)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert on_disk["plan"]["sha256"] == load_plan().sha256 == on_disk["gate"]["plan_sha256"]
    assert (on_disk["tuned"], on_disk["bigger_base"], on_disk["small_base"]) == \
        ("tuned-135m", "gemma3-270m-base", "smollm2-135m-base")
    tuned, small, big = (on_disk["systems"][n] for n in ("tuned-135m", "smollm2-135m-base", "gemma3-270m-base"))
    for key in ("format.valid", "style.avg_turn_length", "style.distinct_2", "aligned_grounding.margin",
                "aligned_grounding.coverage", "hallucination.rate", "naturalness.novelty", "n_stories",
                "format.valid_ci", "retrieval_accuracy", "style_paper", "style_robust", "weights", "saw",
                "is_base_model", "adapter"):
        assert key in tuned
    assert tuned["n_stories"] == 6 and tuned["format.valid"] == 1.0 and tuned["aligned_grounding.coverage"] == 1.0
    assert tuned["retrieval_accuracy"] == 1.0 and tuned["retrieval_accuracy_n"] == 6
    assert tuned["aligned_grounding.margin"] > 0.1 and tuned["hallucination.rate"] == 0.0
    assert tuned["style.avg_turn_length"] > 8 and len(tuned["style.avg_turn_length_ci"]) == 2
    assert small["format.valid"] == 0.0 and small["style.avg_turn_length"] is None  # defined on valid ones only
    assert small["invalid_reasons"] == {"too_few_turns": 6, "echo": 6}
    assert big["format.valid"] == 1.0 and big["aligned_grounding.margin"] < 0.05 and big["is_base_model"]
    assert "not the photos' pixels" in tuned["saw"]

    vs_small = on_disk["comparisons"]["smollm2-135m-base"]
    assert vs_small["format.valid"]["estimate"] == 1.0 and vs_small["format.valid"]["ci"] == [1.0, 1.0]
    assert (vs_small["format.valid"]["wins"], vs_small["format.valid"]["sign_p"]) == (6, 0.03125)
    assert vs_small["style.avg_turn_length"]["estimate"] is None  # the small base has no valid dialogue
    same = on_disk["comparisons"]["same-on-two"]["aligned_grounding.coverage"]  # paired on the stories both have
    assert (same["estimate"], same["n"], same["ties"]) == (0.0, 2, 2)
    gate = on_disk["gate"]
    assert (gate["decision"], gate["adapter"], gate["active"]) == ("promote", "test@1", "smollm2-135m-base")
    assert gate["baseline"] == on_disk["bigger_base"]      # the claim: the tuned model beats the bigger base
    assert gate["reasons"][0].startswith("promote tuned-135m: ")
    assert gate["reasons"][0].endswith("non-inferior to the active smollm2-135m-base")
    assert gate["verdicts"]["style.distinct_2"] == "superior" and gate["verdicts"]["format.valid"] == "non-inferior"
    assert on_disk["targets"]["tuned"]["format.valid"]["met"]
    assert not on_disk["targets"]["tuned"]["aligned_grounding.margin"]["met"]  # no caption-fed upper bound was run
    assert on_disk["targets"]["beats_bigger_base"]["met"] is True
    assert on_disk["stories"]["tuned-135m"][0]["story_id"] == "s1"

    html = (tmp_path / "report.html").read_text()
    for needle in ("Gate decision: PROMOTE", "data:image/png;base64,", "not instruction-tuned", "not pixels",
                   "all-MiniLM-L6-v2 (real)", "Differences, tuned − other", "1.000 [1.000, 1.000]",
                   f"Plan v{load_plan().version}"):
        assert needle in html, needle
    assert "<script" not in html and "http" not in html.replace("https://", "")


def test_four_stories_can_never_show_superiority(tmp_path: Path, grounder: CaptionGrounder) -> None:
    """Under the plan, 4 of 4 stories in the tuned model's favour give sign-test p = 0.125: no promotion."""
    four = [SystemRun(r.info, [o for o in r.outputs if o.story_id in ("s1", "s2", "s3", "s4")]) for r in systems()]
    results = run(four, tmp_path, tuned="tuned-135m", bigger_base="gemma3-270m-base",
                  small_base="smollm2-135m-base", grounder=grounder, n_resamples=200)
    assert results["gate"]["decision"] == "reject"
    assert "0 superiority metric(s) shown superior, 1 needed" in results["gate"]["reasons"][0]
    assert results["comparisons"]["gemma3-270m-base"]["style.distinct_2"]["sign_p"] == 0.125


def test_refuses_training_stories_and_unknown_roles(tmp_path: Path, grounder: CaptionGrounder) -> None:
    roles = {"tuned": "tuned-135m", "bigger_base": "gemma3-270m-base", "small_base": "smollm2-135m-base"}
    with pytest.raises(SplitOverlapError, match="s2"):
        run(systems(), tmp_path, train_ids=["s2"], grounder=grounder, **roles)
    with pytest.raises(ValueError, match="tuned system 'nope'"):
        run(systems(), tmp_path, grounder=grounder, **{**roles, "tuned": "nope"})
    with pytest.raises(ValueError, match="baseline must be another system"):
        run(systems(), tmp_path, grounder=grounder, baseline="tuned-135m", **roles)
    assert not (tmp_path / "results.json").exists()


def test_references_are_systems_without_a_prompt(tmp_path: Path, grounder: CaptionGrounder,
                                                 vist_podcast_50: Path) -> None:
    stories = eval_stories(vist_podcast_50)
    assert len(stories) == 20 and all(len(s.captions) == 5 and all(s.captions) for s in stories)
    refs = reference_runs([s.story_id for s in stories[:2]], vist_podcast_50)
    assert [r.info.reference for r in refs] == [True, True]
    assert all(o.prompt == "" and len(o.captions) == 5 for r in refs for o in r.outputs)
    tuned, base = refs
    results = run(refs, tmp_path, tuned=tuned.info.name, bigger_base=base.info.name, small_base=base.info.name,
                  grounder=grounder, n_resamples=100)
    s = results["systems"][tuned.info.name]
    assert s["format.valid"] == 1.0 and s["retrieval_accuracy"] is None and s["aligned_grounding.coverage"] > 0.2
    assert s["aligned_grounding.margin"] is None  # the paper's transcripts name no photo: no scene to align
    assert "pixels" in s["saw"] and s["reference"]


def test_command_line_on_saved_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dataclasses import asdict

    from vispod.evaluation.mini_paper.__main__ import main

    doc = {"tuned": "tuned-135m", "bigger_base": "gemma3-270m-base", "small_base": "smollm2-135m-base",
           "adapter": "test@1", "train_ids": ["t1"],
           "systems": [{**asdict(r.info), "outputs": [asdict(o) for o in r.outputs]} for r in systems()]}
    (tmp_path / "runs.json").write_text(json.dumps(doc))
    assert main([str(tmp_path / "runs.json"), "--out", str(tmp_path / "out"), "--no-references",
                 "--resamples", "100"]) == 0
    assert "gate: promote test@1" in capsys.readouterr().out
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["systems"]["tuned-135m"]["retrieval_accuracy"] == 1.0  # the turns' photo indices survived
    assert results["gate"]["decision"] == "promote"
    assert results["bootstrap"]["n_resamples"] == 100


def test_several_dialogues_per_story_are_averaged_and_the_story_stays_the_unit(tmp_path: Path,
                                                                              grounder: CaptionGrounder) -> None:
    ids = sorted(STORIES)
    # two samples per story: the tuned one always valid; the small base valid on s1's second sample only
    small = [small_base_output(s) for s in ids] + [tuned_output("s1"), *(small_base_output(s) for s in ids[1:])]
    runs = [SystemRun(SystemInfo("tuned-135m", "w", adapter="test@1"), [tuned_output(s) for s in ids] * 2),
            SystemRun(SystemInfo("smollm2-135m-base", "w"), small),
            SystemRun(SystemInfo("gemma3-270m-base", "w", is_base_model=True), [bigger_base_output(s) for s in ids])]
    results = run(runs, tmp_path, tuned="tuned-135m", bigger_base="gemma3-270m-base", small_base="smollm2-135m-base",
                  grounder=grounder, n_resamples=200)
    base = results["systems"]["smollm2-135m-base"]
    assert (base["n_stories"], base["n_dialogues"], base["n_valid"]) == (6, 12, 1)
    assert base["format.valid"] == pytest.approx(1 / 12)             # s1: 1 of 2 valid, others 0 of 2
    assert base["format.valid_n"] == 6                               # bootstrap over stories, not dialogues
    rows = {r["story_id"]: r for r in results["stories"]["smollm2-135m-base"]}
    assert rows["s1"]["format.valid"] == 0.5 and len(rows["s1"]["samples"]) == 2
    assert rows["s1"]["style.avg_turn_length"] == rows["s1"]["samples"][1]["style.avg_turn_length"]  # valid only
    assert rows["s2"]["style.avg_turn_length"] is None
    assert results["systems"]["gemma3-270m-base"]["n_dialogues"] == 6
    assert results["comparisons"]["smollm2-135m-base"]["format.valid"]["n"] == 6


def test_the_report_shows_stories_side_by_side_with_boxes_facts_and_each_systems_dialogue(
        tmp_path: Path, grounder: CaptionGrounder) -> None:
    results = run(systems(), tmp_path, tuned="tuned-135m", bigger_base="gemma3-270m-base",
                  small_base="smollm2-135m-base", adapter="test@1", grounder=grounder, n_resamples=200)
    photo = tmp_path / "p.jpg"
    Image.new("RGB", (64, 48), (10, 120, 200)).save(photo)
    facts = common_pb2.Perception()
    facts.objects.add(label="frisbee", score=0.71, box=common_pb2.Box(x_min=0.1, y_min=0.2, x_max=0.5, y_max=0.6))
    facts.models.add(task="detection", name="ssd-mobilenet-v2-coco")
    said = {name: events_pb2.DialogueGenerated(dialogue=common_pb2.Dialogue(turns=[
        common_pb2.Turn(speaker="Alex", text=f"{name} says the dog caught it.", image_refs=[0])]))
        for name in ("tuned-135m", "gemma3-270m-base")}
    html = render(results, [Showcase("s2", [photo], ["our dog caught a frisbee."], [facts], list(said.items()))])
    side = html[html.index("Stories side by side"):]
    assert "Story s2" in side and side.count("data:image/jpeg;base64,") == 1
    assert 'class="box"' in side and "frisbee 0.71" in side and "ssd-mobilenet-v2-coco" in side
    assert "Human caption (evaluation only): our dog caught a frisbee." in side
    assert "tuned-135m says the dog caught it." in side and "gemma3-270m-base says the dog caught it." in side
    assert "Stories side by side" not in render(results)

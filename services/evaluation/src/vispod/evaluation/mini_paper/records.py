"""What the mini-paper evaluates: per system, one StoryOutput per held-out story, plus what the system is.

The eval stories and the paper's two published transcripts (the references) are read from the shared
vist-podcast-50 folder at run time; nothing of it is copied into the repository.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vispod.common.settings import DatasetSettings
from vispod.common.story_folder import STORY_FILE, Story, read_story
from vispod.evaluation.splits import DEFAULT_SPLIT, load_split

SAW_CAPTIONS = "the 5 VIST captions as text (not the photos' pixels)"
SAW_PIXELS = "the 5 photos (pixels), as published by the paper; not run here"


@dataclass(frozen=True)
class StoryOutput:
    story_id: str
    captions: list[str]  # the story's photo captions, in story order (the grounding targets)
    prompt: str  # exactly what the model was given ("" for a published reference: no echo check)
    text: str  # the dialogue as generated (rendered transcript)
    # structured turns when the engine produced them: (speaker, text, 0-based photo indices the turn refers to)
    turns: list[tuple[str, str, list[int]]] = field(default_factory=list)
    # per photo, the perception facts the system saw (vispod.v1.Perception as JSON: json_format.MessageToDict);
    # empty when none ran. The hallucination check uses them beside the captions.
    perception: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class SystemInfo:
    name: str
    weights: str  # e.g. "SmolLM2-135M-Instruct Q4_1 GGUF (real) + LoRA smollm2-podcast@3 (trained here)"
    saw: str = SAW_CAPTIONS  # what the model saw
    is_base_model: bool = False  # pretrained only, not instruction-tuned (Gemma 3 270M)
    adapter: str | None = None
    reference: bool = False  # published text, not generated in this run


@dataclass(frozen=True)
class SystemRun:
    info: SystemInfo
    outputs: Sequence[StoryOutput]


@dataclass(frozen=True)
class EvalStory:
    story_id: str
    captions: list[str]
    folder: Path


def dataset_root() -> Path:
    """vist-podcast-50 as the project's one dataset setting places it (VISPOD_DATASETS_ROOT)."""
    return DatasetSettings().vist_podcast_50


def _story(dataset: Path, story_id: str) -> Story:
    path = Path(dataset) / f"story_{story_id}" / STORY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: vist-podcast-50 is not bundled with vispod; put shared/ "
                                "beside the repository or set VISPOD_DATASETS_ROOT")
    return read_story(path.parent)


def _captions(story: Story) -> list[str]:
    """One caption per photo the story names ("" where VIST has none)."""
    return [e.caption or "" for e in story.entries]


def story_captions(dataset: Path, story_id: str) -> list[str]:
    """A story's photo captions, in story order ("" where VIST has none)."""
    return _captions(_story(dataset, story_id))


def story_text(dataset: Path, story_id: str, system_key: str) -> str | None:
    """One of the paper's published transcripts of a story (a REFERENCES key), or None when it is absent."""
    return _story(dataset, story_id).text(system_key)


def eval_stories(dataset: Path | None = None, split_path: Path = DEFAULT_SPLIT) -> list[EvalStory]:
    """The held-out stories of the declared split, with their captions (the generators' input)."""
    dataset = dataset or dataset_root()
    return [EvalStory(sid, _captions(_story(dataset, sid)), Path(dataset) / f"story_{sid}")
            for sid in load_split(split_path).eval]


REFERENCES = {
    "qwen3-vl-32b-sporc-lora": SystemInfo(
        name="paper: Qwen3-VL-32B + SPoRC LoRA", reference=True, saw=SAW_PIXELS, adapter="paper's SPoRC LoRA",
        weights="Qwen3-VL-32B + LoRA (the paper's published transcripts; weights not run here)"),
    "qwen3-vl-235b-base": SystemInfo(
        name="paper: Qwen3-VL-235B base", reference=True, saw=SAW_PIXELS,
        weights="Qwen3-VL-235B (the paper's published transcripts; weights not run here)"),
}


def reference_runs(story_ids: Sequence[str], dataset: Path | None = None) -> list[SystemRun]:
    """The paper's two published transcripts of each story, as systems (no prompt: echo check off)."""
    dataset = dataset or dataset_root()
    outputs: dict[str, list[StoryOutput]] = {key: [] for key in REFERENCES}
    for sid in story_ids:
        story = _story(dataset, sid)
        for key in REFERENCES:
            text = story.text(key)
            if text is not None:
                outputs[key].append(StoryOutput(sid, _captions(story), "", text))
    return [SystemRun(REFERENCES[key], outs) for key, outs in outputs.items() if outs]

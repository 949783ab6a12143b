"""The mini-paper's dialogues, system by system, as its plan fixes them: photo stories, requests, samples, archive.

A plan system (vispod.evaluation.plan.PlanSystem) is a model, what it reads (the photos' perception facts, or
the captions for the upper bound), its adapters (one per training seed, for the tuned models) and its generation
seeds. Every request carries the same word budget and speakers; a facts system's request carries the photos and no
caption (the generator perceives them); the captions go only to the upper bound and to the evaluation.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from vispod.common.story_folder import read_story
from vispod.evaluation.mini_paper import StoryOutput
from vispod.evaluation.plan import PlanSystem
from vispod.generator.few_shot import worked_example
from vispod.generator.prompting import build_prompt
from vispod.generator.scene_inputs import described
from vispod.v1 import common_pb2, events_pb2, generator_pb2, generator_pb2_grpc

SPEAKERS = (("Speaker 1", "the host"), ("Speaker 2", "the co-host"))
PHOTOS = 5
FIRST_PROMPT = "v1"   # the prompt version of plans v1 and v2 (GeneratorSettings.prompt_version's default)


class StoryRefused(ValueError):
    """A plan story cannot run in photo mode (a photo or a caption is missing)."""


@dataclass(frozen=True)
class PhotoStory:
    story_id: str
    photos: tuple[Path, ...]
    captions: tuple[str, ...]        # the human captions: the evaluation's reference, the upper bound's input

    def refs(self, with_captions: bool) -> list[common_pb2.ImageRef]:
        return [common_pb2.ImageRef(uri=p.resolve().as_uri(), caption=c if with_captions else "",
                                    mime_type="image/jpeg" if p.suffix.lower() in (".jpg", ".jpeg") else "")
                for p, c in zip(self.photos, self.captions, strict=True)]


def photo_stories(dataset: Path, story_ids: Sequence[str]) -> list[PhotoStory]:
    """The plan's stories with their 5 photos and 5 captions; a story that lacks one is refused, not skipped."""
    out = []
    for sid in story_ids:
        story = read_story(Path(dataset) / f"story_{sid}")
        if len(story.entries) != PHOTOS or not story.fully_captioned:
            raise StoryRefused(f"story {sid}: photo mode needs its {PHOTOS} photos and {PHOTOS} captions; it has "
                               f"{len(story.present)} photos and {sum(bool(e.caption) for e in story.entries)} "
                               "captions (the plan lists it: fix the plan, as a new version)")
        out.append(PhotoStory(sid, tuple(story.images), tuple(story.captions)))
    return out


@dataclass(frozen=True)
class Decoding:
    """The sampling every plan system's generator uses."""
    temperature: float = 0.7
    top_p: float = 0.9


PLAN_DECODING = Decoding()


@dataclass(frozen=True)
class Sample:
    """One dialogue the plan asks for: a system, an adapter (its training seed) or the base, a generation seed."""

    system: PlanSystem
    adapter_seed: int | None         # the adapter's training seed; None: the base model
    adapter_id: str                  # "base" for the base model
    seed: int

    @property
    def key(self) -> str:
        adapter = f"adapter{self.adapter_seed}" if self.adapter_seed is not None else "base"
        return f"{self.system.role}-{adapter}-seed{self.seed}"


def generation_key(sample: Sample, target_words: int, adapter_key: str = "", decoding: Decoding = PLAN_DECODING,
                   prompt_version: str = FIRST_PROMPT) -> str:
    """What a dialogue depends on beyond its story (its cache key): model, input, prompt, adapter, decoding."""
    s = sample.system
    wording = f"|prompt={prompt_version}" if rewords(s, prompt_version) else ""
    return (f"v6-photo|{s.model}|input={s.input}|format={s.prompt_format}|few_shot={s.few_shot}|"
            f"adapter={adapter_key or 'base'}|words={target_words}|seed={sample.seed}|t={decoding.temperature:g}|"
            f"p={decoding.top_p:g}|{s.scaffold}{wording}")


def request(story: PhotoStory, sample: Sample, target_words: int) -> events_pb2.ImageSetSubmitted:
    return events_pb2.ImageSetSubmitted(
        image_set_id=f"mini-paper-{story.story_id}-{sample.key}", images=story.refs(sample.system.input == "captions"),
        target_words=target_words, speakers=[common_pb2.Speaker(name=n, persona=p) for n, p in SPEAKERS],
        adapter="" if sample.adapter_seed is None else sample.adapter_id, seed=sample.seed,
        labels={"run": "mini-paper", "system": sample.system.role})


def generate_all(address: str, stories: Sequence[PhotoStory], sample: Sample, target_words: int,
                 concurrency: int = 4) -> dict[str, events_pb2.DialogueGenerated]:
    """One dialogue per story over gRPC; a failed call is a failed (invalid) dialogue and the run goes on."""

    def one(story: PhotoStory) -> tuple[str, events_pb2.DialogueGenerated]:
        event = request(story, sample, target_words)
        with grpc.insecure_channel(address) as channel:
            stub = generator_pb2_grpc.GeneratorServiceStub(channel)
            try:
                resp = stub.Generate(generator_pb2.GenerateRequest(image_set=event), timeout=1800)
            except grpc.RpcError as exc:
                return story.story_id, events_pb2.DialogueGenerated(
                    image_set_id=event.image_set_id, status=common_pb2.STATUS_FAILED,
                    error=f"{exc.code().name}: {exc.details()}")
        return story.story_id, resp.result

    started = time.monotonic()
    out: dict[str, events_pb2.DialogueGenerated] = {}
    with ThreadPoolExecutor(concurrency) as pool:
        for i, (sid, result) in enumerate(pool.map(one, stories), start=1):
            out[sid] = result
            sys.stdout.write(f"\r  {sample.system.name} [{sample.key}]: {i}/{len(stories)} dialogues "
                             f"({time.monotonic() - started:.0f} s)")
            sys.stdout.flush()
    sys.stdout.write("\n")
    return out


def _kept(path: Path, key: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return dict(doc["dialogues"]) if doc.get("key") == key else {}


def cached_generations(path: Path, key: str, stories: Sequence[PhotoStory],
                       produce: Callable[[list[PhotoStory]], dict[str, Any]],
                       earlier: Sequence[Path] = ()) -> dict[str, Any]:
    """A sample's dialogues per story, kept in `path` under `key`: a rerun generates only the stories it lacks.
    The file is the record, not a memo: the same key does not pin the words. llama.cpp's parallel slots batch
    requests together, and a batch's floating-point sums differ from a lone request's, so sampling diverges after
    some tokens (ggml-org/llama.cpp#7052); regenerated on this machine, 4 of 6 dev dialogues of one key differed.
    `earlier`: the same sample's files of earlier plan versions, read only, and only under the same key (same
    model, input, prompt, adapter and decoding)."""
    own = _kept(path, key)
    kept = dict(own)
    for other in earlier:
        kept = {**_kept(other, key), **kept}
    missing = [s for s in stories if s.story_id not in kept]
    if missing:
        kept.update({sid: json_format.MessageToDict(m) for sid, m in produce(missing).items()})
    if kept != own:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"key": key, "dialogues": kept}))
    return {s.story_id: json_format.ParseDict(kept[s.story_id], events_pb2.DialogueGenerated()) for s in stories}


def scene_texts(story: PhotoStory, result: events_pb2.DialogueGenerated, system: PlanSystem) -> list[str]:
    """What the model read about each photo: the captions (upper bound), else the facts the generator made."""
    if system.input == "captions":
        return list(story.captions)
    facts = [img.perception for img in result.images]
    if len(facts) != len(story.photos):
        return [""] * len(story.photos)    # a failed request: no facts were made
    return described([""] * len(facts), facts, "facts").texts


def instruction(system: PlanSystem, texts: Sequence[str], target_words: int, version: str) -> str:
    """The exact instruction a plan system's model reads for these scene texts under prompt `version`."""
    facts = system.input == "facts"
    example = worked_example(version=version, facts=facts, plan=system.scaffold) if system.few_shot else ""
    prompt = build_prompt(speakers=[common_pb2.Speaker(name=n, persona=p) for n, p in SPEAKERS],
                          num_images=len(texts), target_words=target_words, language="en", style="",
                          captions=list(texts), version=version, plan=system.scaffold, facts=facts, example=example)
    return f"{prompt.system}\n{prompt.user}"


def rewords(system: PlanSystem, version: str) -> bool:
    """Whether prompt `version` words this system's instruction otherwise than v1, under which every earlier cache
    key was written (a version that changes only what other systems read leaves this system's dialogues valid)."""
    texts = [f"scene {i + 1}" for i in range(PHOTOS)]
    return version != FIRST_PROMPT and instruction(system, texts, 700, version) != instruction(system, texts, 700,
                                                                                             FIRST_PROMPT)


def story_output(story: PhotoStory, result: events_pb2.DialogueGenerated, system: PlanSystem,
                 target_words: int) -> StoryOutput:
    """A dialogue as the evaluation reads it: the human captions (its reference), the exact instruction under the
    prompt version that wrote it (the worked example included: copying it is echo too), the text, the turns with
    their photos, and the facts the model saw."""
    texts = scene_texts(story, result, system)
    prompt = instruction(system, texts, target_words, result.prompt_version or FIRST_PROMPT)
    turns = [(t.speaker, t.text, list(t.image_refs)) for t in result.dialogue.turns]
    perception = [json_format.MessageToDict(img.perception) if img.HasField("perception") else {}
                  for img in result.images] if system.input == "facts" else []
    return StoryOutput(story.story_id, list(story.captions), prompt, result.dialogue.text or result.error, turns,
                       perception)


def write_archive(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Every generated dialogue of the run as gzipped JSON lines (deterministic bytes: no timestamp in the header)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode()
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(body)
    return path


def archive_row(story: PhotoStory, sample: Sample, result: events_pb2.DialogueGenerated) -> dict[str, Any]:
    return {"story_id": story.story_id, "system": sample.system.name, "role": sample.system.role,
            "adapter_seed": sample.adapter_seed, "adapter_id": sample.adapter_id, "seed": sample.seed,
            "status": common_pb2.Status.Name(result.status), "error": result.error, "model": result.model,
            "input_mode": events_pb2.InputMode.Name(result.input_mode), "text": result.dialogue.text,
            "turns": [{"speaker": t.speaker, "text": t.text, "image_refs": list(t.image_refs)}
                      for t in result.dialogue.turns],
            "facts": [json_format.MessageToDict(img.perception) if img.HasField("perception") else None
                      for img in result.images]}

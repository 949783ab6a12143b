"""Builds the instruction from the versioned template files in `vispod/generator/prompts/<version>/`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from string import Template

from vispod.v1 import common_pb2

BY_MARKER = "scenes_facts_by_marker.txt"
MAX_EXTENDS = 8
LANGUAGE_NAMES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian",
                  "pt": "Portuguese", "nl": "Dutch", "ja": "Japanese", "zh": "Chinese", "ko": "Korean"}


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str            # the instruction text; a VLM gets the images before it
    version: str
    example_turns: tuple[str, ...] = ()   # the few-shot example's turns when `user` opens with one (not to copy)


def render_plain(system: str, user: str) -> str:
    """The text a plain-format model (a base model, no chat template) reads before its answer."""
    return f"{system}\n\n{user}\n\n"


EXTENDS = "extends.txt"   # a version folder holds only what it rewords; this names the version it takes the rest from


def _located(version: str, name: str) -> Traversable | None:
    """File `name` of prompt `version`: its own, else that of the version it extends (recursively)."""
    folder = resources.files("vispod.generator").joinpath("prompts", version)
    for _ in range(MAX_EXTENDS):
        if folder.joinpath(name).is_file():
            return folder.joinpath(name)
        if not folder.joinpath(EXTENDS).is_file():
            return None
        folder = folder.parent.joinpath(folder.joinpath(EXTENDS).read_text(encoding="utf-8").strip())
    return None


@cache
def prompt_file(version: str, name: str) -> str:
    """The text of a file of prompt `version` (FileNotFoundError when neither it nor what it extends has one)."""
    path = _located(version, name)
    if path is None:
        raise FileNotFoundError(f"prompt template {version}/{name} not found")
    return path.read_text(encoding="utf-8")


def has_prompt_file(version: str, name: str) -> bool:
    return _located(version, name) is not None


def _template(version: str, name: str) -> Template:
    return Template(prompt_file(version, name))


def available_versions() -> list[str]:
    root = resources.files("vispod.generator").joinpath("prompts")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and has_prompt_file(p.name, "user.txt"))


def speaker_label(index: int) -> str:
    """The label the model is told to write: the paper's "Speaker N" (what the fine-tuned adapter learned)."""
    return f"Speaker {index + 1}"


def language_name(tag: str) -> str:
    base = (tag or "en").split("-")[0].lower()
    return LANGUAGE_NAMES.get(base, tag)


def scene_list(texts: list[str], *, version: str, facts: bool, plan: str = "whole") -> str:
    """What a text-only model reads about the scenes: the list of texts in story order under its heading. A
    version with `scenes_facts_by_marker.txt` (v2 on) gives the facts only in each scene's marker when the scene
    plan writes them there (plan "scenes"): no list of every scene's objects up front to borrow from."""
    scene_lines = "\n".join(f"Scene {i + 1}: {c.strip()}" for i, c in enumerate(texts))
    name = "scenes_facts.txt" if facts else "scenes_captions.txt"
    if facts and plan == "scenes" and has_prompt_file(version, BY_MARKER):
        name = BY_MARKER
    return _template(version, name).substitute(num_images=len(texts), scene_lines=scene_lines)


def build_prompt(*, speakers: list[common_pb2.Speaker], num_images: int, target_words: int, language: str,
                 style: str, captions: list[str] | None, version: str, retry_reason: str = "",
                 plan: str = "whole", facts: bool = False, example: str = "") -> Prompt:
    """captions None: the model sees the pixels; else one text per image, in story order: its caption (or alt
    text), or with `facts` what perception detected in it (with its caption where one was given). `example`: a
    worked example (vispod.generator.few_shot) that comes before the instruction."""
    labels = [speaker_label(i) for i in range(len(speakers))]
    label_list = ", ".join(f'"{label}:"' for label in labels)
    lines = []
    for label, sp in zip(labels, speakers, strict=True):
        line = f"- {label}" if sp.name == label else f"- {label} is {sp.name}"
        if sp.persona:
            line += f": {sp.persona.strip().rstrip('.')}."
        else:
            line += "."
        lines.append(line)
    if captions is None:
        scenes = _template(version, "scenes_pixels.txt").substitute(num_images=num_images)
    else:
        scenes = scene_list(captions, version=version, facts=facts, plan=plan)
    style_line = f"- Style: {style.strip()}\n" if style.strip() else ""
    user = _template(version, "user.txt").substitute(
        scenes=scenes.strip() + "\n", target_words=target_words, num_speakers=len(speakers), label_list=label_list,
        num_images=num_images, speaker_lines="\n".join(lines), language=language_name(language),
        style_line=style_line,
    ).strip()
    if plan == "scenes":
        user += "\n" + _template(version, "plan_scenes.txt").substitute(num_images=num_images).strip()
    if example:
        user = f"{example.strip()}\n\n{user}"
    if retry_reason:
        user += "\n\n" + _template(version, "retry.txt").substitute(reason=retry_reason, label_list=label_list).strip()
    return Prompt(system=_template(version, "system.txt").substitute().strip(), user=user, version=version)

"""Versioned rubric prompts, shipped as package data under vispod/judge/rubrics/<version>/.

A version folder holds system.txt (role and answer format), user.txt (a template with {rubric},
{photos}, {dialogue_a}, {dialogue_b}) and one <criterion>.txt per criterion. Changing a prompt means
adding a new version folder: verdicts carry the version that produced them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

DEFAULT_VERSION = "v1"
# The paper's three criteria first, then ours.
CRITERIA = ("naturalness", "narrative_depth", "visual_grounding", "engagement", "speaker_distinctness")
_RESERVED = {"system", "user"}


@dataclass(frozen=True)
class Rubric:
    version: str
    system: str
    user_template: str
    criteria: dict[str, str]

    def render(self, criterion: str, photos: str, first: str, second: str) -> str:
        """The user message for one criterion with `first` shown as Dialogue A and `second` as B."""
        if criterion not in self.criteria:
            raise KeyError(f"unknown criterion {criterion!r} in rubric {self.version}")
        # str.replace, not format(): dialogues may contain braces.
        text = self.user_template
        for key, value in (("{rubric}", self.criteria[criterion].strip()), ("{photos}", photos or "(none given)")):
            text = text.replace(key, value)
        return text.replace("{dialogue_a}", first.strip()).replace("{dialogue_b}", second.strip())


def available_versions() -> list[str]:
    root = resources.files("vispod.judge") / "rubrics"
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))


@cache
def load_rubric(version: str = DEFAULT_VERSION) -> Rubric:
    folder = resources.files("vispod.judge") / "rubrics" / version
    if not folder.is_dir():
        raise ValueError(f"unknown rubric version {version!r}; have {available_versions()}")
    texts = {p.name[:-4]: p.read_text(encoding="utf-8") for p in folder.iterdir() if p.name.endswith(".txt")}
    missing = _RESERVED - texts.keys()
    if missing:
        raise ValueError(f"rubric {version} lacks {sorted(missing)}")
    criteria = {k: v for k, v in texts.items() if k not in _RESERVED}
    return Rubric(version=version, system=texts["system"].strip(), user_template=texts["user"], criteria=criteria)

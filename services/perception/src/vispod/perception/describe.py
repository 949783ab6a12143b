"""Facts as the words a text model reads: one phrase per photo, the same at training and serving time.

    2 cars, a truck and a person; text: "POLICE", "Main Avenu"; looks like: police van

Objects are counted per label, in order of their best score; image labels use the vocabulary's terms and are
told only where calibration found them as precise as the detector's objects (they were not, on VIST photos).
A photo where nothing was found with confidence says so, so its scene is still talked about in general terms.
"""

from __future__ import annotations

from collections import Counter

from vispod.common.visual_vocabulary import imagenet_term, plural
from vispod.perception.settings import calibration
from vispod.v1 import common_pb2

NOTHING = "nothing recognised with confidence"
_NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}


def counted(label: str, n: int) -> str:
    if n == 1:
        return f"{'an' if label[0] in 'aeiou' else 'a'} {label}"
    return f"{_NUMBERS.get(n, str(n))} {plural(label)}"


def joined(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def object_counts(facts: common_pb2.Perception) -> Counter[str]:
    """label -> how many, in order of each label's best score."""
    return Counter(o.label for o in sorted(facts.objects, key=lambda o: -o.score))


def labels_shown() -> bool:
    """Whether image labels are precise enough to tell a model (calibration.json, labels.in_prompt)."""
    return bool(calibration()["labels"].get("in_prompt", False))


def facts_phrase(facts: common_pb2.Perception, labels: bool | None = None) -> str:
    """`labels`: include the image labels (default: as calibrated; they stay on the facts either way)."""
    parts = []
    counts = object_counts(facts)
    if counts:
        parts.append(joined([counted(label, n) for label, n in counts.items()]))
    if facts.text:
        parts.append("text: " + ", ".join(f'"{t.text}"' for t in facts.text))
    names = list(dict.fromkeys(imagenet_term(lab.label) for lab in facts.labels))
    if names and (labels_shown() if labels is None else labels):
        parts.append("looks like: " + ", ".join(names))
    return "; ".join(parts) if parts else NOTHING

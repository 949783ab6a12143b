"""Reads and validates a pairs folder (Qwen-VL fine-tuning format) before any training starts.

Layout: DIR/pairs.jsonl, one object per line:
  {"image": [paths relative to DIR], "conversations": [{"from": "human", "value": "<image>…<image>\\n<instructions>"},
                                                       {"from": "gpt", "value": "<dialogue>"}]}
DIR/images/…, and optionally DIR/manifest.json carrying the dataset's manifest hash.
Every problem stops the run with a DatasetError naming the file and line: hours of GPU time should not be
spent before a broken pair is found.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

IMAGE_TAG = "<image>"
PAIRS_FILE = "pairs.jsonl"
MANIFEST_FILE = "manifest.json"
# Keys under which the dataset builder may record its manifest hash (first one found wins).
MANIFEST_HASH_KEYS = ("dataset_manifest_sha256", "manifest_sha256", "dataset_sha256", "sha256")


class DatasetError(ValueError):
    """The pairs folder is unusable; the message names the line and the problem."""


@dataclass(frozen=True)
class Pair:
    line: int                 # 1-based line in pairs.jsonl, for error messages
    images: tuple[Path, ...]  # absolute paths, in prompt order
    system: str               # "" when the pair has no system turn
    prompt_parts: tuple[str | int, ...]  # text pieces and image indexes, in order
    dialogue: str


def _fail(path: Path, line: int, why: str) -> DatasetError:
    return DatasetError(f"{path}:{line}: {why}")


def _split_prompt(text: str, n_images: int, where: Path, line: int) -> tuple[str | int, ...]:
    """Splits the human turn on <image> tags: text pieces stay strings, each tag becomes its image's index."""
    pieces = text.split(IMAGE_TAG)
    if len(pieces) - 1 != n_images:
        raise _fail(where, line, f"the human turn has {len(pieces) - 1} {IMAGE_TAG} tags but the pair lists "
                                 f"{n_images} images")
    parts: list[str | int] = []
    for i, piece in enumerate(pieces):
        if i:
            parts.append(i - 1)
        piece = piece.strip() if i == len(pieces) - 1 else piece.strip("\n")
        if piece.strip():
            parts.append(piece)
    if not any(isinstance(p, str) for p in parts):
        raise _fail(where, line, "the human turn has no instructions, only images")
    return tuple(parts)


def _parse_line(raw: str, root: Path, where: Path, line: int, images_per_pair: int) -> Pair:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _fail(where, line, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise _fail(where, line, "expected a JSON object with 'image' and 'conversations'")
    images = obj.get("image", obj.get("images"))
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, list) or not all(isinstance(p, str) and p for p in images):
        raise _fail(where, line, "'image' must be a list of image paths relative to the pairs folder")
    if images_per_pair and len(images) != images_per_pair:
        raise _fail(where, line, f"expected {images_per_pair} images, found {len(images)}")
    convs = obj.get("conversations")
    if not isinstance(convs, list) or not all(isinstance(c, dict) for c in convs):
        raise _fail(where, line, "'conversations' must be a list of {'from', 'value'} objects")
    roles = [c.get("from") for c in convs]
    system = ""
    if roles and roles[0] == "system":
        system = convs[0].get("value") if isinstance(convs[0].get("value"), str) else None
        if system is None:
            raise _fail(where, line, "the system turn's 'value' must be a string")
        convs, roles = convs[1:], roles[1:]
    if roles != ["human", "gpt"]:
        raise _fail(where, line, f"expected one 'human' turn then one 'gpt' turn, found {roles}")
    human, gpt = convs[0].get("value"), convs[1].get("value")
    if not isinstance(human, str) or not isinstance(gpt, str):
        raise _fail(where, line, "turn values must be strings")
    if not gpt.strip():
        raise _fail(where, line, "the 'gpt' turn (the dialogue) is empty")
    if IMAGE_TAG in gpt:
        raise _fail(where, line, f"the 'gpt' turn contains an {IMAGE_TAG} tag")
    parts = _split_prompt(human, len(images), where, line)
    resolved = []
    root_resolved = root.resolve()
    for rel in images:
        p = (root / rel).resolve()
        if not p.is_relative_to(root_resolved):
            raise _fail(where, line, f"image path {rel!r} leaves the pairs folder")
        if not p.is_file():
            raise _fail(where, line, f"image {rel!r} is missing ({p})")
        try:
            with Image.open(p) as im:
                im.verify()
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise _fail(where, line, f"image {rel!r} is not a readable image: {exc}") from None
        resolved.append(p)
    return Pair(line=line, images=tuple(resolved), system=system, prompt_parts=parts, dialogue=gpt.strip())


def load_pairs(root: Path, images_per_pair: int = 5) -> list[Pair]:
    """Parses and checks every pair (format, turns, image count and tags, images present and decodable)."""
    root = Path(root)
    path = root / PAIRS_FILE
    if not path.is_file():
        raise DatasetError(f"{path}: missing (a pairs folder needs {PAIRS_FILE})")
    pairs = []
    with path.open(encoding="utf-8") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if raw.strip():
                pairs.append(_parse_line(raw, root, path, line_no, images_per_pair))
    if not pairs:
        raise DatasetError(f"{path}: no pairs")
    return pairs


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dataset_hash(root: Path, pairs: list[Pair]) -> str:
    """The dataset builder's manifest hash if manifest.json has one, else sha256 over pairs.jsonl and every image's
    sha256 (sorted by relative path), so the adapter always names exactly the data it learned from."""
    root = Path(root)
    manifest = root / MANIFEST_FILE
    if manifest.is_file():
        try:
            doc = json.loads(manifest.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{manifest}: not valid JSON ({exc.msg})") from None
        for key in MANIFEST_HASH_KEYS:
            value = doc.get(key) if isinstance(doc, dict) else None
            if isinstance(value, str) and len(value) == 64:
                return value.lower()
    h = hashlib.sha256()
    h.update(_sha256_file(root / PAIRS_FILE).encode())
    images = sorted({p for pair in pairs for p in pair.images})
    root_resolved = root.resolve()
    for p in images:
        h.update(f"\n{p.relative_to(root_resolved).as_posix()} {_sha256_file(p)}".encode())
    return h.hexdigest()

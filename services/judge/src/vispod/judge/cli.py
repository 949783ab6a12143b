"""`vispod judge`: judge two systems' transcripts over a folder of story folders.

Each story folder holds <A>.txt and <B>.txt (the two systems' dialogues), optionally story.json
(VIST layout: images[].vist_caption gives the photo captions) and image_*.jpg photos, which are
sent, bounded, to the judges that read images. Prints the statistics table and writes JSON.
Judges and criteria default to the settings (VISPOD_JUDGE_*); base URLs and API keys always come
from the settings, e.g. VISPOD_JUDGE_OPENAI_API_KEY.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from vispod.common.images import ImageAccessError
from vispod.common.settings import DatasetSettings, load_settings
from vispod.common.story_folder import STORY_FILE, read_story
from vispod.judge import stats
from vispod.judge.images import prepare_images
from vispod.judge.judging import build_panel
from vispod.judge.protocol import PairInput, photos_text
from vispod.judge.settings import JudgeSettings

EXAMPLE_SET = str(DatasetSettings().vist_podcast_50)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "judge",
        help="pairwise AI-judge win rates of two systems' transcripts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pairs", required=True, type=Path, help=f"folder of story folders (e.g. {EXAMPLE_SET})")
    p.add_argument("--a", required=True, help="system A: transcript file name without .txt")
    p.add_argument("--b", required=True, help="system B: transcript file name without .txt")
    p.add_argument("--judges", nargs="+", help="judge specs, e.g. local openai:gpt-5.2 anthropic:claude-opus-4-5")
    p.add_argument("--criteria", nargs="+", help="criteria (default: all of the rubric's)")
    p.add_argument("--rubric", help="rubric version (default: settings, v1)")
    p.add_argument("--limit", type=int, default=0, help="judge only the first N stories (0: all)")
    p.add_argument("--no-images", action="store_true", help="send no photos, captions only")
    p.add_argument("--out", type=Path, help="write the full results as JSON here")
    p.set_defaults(func=run)


def _stories(root: Path, a: str, b: str) -> tuple[list[Path], list[str]]:
    found, skipped = [], []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if (d / f"{a}.txt").is_file() and (d / f"{b}.txt").is_file():
            found.append(d)
        else:
            skipped.append(d.name)
    return found, skipped


def _captions(story: Path) -> list[str]:
    """One caption per photo the story names (story.json); none without one or when it is unreadable."""
    try:
        return [e.caption or "" for e in read_story(story).entries] if (story / STORY_FILE).is_file() else []
    except (OSError, ValueError):
        return []


_VERDICT_FIELDS = ("judge", "criterion", "outcome", "outcome_ab", "outcome_ba", "rationale", "prompt_tokens",
                   "completion_tokens", "cost_usd", "errors")
TIE_POLICY = ("win_rate counts ties as half over valid verdicts; win_rate_excl_ties drops ties; "
              "invalid verdicts are counted, never in a denominator")


def run(args: argparse.Namespace) -> int:
    if (refusal := _refusal(args)) is not None:
        print(f"vispod judge: {refusal}", file=sys.stderr)
        return 2
    settings = _settings(args)
    stories, skipped = _stories(args.pairs, args.a, args.b)
    if args.limit:
        stories = stories[: args.limit]
    if not stories:
        print(f"vispod judge: no story folder in {args.pairs} has both {args.a}.txt and {args.b}.txt", file=sys.stderr)
        return 2
    panel = build_panel(settings)
    random_judges = [b.name for b in panel.backends.values() if getattr(b, "random_weights", False)]
    if random_judges:
        print(f"WARNING: judges {random_judges} have RANDOM weights: their verdicts measure nothing", file=sys.stderr)
    wants_images = settings.send_images and any(b.accepts_images for b in panel.backends.values())
    records: list[stats.Record] = []
    per_story = []
    started = time.monotonic()
    for i, story in enumerate(stories, 1):
        try:  # the format allow-list and pixel limits every service applies
            images = _story_images(story, settings) if wants_images else []
        except ImageAccessError as exc:
            print(f"vispod judge: {story}: {exc}", file=sys.stderr)
            return 2
        story_records, story_doc = _judge_story(panel, settings, story, args.a, args.b, images)
        records += story_records
        per_story.append(story_doc)
        print(f"[{i}/{len(stories)}] {story.name}: "
              + ", ".join(f"{v['judge']}/{v['criterion']}={v['outcome']}" for v in story_doc["verdicts"]),
              file=sys.stderr, flush=True)
    report = stats.summarize(records)
    print(f"A = {args.a}   B = {args.b}   stories = {len(stories)}   rubric = {settings.rubric_version}")
    print(stats.format_table(report))
    if args.out:
        doc = {
            "a": args.a,
            "b": args.b,
            "pairs_dir": str(args.pairs),
            "stories": len(stories),
            "skipped_folders": skipped,
            "judges": list(panel.backends),
            "criteria": settings.criteria,
            "rubric_version": settings.rubric_version,
            "random_weight_judges": random_judges,
            "images_sent": wants_images,
            "seconds": round(time.monotonic() - started, 1),
            "tie_policy": TIE_POLICY,
            "usage": _usage(per_story),
            "report": report.to_dict(),
            "per_story": per_story,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    for backend in panel.backends.values():
        backend.close()
    return 0


def _refusal(args: argparse.Namespace) -> str | None:
    """Why the arguments cannot be judged, or None."""
    if not args.pairs.is_dir():
        hint = " (the shared VIST podcast set is absent on this machine)" if str(args.pairs) == EXAMPLE_SET else ""
        return f"{args.pairs} is not a folder{hint}"
    if args.a == args.b:
        return "--a and --b must differ"
    return None


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """JudgeSettings (VISPOD_JUDGE_*) with the command line's choices on top."""
    overrides: dict[str, object] = {"consume": False}
    if args.judges:
        overrides["judges"] = args.judges
    if args.criteria:
        overrides["criteria"] = args.criteria
    if args.rubric:
        overrides["rubric_version"] = args.rubric
    if args.no_images:
        overrides["send_images"] = False
    return load_settings(JudgeSettings, **overrides)


def _story_images(story: Path, settings):  # type: ignore[no-untyped-def]
    """The story's photos as the judges get them (bounded in number, side and bytes)."""
    raw = [p.read_bytes() for p in _photos(story)]
    return prepare_images(
        raw, max_images=settings.max_images, max_side=settings.max_image_side, max_bytes=settings.max_image_bytes,
        limits=settings.images,
    )


def _photos(story: Path) -> list[Path]:
    return sorted(story.glob("image_*.jpg"))


def _judge_story(panel, settings, story: Path, a: str, b: str, images: list):  # type: ignore[no-untyped-def]
    """One story's verdicts: the statistics' records and the story's entry in the JSON report."""
    text_a = (story / f"{a}.txt").read_text(encoding="utf-8")
    text_b = (story / f"{b}.txt").read_text(encoding="utf-8")
    pair = PairInput(text_a, text_b, photos_text(_captions(story), len(_photos(story))), images)
    verdicts = panel.compare(pair, settings.criteria)
    len_a, len_b = len(text_a.split()), len(text_b.split())
    records = [stats.Record(story.name, v.judge, v.criterion, v.outcome, v.outcome_ab, v.outcome_ba, len_a, len_b)
               for v in verdicts]
    doc = {"story": story.name, "words_a": len_a, "words_b": len_b,
           "verdicts": [{k: getattr(v, k) for k in _VERDICT_FIELDS} for v in verdicts]}
    return records, doc


def _usage(per_story: list[dict]) -> dict[str, dict[str, float]]:
    """Tokens and cost per judge over every verdict."""
    usage: dict[str, dict[str, float]] = {}
    for story in per_story:
        for v in story["verdicts"]:
            u = usage.setdefault(v["judge"], {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0})
            for k in u:
                u[k] += v[k]
    return usage

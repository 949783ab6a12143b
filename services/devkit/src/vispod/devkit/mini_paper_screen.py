"""`vispod mini-paper-screen`: a candidate change to the plan, tried on the dev split only, before any plan version.

The plan's tuned system with one adapter (one training seed), or its small base model for comparison, with the
plan's generation seeds on the plan's dev stories, and a change to the training steps or the sampling; scored by the
metrics service's computation, as the plan's run scores it (a story's dialogues averaged first). What a screen finds
decides whether a change is worth a new plan version; it is committed (results/mini-paper/screening/<tag>.json)
whatever it found. The test split is never read here: there is no option to name it.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import fmean
from typing import Any

from vispod.common.bus import ensure_topics
from vispod.common.settings import KafkaSettings
from vispod.devkit import local_kafka
from vispod.devkit.mini_paper_loop import (
    TrainProfile,
    ensure_adapter,
    generator_service,
    plan_profile,
    publish,
    say,
    vist_podcast_dir,
    wait_registered,
)
from vispod.devkit.mini_paper_runs import (
    PLAN_DECODING,
    Decoding,
    Sample,
    cached_generations,
    generate_all,
    generation_key,
    photo_stories,
    story_output,
)
from vispod.evaluation.mini_paper.evaluate import score_story, story_rows, text_scorer
from vispod.evaluation.plan import CURRENT_PLAN, Plan, PlanError, load_plan
from vispod.gate.html_parts import write_atomic
from vispod.metrics.caption_grounding import CaptionGrounder

SCREENED = ("format.valid", "style.distinct_2", "aligned_grounding.margin", "hallucination.rate",
            "hallucination.mentions", "style.avg_turn_length")


@dataclass(frozen=True)
class Candidate:
    """A change to try: None keeps the plan's value."""
    max_steps: int | None = None
    decoding: Decoding = PLAN_DECODING
    training_seed: int | None = None     # default: the plan's first adapter training seed
    role: str = "tuned"                   # or "small_base": the same model without an adapter

    def profile(self, plan: Plan) -> TrainProfile:
        profile = plan_profile(plan)
        profile = replace(profile, seed=self.training_seed or plan.adapter_training_seeds[0])
        return replace(profile, max_steps=self.max_steps) if self.max_steps else profile

    def tag(self, plan: Plan) -> str:
        p = self.profile(plan)
        model = f"steps{p.max_steps}-seed{p.seed}" if self.role == "tuned" else self.role
        return f"v{plan.version}-{model}-t{self.decoding.temperature:g}-p{self.decoding.top_p:g}"


def story_means(samples: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """Each metric's mean over stories of the story's mean over its dialogues (the plan run's story rows); a story
    without a value is left out."""
    rows = story_rows(samples, SCREENED)
    return {key: round(fmean(values), 4) if (values := [r[key] for r in rows if r.get(key) is not None]) else None
            for key in SCREENED}


def screen(plan: Plan, candidate: Candidate, out: Path, results: Path) -> dict[str, Any]:
    dataset = vist_podcast_dir()
    if dataset is None:
        raise PlanError("vist-podcast-50 is absent (VISPOD_DATASETS_ROOT): the screen runs on its dev stories")
    started = time.monotonic()
    tag = candidate.tag(plan)
    work = out / tag
    profile = candidate.profile(plan)
    tuned = candidate.role == "tuned"
    record = ensure_adapter(profile, dataset, work / "adapter", say) if tuned else None
    stories = photo_stories(dataset, plan.dev)
    system = plan.system(candidate.role)
    target_words = int(plan.document["generation"]["target_words"])
    got: dict[int, dict[str, Any]] = {}
    broker = local_kafka.start_broker(workdir=work / "kafka")
    try:
        kafka = KafkaSettings(bootstrap=broker.bootstrap, topic_prefix="screen")
        ensure_topics(kafka)
        with generator_service(work, kafka, [dataset], model=system.model, text_input=system.input,
                               plan=system.scaffold, decoding=candidate.decoding, name="generator",
                               prompt_version=plan.prompt_version) as (_, address):
            adapter_id = "base"
            if record is not None:
                adapter_id = publish(record, work / "artifacts", kafka)
                wait_registered(address, adapter_id)
            for seed in plan.seeds:
                sample = Sample(system, profile.seed if tuned else None, adapter_id, seed)
                key = generation_key(sample, target_words, record["key"] if record else "", candidate.decoding,
                                     plan.prompt_version)
                got[seed] = cached_generations(
                    work / "generations" / f"{sample.key}.json", key, stories,
                    lambda todo, sample=sample: generate_all(address, todo, sample, target_words))
    finally:
        broker.stop()
    scorer = text_scorer(CaptionGrounder())
    samples = [score_story(story_output(story, by_story[story.story_id], system, target_words), scorer)
               for by_story in got.values() for story in stories]
    per_story: dict[str, list[dict[str, Any]]] = {}
    for sample in samples:
        per_story.setdefault(sample["story_id"], []).append({k: sample.get(k) for k in SCREENED})
    doc = {"what": "a candidate change screened on the dev split (vispod.devkit.mini_paper_screen); not a plan "
                   "version, never the test split",
           "plan": {"version": plan.version, "sha256": plan.sha256}, "split": "dev", "stories": list(plan.dev),
           "system": system.name,
           "candidate": {"max_steps": profile.max_steps if tuned else None,
                         "training_seed": profile.seed if tuned else None,
                         "temperature": candidate.decoding.temperature, "top_p": candidate.decoding.top_p},
           "adapter": record and {"key": record["key"], "train_seconds": record.get("train_seconds"),
                                  "train_loss_final": (record.get("metrics") or {}).get("train_loss_final")},
           "generation_seeds": list(plan.seeds), "means": story_means(samples), "per_story": per_story,
           "seconds": round(time.monotonic() - started)}
    results.mkdir(parents=True, exist_ok=True)
    write_atomic(results / f"{tag}.json", json.dumps(doc, indent=1) + "\n")
    return doc


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mini-paper-screen", help="try a change to the plan's tuned model on its dev split only "
                                                 "(training steps, sampling) before it becomes a plan version")
    p.add_argument("--plan", type=Path, default=CURRENT_PLAN)
    p.add_argument("--max-steps", type=int, default=None, help="optimizer steps (default: the plan's profile)")
    p.add_argument("--temperature", type=float, default=Decoding.temperature)
    p.add_argument("--top-p", type=float, default=Decoding.top_p)
    p.add_argument("--training-seed", type=int, default=None, help="default: the plan's first")
    p.add_argument("--system", choices=("tuned", "small_base"), default="tuned",
                   help="small_base: the plan's base model without an adapter, for comparison")
    p.add_argument("--out", type=Path, default=Path("out/mini-paper-screen"))
    p.add_argument("--results", type=Path, default=Path("results/mini-paper/screening"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.max_steps is not None and args.max_steps < 1:
        say("--max-steps must be at least 1")
        return 2
    if not (0.0 <= args.temperature <= 2.0 and 0.0 < args.top_p <= 1.0):
        say("--temperature must be 0 to 2 and --top-p above 0 up to 1 (the generator's own limits)")
        return 2
    try:
        plan = load_plan(args.plan)
        candidate = Candidate(args.max_steps, Decoding(args.temperature, args.top_p), args.training_seed, args.system)
        doc = screen(plan, candidate, args.out.resolve(), args.results.resolve())
    except PlanError as exc:
        say(f"screen refused: {exc}")
        return 2
    say(f"dev split, {len(doc['stories'])} stories x {len(doc['generation_seeds'])} seeds: "
        + ", ".join(f"{k} {v}" for k, v in doc["means"].items()) + f" ({doc['seconds']} s)")
    return 0

"""Build (or resume) a training set: SPoRC → excerpts → SynthesisRequested → images → pairs + manifest."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vispod.dataset.clients import SynthClient, SynthesisError, SynthOutcome
from vispod.dataset.episodes import LoadReport
from vispod.dataset.excerpts import Excerpt, ExcerptConfig, ExcerptStats, iter_excerpts
from vispod.dataset.layout import DatasetDir, atomic_write, canonical_json, sha256_bytes
from vispod.dataset.prompts import (
    INSTRUCTION,
    INSTRUCTION_VERSION,
    NUM_IMAGES,
    HeuristicPromptWriter,
    ScenePromptWriter,
    human_turn,
)
from vispod.dataset.scoring import HeuristicScorer, VisualizabilityScorer
from vispod.dataset.sporc import iter_episodes
from vispod.v1 import events_pb2

log = logging.getLogger(__name__)

FORMAT = "vispod-qwen-vl-pairs/v1"


class BuildConfigMismatch(RuntimeError):
    """The output folder holds a build made with other settings: resuming would mix two datasets."""


@dataclass(frozen=True)
class SynthParams:
    width: int = 512
    height: int = 512
    steps: int = 30
    guidance: float = 7.0
    negative_prompt: str = ""


@dataclass
class BuildConfig:
    sporc: Path
    out: Path
    n: int
    seed: int = 0
    excerpt: ExcerptConfig = field(default_factory=ExcerptConfig)
    synth: SynthParams = field(default_factory=SynthParams)
    episode_share: float = 1.0
    inflight: int = 1  # requests handed to the synth client at once (the bus mode overlaps them)
    progress: bool = True


@dataclass
class BuildResult:
    out: Path
    pairs_total: int
    pairs_synthesized: int
    pairs_recovered: int
    pairs_skipped: int
    shortfall: int
    dataset_sha256: str
    source_report: dict[str, Any]
    excerpt_stats: dict[str, Any]


def pair_id_for(excerpt_id: str) -> str:
    return hashlib.sha256(excerpt_id.encode()).hexdigest()[:16]


def pair_seed(seed: int, excerpt_id: str) -> int:
    """The request seed of a pair (image k then uses pair seed + k): stable per build seed and excerpt."""
    return int(hashlib.sha256(f"{seed}/{excerpt_id}".encode()).hexdigest()[:15], 16)


def make_request(pair_id: str, prompts: Sequence[str], seed: int, params: SynthParams) -> events_pb2.SynthesisRequested:
    body = canonical_json({"prompts": list(prompts), "seed": seed, **asdict(params)})
    request_id = f"{pair_id}-{hashlib.sha256(body.encode()).hexdigest()[:12]}"
    return events_pb2.SynthesisRequested(
        request_id=request_id,
        correlation_id=pair_id,
        prompts=list(prompts),
        negative_prompt=params.negative_prompt,
        width=params.width,
        height=params.height,
        steps=params.steps,
        guidance=params.guidance,
        seed=seed,
        labels={"origin": "dataset-builder"},
    )


def plan_excerpts(cfg: BuildConfig, scorer: VisualizabilityScorer) -> tuple[list[Excerpt], LoadReport, ExcerptStats]:
    """The first `n` excerpts of the source in a deterministic order (the same on every rerun)."""
    report, stats = LoadReport(), ExcerptStats()
    episodes = iter_episodes(cfg.sporc, report)
    excerpts = list(islice(iter_excerpts(episodes, cfg.excerpt, scorer, stats, cfg.seed, cfg.episode_share), cfg.n))
    return excerpts, report, stats


def _identity(
    cfg: BuildConfig, layout: str, scorer: VisualizabilityScorer, writer: ScenePromptWriter
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "seed": cfg.seed,
        "source_layout": layout,
        "episode_share": cfg.episode_share,
        "excerpt_config": cfg.excerpt.as_dict(),
        "synthesis": asdict(cfg.synth),
        "scorer": scorer.name,
        "prompt_writer": writer.name,
        "prompt_template_version": writer.version,
        "instruction_version": INSTRUCTION_VERSION,
    }


def _check_identity(dd: DatasetDir, identity: dict[str, Any]) -> None:
    if dd.config.exists():
        previous = json.loads(dd.config.read_text(encoding="utf-8"))
        if previous != identity:
            changed = sorted(k for k in identity.keys() | previous.keys() if identity.get(k) != previous.get(k))
            raise BuildConfigMismatch(
                f"{dd.root} was built with other settings ({', '.join(changed)}); use a new --out folder"
            )
    else:
        atomic_write(dd.config, (json.dumps(identity, indent=2, sort_keys=True) + "\n").encode())


def _record_ok(dd: DatasetDir, pair_id: str) -> dict[str, Any] | None:
    """The record of a pair whose images survived intact, or None."""
    path = dd.record(pair_id)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    if all(dd.image_ok(img["path"], img["sha256"]) for img in record["entry"]["images"]):
        return record
    return None


def _commit_pair(
    dd: DatasetDir,
    excerpt: Excerpt,
    pair_id: str,
    prompts: list[str],
    request: events_pb2.SynthesisRequested,
    outcome: SynthOutcome,
    source_dataset: str,
) -> dict[str, Any]:
    """Images, then record, then the pairs.jsonl line: the line is the commit point."""
    images = []
    for k, png in enumerate(outcome.images, start=1):
        rel = dd.image_rel(pair_id, k)
        atomic_write(dd.root / rel, png)
        images.append({"path": rel, "sha256": sha256_bytes(png), "seed": request.seed + k - 1})
    dialogue = excerpt.text
    pair = {
        "id": pair_id,
        "image": [img["path"] for img in images],
        "conversations": [
            {"from": "human", "value": human_turn(len(images))},
            {"from": "gpt", "value": dialogue},
        ],
    }
    line = json.dumps(pair, ensure_ascii=False, sort_keys=False)
    entry = {
        "id": pair_id,
        "source": {
            "dataset": source_dataset,
            "excerpt_id": excerpt.excerpt_id,
            "episode_id": excerpt.episode_id,
            "podcast_id": excerpt.podcast_id,
            "mp3url": excerpt.mp3url,
            "turn_range": list(excerpt.turn_range),
        },
        "words": excerpt.words,
        "num_speakers": excerpt.num_speakers,
        "visualizability": excerpt.score,
        "prompts": prompts,
        "request_id": request.request_id,
        "seed": request.seed,
        "images": images,
        "text_sha256": sha256_bytes(dialogue.encode("utf-8")),
        "pair_sha256": sha256_bytes(line.encode("utf-8")),
        "model": outcome.model,
        "random_weights": outcome.random_weights,
    }
    record = {"entry": entry, "line": line}
    atomic_write(dd.record(pair_id), json.dumps(record, ensure_ascii=False).encode("utf-8"))
    dd.append_pair(line)
    return record


def _write_manifest(
    dd: DatasetDir,
    identity: dict[str, Any],
    entries: list[dict[str, Any]],
    report: LoadReport,
    stats: ExcerptStats,
    build: dict[str, Any],
) -> str:
    models = sorted({e["model"] for e in entries})
    random_weights = any(e["random_weights"] for e in entries)
    content = {
        **identity,
        "instruction": INSTRUCTION,
        "num_pairs": len(entries),
        "images_per_pair": NUM_IMAGES,
        "models": models,
        "random_weights": random_weights,
        "pairs_sha256": sha256_bytes(dd.pairs.read_bytes()) if dd.pairs.exists() else sha256_bytes(b""),
        "pairs": entries,
    }
    if random_weights:
        content["warning"] = "images were drawn by a random-initialised pipeline: they depict nothing"
    dataset_sha256 = sha256_bytes(canonical_json(content).encode("utf-8"))
    # Outside the hash: what reading the source met depends on how far it was read (the --n of this run).
    manifest = {
        **content,
        "dataset_sha256": dataset_sha256,
        "source_report": report.as_dict(),
        "excerpt_stats": stats.as_dict(),
        "build": build,
    }
    atomic_write(dd.manifest, (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
    return dataset_sha256


def build_dataset(
    cfg: BuildConfig,
    client: SynthClient,
    scorer: VisualizabilityScorer | None = None,
    writer: ScenePromptWriter | None = None,
) -> BuildResult:
    """Build `cfg.n` pairs into `cfg.out`, or finish a build that was interrupted there."""
    scorer = scorer or HeuristicScorer()
    writer = writer or HeuristicPromptWriter()
    dd = DatasetDir(cfg.out)
    dd.prepare()
    excerpts, report, stats = plan_excerpts(cfg, scorer)
    identity = _identity(cfg, report.layout, scorer, writer)
    _check_identity(dd, identity)

    done = dd.read_pairs()
    done_ids = [p.get("id") for p in done]
    planned_ids = [pair_id_for(e.excerpt_id) for e in excerpts]
    common = min(len(done_ids), len(planned_ids))  # a rerun with a smaller --n keeps what is there
    if done_ids[:common] != planned_ids[:common]:
        raise BuildConfigMismatch(f"{dd.pairs} does not match this build's plan (different source or settings?)")
    if report.malformed_total:
        log.warning("SPoRC rows skipped as malformed: %s", dict(report.malformed))
    todo = list(zip(planned_ids, excerpts, strict=True))[common:]
    synthesized = recovered = 0
    bar = tqdm(
        total=max(len(planned_ids), len(done_ids)),
        initial=len(done_ids),
        desc="pairs",
        unit="pair",
        file=sys.stderr,
        disable=not cfg.progress,
    )
    try:
        for start in range(0, len(todo), max(1, cfg.inflight)):
            chunk = todo[start : start + max(1, cfg.inflight)]
            jobs: list[tuple[str, Excerpt, dict[str, Any] | None, list[str], events_pb2.SynthesisRequested | None]] = []
            for pair_id, excerpt in chunk:
                record = _record_ok(dd, pair_id)
                if record is not None:  # killed after the record, before the line: reuse, do not redraw
                    jobs.append((pair_id, excerpt, record, [], None))
                    continue
                prompts = writer.write(excerpt.text)
                request = make_request(pair_id, prompts, pair_seed(cfg.seed, excerpt.excerpt_id), cfg.synth)
                jobs.append((pair_id, excerpt, None, prompts, request))
            requests = [job[4] for job in jobs if job[4] is not None]
            outcomes = client.run(requests) if requests else {}
            for pair_id, excerpt, record, prompts, request in jobs:
                if record is not None:
                    dd.append_pair(record["line"])
                    recovered += 1
                else:
                    assert request is not None
                    outcome = outcomes.get(request.request_id)
                    if outcome is None:
                        raise SynthesisError(f"no images for request {request.request_id}")
                    if len(outcome.images) != NUM_IMAGES:
                        raise SynthesisError(f"request {request.request_id}: {len(outcome.images)} images, want 5")
                    source = "chitchat-dataset" if report.layout == "chitchat" else "SPoRC"
                    _commit_pair(dd, excerpt, pair_id, prompts, request, outcome, source)
                    synthesized += 1
                bar.update(1)
    finally:
        bar.close()

    lines = dd.read_pairs()
    entries = [json.loads(dd.record(p["id"]).read_text(encoding="utf-8"))["entry"] for p in lines]
    build = {"mode": client.mode, "source_path": str(cfg.sporc), "requested_pairs": cfg.n}
    digest = _write_manifest(dd, identity, entries, report, stats, build)
    shortfall = max(0, cfg.n - len(planned_ids))
    if shortfall:
        log.warning("source gave %d excerpts of the %d asked for", len(planned_ids), cfg.n)
    return BuildResult(
        out=dd.root,
        pairs_total=len(lines),
        pairs_synthesized=synthesized,
        pairs_recovered=recovered,
        pairs_skipped=len(done_ids),
        shortfall=shortfall,
        dataset_sha256=digest,
        source_report=report.as_dict(),
        excerpt_stats=stats.as_dict(),
    )

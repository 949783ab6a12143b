"""Pairing rules and the durable pair store, without a broker (the Kafka flow is in test_judge_service)."""

from __future__ import annotations

import os
import time

import pytest
from judge_scripted import ScriptedJudge

from vispod.common.errors import InvalidArgument
from vispod.common.events import Envelope
from vispod.judge.judging import Comparer
from vispod.judge.pairing import PairingHandler, match
from vispod.judge.protocol import Panel
from vispod.judge.rubrics import load_rubric
from vispod.judge.settings import JudgeSettings
from vispod.judge.state import DonePair, PairStore, PendingPair, Side
from vispod.v1 import common_pb2, events_pb2


def _ev(system: str, text: str = "Speaker 1: hi", image_set: str = "s1", **labels: str):
    ev = events_pb2.DialogueGenerated(image_set_id=image_set, system=system, dialogue=common_pb2.Dialogue(text=text))
    ev.status = common_pb2.STATUS_OK
    ev.labels.update(labels)
    return ev


def _env(event_id: str, ev: events_pb2.DialogueGenerated) -> Envelope:
    return Envelope(id=event_id, type="vispod.v1.DialogueGenerated", source="t", time="", message=ev)


def test_match_rules() -> None:
    s = JudgeSettings(pairs=[{"a": "cand", "b": "base"}, {"a": "cand", "b": "other"}])
    assert [(x.pair_id, x.side) for x in match(_ev("cand"), s)] == [("cand vs base", "a"), ("cand vs other", "a")]
    assert [(x.pair_id, x.side) for x in match(_ev("base"), s)] == [("cand vs base", "b")]
    assert match(_ev("nobody"), s) == []
    labelled = match(_ev("x", **{"judge.pair": "run1", "judge.side": "B"}), s)
    assert [(x.pair_id, x.side) for x in labelled] == [("label:run1", "b")]
    with pytest.raises(InvalidArgument):
        match(_ev("x", **{"judge.pair": "run1"}), s)
    with pytest.raises(ValueError):
        JudgeSettings(pairs=[{"a": "same", "b": "same"}])


def test_store_roundtrip_and_prune(tmp_path) -> None:
    store = PairStore(tmp_path)
    p = PendingPair("k1", "s1", "a vs b", 123.0, {"a": Side("e1", "a", "AAEC")})
    store.put_pending(p)
    assert store.get_pending("k1") == p and store.pending() == [p] and store.pending_count() == 1
    store.mark_done(DonePair("k1", "judged", time.time(), "e2", "AAEC"))
    assert store.get_pending("k1") is None and store.get_done("k1").completing_event_id == "e2"
    [done_file] = list((tmp_path / "done").glob("*.json"))
    old = time.time() - 3600
    os.utime(done_file, (old, old))
    assert store.prune_done(60) == 1 and store.get_done("k1") is None
    assert not list(tmp_path.rglob("*.tmp*"))  # atomic writes leave no temp files


def test_redelivered_completing_event_re_emits_without_judging_again(tmp_path) -> None:
    settings = JudgeSettings(pairs=[{"a": "cand", "b": "base"}], state_dir=tmp_path, criteria=["naturalness"])
    judge = ScriptedJudge()
    handler = PairingHandler(settings, Comparer(settings, Panel([judge], load_rubric("v1"))), PairStore(tmp_path))
    assert list(handler(_env("e-b", _ev("base", "Speaker 1: plain")))) == []
    assert list(handler(_env("e-b", _ev("base", "Speaker 1: plain")))) == []  # same side again: held once
    [first] = handler(_env("e-a", _ev("cand", "Speaker 1: GOOD")))
    assert judge.calls == 2 and first.message.verdicts[0].outcome == events_pb2.OUTCOME_A_WINS
    # the completing event again (its commit was lost): the same judgement, not a new one
    [again] = handler(_env("e-a", _ev("cand", "Speaker 1: GOOD")))
    assert again.message == first.message and judge.calls == 2
    # a new event for a judged pair: dropped
    assert list(handler(_env("e-a2", _ev("cand", "Speaker 1: GOOD")))) == []
    with pytest.raises(InvalidArgument):
        list(handler(_env("e-x", _ev("cand", image_set=""))))


def test_judged_pairs_drive_the_exported_win_rate(tmp_path) -> None:
    """vispod_judge_win_rate (alert VispodJudgedWinRateFalling, dashboard) follows the pairs the service judges."""
    from prometheus_client import REGISTRY

    settings = JudgeSettings(pairs=[{"a": "wr-cand", "b": "wr-base"}], state_dir=tmp_path, criteria=["naturalness"])
    judge = ScriptedJudge(name="scripted:wr")
    handler = PairingHandler(settings, Comparer(settings, Panel([judge], load_rubric("v1"))), PairStore(tmp_path))

    def rate() -> float | None:
        return REGISTRY.get_sample_value(
            "vispod_judge_win_rate", {"pair": "wr-cand vs wr-base", "judge": "scripted:wr", "criterion": "naturalness"})

    assert rate() is None
    for i, cand_text in enumerate(["GOOD", "GOOD", "GOOD", "plain"]):  # the scripted judge prefers GOOD
        other = "plain" if cand_text == "GOOD" else "GOOD"
        handler(_env(f"b{i}", _ev("wr-base", f"Speaker 1: {other}", image_set=f"s{i}")))
        handler(_env(f"a{i}", _ev("wr-cand", f"Speaker 1: {cand_text}", image_set=f"s{i}")))
        assert rate() == pytest.approx([1.0, 1.0, 1.0, 0.75][i])
    # label-driven runs (unbounded run ids) share one bounded label value
    handler(_env("lb", _ev("x", "Speaker 1: plain", image_set="s9", **{"judge.pair": "run-7", "judge.side": "b"})))
    handler(_env("la", _ev("y", "Speaker 1: GOOD", image_set="s9", **{"judge.pair": "run-7", "judge.side": "a"})))
    assert REGISTRY.get_sample_value(
        "vispod_judge_win_rate", {"pair": "labelled", "judge": "scripted:wr", "criterion": "naturalness"}) == 1.0

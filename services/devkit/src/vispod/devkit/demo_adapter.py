"""The adapter `vispod demo` serves, and how it reaches the demo's generator.

The demo serves the adapter that `make mini-paper` last promoted on this machine (its gate decision is recorded
beside the cached adapter); without one, it trains the current plan's profile once (cached by data, configuration and
base weights). That adapter is the plan's first training seed's, so the committed test results
(results/mini-paper/v<N>/test/results.json) hold the gate's decision on it when their cache key matches: promoted,
it serves by default; rejected or undecided, it is requested explicitly as a candidate and the demo says so.
Either way the adapter goes through the bus like the trainer Job's: stored, AdapterPublished, verified and
installed by the generator; a promotion is the gate's AdapterLifecycleChanged on the bus.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vispod.common.bus import EventPublisher
from vispod.devkit.checkout import CHECKOUT
from vispod.devkit.local_adapter_store import store_settings
from vispod.devkit.mini_paper_loop import (
    PROMOTED,
    ensure_adapter,
    plan_profile,
    publish,
    publish_decision,
    vist_podcast_dir,
    wait_registered,
    wait_state,
)
from vispod.evaluation.plan import load_plan
from vispod.trainer.publish import publish_adapter

COMMITTED_RESULTS = CHECKOUT / "results" / "mini-paper"


@dataclass(frozen=True)
class DemoAdapter:
    record: dict[str, Any]
    decision: dict[str, Any] | None      # the gate's recorded decision (promote) or None


@dataclass(frozen=True)
class Route:
    adapter_id: str
    request_adapter: str                 # "" when the adapter serves by default (promoted), else its id
    note: str


def demo_adapter(out: Path, dataset: Path | None = None) -> DemoAdapter:
    try:
        promoted = json.loads(PROMOTED.read_text())
        # Only an adapter trained on facts fits the demo's photos (an older one read captions).
        facts = promoted["record"]["data"]["profile"].get("scene_input") == "facts"
        if facts and Path(promoted["record"]["adapter_dir"]).is_dir():
            return DemoAdapter(promoted["record"], promoted["decision"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    record = ensure_adapter(plan_profile(load_plan()), dataset or vist_podcast_dir(), out / "adapter")
    return DemoAdapter(record, committed_decision(record))


def committed_decision(record: dict[str, Any], root: Path = COMMITTED_RESULTS) -> dict[str, Any] | None:
    """The gate's decision on this adapter in the current plan's committed test results, or None (no results, another
    plan, or another adapter: its cache key differs from the plan's first training seed's)."""
    plan = load_plan()
    path = root / f"v{plan.version}" / "test" / "results.json"
    try:
        results = json.loads(path.read_text())
        first = results["adapters"][str(plan.adapter_training_seeds[0])]
        gate = results["gate"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if first.get("key") != record.get("key") or gate.get("plan_sha256") != plan.sha256:
        return None
    return {**gate, "source": f"results/mini-paper/v{plan.version}/test/results.json"}


def publish_signed(record: dict[str, Any], store_env: Path, kafka) -> str:
    """Publishes to the stack's S3 store (`vispod up --store s3`) as the trainer Job does: a signed version,
    announced on the bus; the generator verifies it before loading."""
    settings = store_settings(store_env)
    publisher = EventPublisher(kafka, source="trainer")
    try:
        event = publish_adapter(store=settings.open(), publisher=publisher, adapter_dir=Path(record["adapter_dir"]),
                                manifest=record["manifest"], signer=settings.signer())
    finally:
        publisher.close()
    return event.adapter_id


def publish_and_route(adapter: DemoAdapter, store_root: Path, kafka, generator: str, keys: Path,
                      timeout: float = 60.0, store_env: Path | None = None) -> Route:
    """`keys`: the stack's lifecycle keys (its generator obeys what the gate key there signs). `store_env`: the
    trainer's settings of the stack's S3 store, if it has one (else the unsigned folders under `store_root`)."""
    adapter_id = (publish_signed(adapter.record, store_env, kafka) if store_env
                  else publish(adapter.record, store_root, kafka))
    wait_registered(generator, adapter_id)
    trained = f"trained here in {adapter.record.get('train_seconds', '?')} s ({adapter.record.get('profile')} profile)"
    if adapter.decision and adapter.decision.get("decision") == "promote":
        publish_decision(kafka, adapter_id, adapter.decision, keys)
        if wait_state(generator, adapter_id, "ACTIVE", timeout) != "ACTIVE":
            raise TimeoutError(f"the generator did not apply the gate's promotion of {adapter_id}")
        source = adapter.decision.get("source", "make mini-paper")
        return Route(adapter_id, "", f"{adapter_id}, {trained}; promoted by the gate under the plan's rule "
                                     f"({source}) and served by default")
    if adapter.decision:
        source = adapter.decision.get("source", "")
        return Route(adapter_id, adapter_id, f"{adapter_id}, {trained}; the plan's gate REJECTED it ({source}): "
                                             "the base model stays active, and the adapter is requested explicitly "
                                             "here only to show it beside the base")
    return Route(adapter_id, adapter_id, f"{adapter_id}, {trained}; NOT promoted by a gate yet (run `make "
                                         "mini-paper SPLIT=test` for the evidence): requested as a candidate")

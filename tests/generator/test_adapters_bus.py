"""Adapters through the real broker: a peft adapter made here is published by event, verified, routed
(canary split, promote, rollback), applied from gate decisions, and changes the tiny VLM's output;
a tampered one goes to the DLQ with its reason and changes nothing; a restart keeps the state."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from lifecycle_keys import identities  # noqa: E402

from vispod.common.artifacts import ArtifactStore  # noqa: E402
from vispod.common.bus import EventConsumer, EventPublisher, EventReader, ensure_topics  # noqa: E402
from vispod.common.settings import KafkaSettings  # noqa: E402
from vispod.common.topics import Topic, dlq_topic  # noqa: E402
from vispod.devkit.testing.adapter_files import make_lora_adapter, published_event  # noqa: E402
from vispod.devkit.testing.tiny_vlm import build_tiny_qwen3_vl  # noqa: E402
from vispod.generator.adapters import AdapterRegistry, AdapterUnavailable  # noqa: E402
from vispod.generator.adapters.peft_switch import PeftSwitcher  # noqa: E402
from vispod.v1 import events_pb2, generator_pb2  # noqa: E402

A = generator_pb2.UpdateAdapterRequest
S = events_pb2


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("tiny-bus")
    model_dir = build_tiny_qwen3_vl(root / "tiny-qwen3-vl")
    return {"model_dir": model_dir, "lora": [make_lora_adapter(model_dir, root / f"lora{i}", seed=i) for i in (1, 2)]}


class Running:
    """A registry with its two consumers running against the broker, as the generator service wires it."""

    def __init__(self, tmp: Path, kafka: KafkaSettings, base: str) -> None:
        self.publisher = EventPublisher(kafka, "generator")
        self.ids = identities()
        self.registry = AdapterRegistry(tmp / "state", tmp / "cache", base, publisher=self.publisher,
                                        keyring=self.ids.keyring, signer=self.ids.admin)
        group = f"{kafka.topic_prefix}.generator.adapters.test-0"   # one group per replica: every replica sees all
        self.consumers = [
            EventConsumer(service="generator", topics=[Topic.ADAPTER_PUBLISHED], expected=events_pb2.AdapterPublished,
                          handler=self.registry.handle_published, kafka=kafka, group_id=f"{group}.published"),
            EventConsumer(service="generator", topics=[Topic.ADAPTER_LIFECYCLE],
                          expected=events_pb2.AdapterLifecycleChanged, handler=self.registry.handle_lifecycle,
                          kafka=kafka, group_id=f"{group}.lifecycle"),
        ]
        self.threads = [threading.Thread(target=c.run, daemon=True) for c in self.consumers]
        for t in self.threads:
            t.start()
        for c in self.consumers:
            assert c.wait_running(30)

    def stop(self) -> None:
        if not self.threads:
            return
        for c in self.consumers:
            c.stop()
        for t in self.threads:
            t.join(30)
        self.threads = []
        self.publisher.close()


@pytest.fixture
def running(tmp_path: Path, kafka: KafkaSettings, tiny) -> Iterator[Running]:
    ensure_topics(kafka)
    r = Running(tmp_path, kafka, tiny["model_dir"].name)
    yield r
    r.stop()


def states(reg: AdapterRegistry) -> dict[str, int]:
    return {i.adapter_id: i.state for i in reg.list_adapters().adapters}


def wait_for(reader: EventReader, what, timeout: float = 90.0):
    found = reader.read(1, timeout=timeout, where=what)
    assert found, "event did not arrive"
    return found[0]


def test_publish_canary_promote_rollback_on_the_broker(tmp_path, kafka, tiny, running):
    store = ArtifactStore(tmp_path / "artifacts")
    base_id = tiny["model_dir"].name
    msgs = []
    for i, folder in enumerate(tiny["lora"], start=1):
        uri = store.put_dir(folder, "sporc", str(i))
        msgs.append(published_event(store.path(uri), f"sporc@{i}", base_id, artifact_uri=uri))
    trainer = EventPublisher(kafka, "trainer")
    lifecycle = EventReader(kafka, [Topic.ADAPTER_LIFECYCLE])
    try:
        for msg in msgs:
            trainer.publish(Topic.ADAPTER_PUBLISHED, msg)
        registered = lifecycle.read(2, timeout=90)
        assert sorted((e.message.adapter_id, e.message.state, e.message.actor) for e in registered) == [
            ("sporc@1", S.ADAPTER_STATE_CANDIDATE, "generator"), ("sporc@2", S.ADAPTER_STATE_CANDIDATE, "generator")]
        reg = running.registry
        assert states(reg) == {"sporc@1": S.ADAPTER_STATE_CANDIDATE, "sporc@2": S.ADAPTER_STATE_CANDIDATE}

        # Redelivery of the same artifact is a no-op (no second CANDIDATE event).
        trainer.publish(Topic.ADAPTER_PUBLISHED, msgs[0])

        # Promote 1, canary 2 at 30 %: the split follows the routing key, deterministically.
        reg.update(A(adapter_id="sporc@1", action=A.ACTION_PROMOTE))
        reg.update(A(adapter_id="sporc@2", action=A.ACTION_CANARY, canary_share=0.3))
        keys = [f"set-{n}" for n in range(2000)]
        routed = [reg.resolve("", k).adapter_id for k in keys]
        assert 0.26 < routed.count("sporc@2") / len(keys) < 0.34
        assert [reg.resolve("", k).adapter_id for k in keys] == routed

        # The gate promotes the canary by event; the registry applies it.
        trainer.publish(Topic.ADAPTER_LIFECYCLE, running.ids.command(
            "sporc@2", S.ADAPTER_STATE_ACTIVE, previous_state=S.ADAPTER_STATE_CANARY,
            reason="win rate lower bound 0.62 > 0.5", evidence={"win_rate_lower": 0.62}))
        wait_until(lambda: reg.active_adapter_id == "sporc@2")
        assert states(reg)["sporc@1"] == S.ADAPTER_STATE_RETIRED

        # The adapter serves: the tiny VLM's greedy output differs from the base model's.
        from transformers import AutoModelForImageTextToText, AutoProcessor

        processor = AutoProcessor.from_pretrained(tiny["model_dir"])
        inputs = processor(text=["<|im_start|>user\nWrite a dialogue<|im_end|>\n<|im_start|>assistant\n"],
                           return_tensors="pt")
        switcher = PeftSwitcher(AutoModelForImageTextToText.from_pretrained(tiny["model_dir"]).eval())
        outputs = {}
        for key in ("base", ""):
            version = reg.resolve(key, "set-0")
            with switcher.using(version) as m, torch.no_grad():
                outputs[key] = m.generate(**inputs, max_new_tokens=6, min_new_tokens=6, do_sample=False).tolist()
        assert outputs["base"] != outputs[""]

        # Admin rollback: the previous active serves again, and the change is on the topic.
        reg.update(A(action=A.ACTION_ROLLBACK, reason="complaints"))
        assert reg.active_adapter_id == "sporc@1"
        event = wait_for(lifecycle, lambda e: e.message.actor == "admin" and e.message.state == S.ADAPTER_STATE_RETIRED
                         and e.message.adapter_id == "sporc@2")
        assert event.message.reason == "complaints"
    finally:
        trainer.close()
        lifecycle.close()
    everything = EventReader(kafka, [Topic.ADAPTER_LIFECYCLE])
    try:
        candidates = everything.read(10, timeout=3, where=lambda e: e.message.state == S.ADAPTER_STATE_CANDIDATE)
    finally:
        everything.close()
    assert len(candidates) == 2, "the redelivered AdapterPublished emitted nothing"

    # Restart: a new registry on the same state dir keeps the active adapter and the routing.
    running.stop()
    again = AdapterRegistry(tmp_path / "state", tmp_path / "cache", base_id)
    assert again.active_adapter_id == "sporc@1"
    assert states(again) == states(reg)


def test_tampered_adapter_goes_to_the_dlq_and_changes_nothing(tmp_path, kafka, tiny, running):
    store = ArtifactStore(tmp_path / "artifacts")
    base_id = tiny["model_dir"].name
    good_uri = store.put_dir(tiny["lora"][0], "sporc", "1")
    bad_uri = store.put_dir(tiny["lora"][1], "sporc", "2")
    good = published_event(store.path(good_uri), "sporc@1", base_id, artifact_uri=good_uri)
    bad = published_event(store.path(bad_uri), "sporc@2", base_id, artifact_uri=bad_uri)
    weights = store.path(bad_uri) / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01           # one bit flipped after publication
    weights.write_bytes(bytes(data))

    trainer = EventPublisher(kafka, "trainer")
    dlq = EventReader(kafka, [dlq_topic("generator", kafka.topic_prefix)])
    lifecycle = EventReader(kafka, [Topic.ADAPTER_LIFECYCLE])
    try:
        trainer.publish(Topic.ADAPTER_PUBLISHED, good)
        wait_for(lifecycle, lambda e: e.message.adapter_id == "sporc@1")
        running.registry.update(A(adapter_id="sporc@1", action=A.ACTION_PROMOTE))
        before = states(running.registry)
        trainer.publish(Topic.ADAPTER_PUBLISHED, bad)
        letter = wait_for(dlq, lambda e: True).message
        assert letter.error_kind == "invalid"
        assert "sha256_mismatch" in letter.error and "sporc@2" in letter.error
        # A gate decision about it cannot bring it in either.
        trainer.publish(Topic.ADAPTER_LIFECYCLE, running.ids.command("sporc@2", S.ADAPTER_STATE_ACTIVE,
                                                                     reason="looked good"))
        # Good events keep flowing after the bad one.
        trainer.publish(Topic.ADAPTER_PUBLISHED, published_event(
            store.path(store.put_dir(tiny["lora"][1], "sporc", "3")), "sporc@3", base_id))
        wait_for(lifecycle, lambda e: e.message.adapter_id == "sporc@3")
    finally:
        trainer.close()
        dlq.close()
        lifecycle.close()
    reg = running.registry
    assert states(reg) == {**before, "sporc@3": S.ADAPTER_STATE_CANDIDATE}
    assert reg.active_adapter_id == "sporc@1"
    with pytest.raises(AdapterUnavailable):
        reg.resolve("sporc@2", "k")
    assert not (tmp_path / "cache" / "sporc" / "2").exists()


def wait_until(condition, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")

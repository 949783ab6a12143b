"""End to end: the trainer publishes on the real broker; the generator's registry consumes the event, fetches and
verifies the files, and its PeftSwitcher loads the adapter, which changes the model's output."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_settings

from vispod.common.bus import EventConsumer, ensure_topics
from vispod.common.topics import Topic
from vispod.devkit.testing.sample_pairs import write_sample_pairs
from vispod.trainer.run import run_training
from vispod.v1 import events_pb2

adapters = pytest.importorskip("vispod.generator.adapters.registry")
from vispod.generator.adapters.peft_switch import PeftSwitcher  # noqa: E402
from vispod.generator.adapters.verify import ArtifactFetcher  # noqa: E402


def test_generator_loads_published_adapter_and_output_changes(tiny_model: Path, tmp_path: Path, kafka) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    ensure_topics(kafka)
    pairs = write_sample_pairs(tmp_path / "pairs", n=2)
    store = tmp_path / "store"
    outcome = run_training(tiny_settings(tiny_model, pairs, tmp_path / "out", max_steps=3, learning_rate=5e-2,
                                         warmup_ratio=0, publish=True, kafka=kafka, artifact_root=store,
                                         adapter_name="podcast"))
    adapter_id = outcome.event.adapter_id

    registry = adapters.AdapterRegistry(tmp_path / "gen-state", tmp_path / "gen-cache", base_model_id=tiny_model.name,
                                        artifact_fetcher=ArtifactFetcher(file_roots=[store]))
    consumer = EventConsumer(service="generator", topics=[Topic.ADAPTER_PUBLISHED],
                             expected=events_pb2.AdapterPublished, handler=registry.handle_published, kafka=kafka,
                             group_id=f"{kafka.topic_prefix}-generator")
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while registry.get(adapter_id) is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        consumer.stop()
        thread.join(timeout=30)
    version = registry.get(adapter_id)
    assert version is not None, "the generator did not register the published adapter"
    assert registry.state_of(adapter_id) == "CANDIDATE"
    assert (version.local_path / "adapter_model.safetensors").is_file()

    processor = AutoProcessor.from_pretrained(tiny_model)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model).eval()
    batch = processor(text=["<|im_start|>user\nWrite a podcast about the beach.<|im_end|>\n<|im_start|>assistant\n"],
                      return_tensors="pt")
    switcher = PeftSwitcher(model)
    with torch.no_grad():
        with switcher.using(None) as m:
            base_logits = m(**batch).logits
        with switcher.using(version) as m:
            tuned_logits = m(**batch).logits
            tuned_tokens = m.generate(**batch, max_new_tokens=8, do_sample=False)
        with switcher.using(None) as m:
            again = m(**batch).logits
            base_tokens = m.generate(**batch, max_new_tokens=8, do_sample=False)
    assert switcher.applied is None and adapter_id in switcher.loaded
    assert torch.equal(base_logits, again)  # switching back restores the base exactly
    assert (tuned_logits - base_logits).abs().max() > 1e-3
    # Training is seeded, so this holds deterministically: the adapter changes what the model generates.
    assert tuned_tokens.tolist() != base_tokens.tolist()

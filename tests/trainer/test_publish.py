"""Publishing: verified files in the artifact store, AdapterPublished on the real broker, versions never overwritten."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import tiny_settings

from vispod.common.artifacts import ArtifactExists, ArtifactStore
from vispod.common.bus import EventPublisher, ensure_topics, read_events
from vispod.common.topics import Topic
from vispod.trainer.dataset import dataset_hash, load_pairs
from vispod.trainer.publish import PublishError, publish_adapter
from vispod.trainer.run import run_training
from vispod.v1 import events_pb2


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_published_adapter_lands_on_the_broker_with_correct_hashes(tiny_model: Path, tmp_path: Path, kafka) -> None:
    ensure_topics(kafka)
    pairs = tmp_path / "pairs"
    from vispod.devkit.testing.sample_pairs import write_sample_pairs

    write_sample_pairs(pairs, n=3, manifest=False)
    settings = tiny_settings(tiny_model, pairs, tmp_path / "out", max_steps=2, publish=True, kafka=kafka,
                             adapter_name="podcast", eval_fraction=0.34,
                             artifact_root=tmp_path / "store")
    outcome = run_training(settings)
    [env] = read_events(kafka, [Topic.ADAPTER_PUBLISHED], 1, timeout=30)
    event = env.message
    assert isinstance(event, events_pb2.AdapterPublished)
    assert event == outcome.event
    assert (event.adapter_id, event.name, event.version) == ("podcast@1", "podcast", "1")
    folder = ArtifactStore(settings.artifact_root).path(event.artifact_uri)
    assert folder == (tmp_path / "store" / "podcast" / "1").resolve()
    assert set(event.file_sha256) == {"adapter_model.safetensors", "adapter_config.json", "manifest.json"}
    for name, digest in event.file_sha256.items():
        assert _sha(folder / name) == digest
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["files"] == {k: v for k, v in event.file_sha256.items() if k != "manifest.json"}
    loaded = load_pairs(pairs)
    assert event.dataset_manifest_sha256 == manifest["dataset_manifest_sha256"] == dataset_hash(pairs, loaded)
    assert event.base_model_id == tiny_model.name and event.base_model_revision.startswith("sha256:")
    assert manifest["base_model_random_weights"] is True
    assert (event.lora_rank, event.lora_alpha) == (16, 32.0)
    assert list(event.target_modules) == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert event.training_metrics["steps"] == 2 and "eval_loss" in event.training_metrics
    assert manifest["hyperparameters"]["learning_rate"] == 1e-2 and manifest["code_version"]
    assert event.published_at.seconds > 0

    # The next run without a version gets the next number; an explicit existing version is refused up front.
    second = run_training(tiny_settings(tiny_model, pairs, tmp_path / "out2", max_steps=1, publish=True, kafka=kafka,
                                        adapter_name="podcast", artifact_root=tmp_path / "store"))
    assert second.event.adapter_id == "podcast@2"
    with pytest.raises(ArtifactExists, match="podcast@1 is already published"):
        run_training(tiny_settings(tiny_model, pairs, tmp_path / "out3", max_steps=1, publish=True, kafka=kafka,
                                   adapter_name="podcast", adapter_version="1", artifact_root=tmp_path / "store"))
    assert (folder / "manifest.json").read_text() == json.dumps(manifest, indent=2, sort_keys=True)


def test_never_overwrites_but_reannounces_its_own_identical_copy(tiny_model: Path, tmp_path: Path, kafka) -> None:
    from vispod.devkit.testing.sample_pairs import write_sample_pairs

    ensure_topics(kafka)
    pairs = write_sample_pairs(tmp_path / "pairs", n=2)
    outcome = run_training(tiny_settings(tiny_model, pairs, tmp_path / "out", max_steps=1, adapter_name="x",
                                         adapter_version="7"))  # trained, not published
    store = ArtifactStore(tmp_path / "store")
    publisher = EventPublisher(kafka, source="trainer")
    try:
        first = publish_adapter(store=store, publisher=publisher, adapter_dir=outcome.result.adapter_dir,
                                manifest=outcome.manifest)
        # A retry (publish crashed after storing) finds identical files: same artifact, same event id.
        again = publish_adapter(store=store, publisher=publisher, adapter_dir=outcome.result.adapter_dir,
                                manifest=outcome.manifest)
        assert again.artifact_uri == first.artifact_uri and dict(again.file_sha256) == dict(first.file_sha256)
        # Different weights under the same version: refused, stored files untouched.
        weights = outcome.result.adapter_dir / "adapter_model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-4] + b"\x00\x00\x00\x00")
        changed = dict(outcome.manifest, files=dict(outcome.manifest["files"],
                                                     **{"adapter_model.safetensors": _sha(weights)}))
        with pytest.raises(PublishError, match="x@7 is already published with other files"):
            publish_adapter(store=store, publisher=publisher, adapter_dir=outcome.result.adapter_dir, manifest=changed)
    finally:
        publisher.close()
    stored = store.path(first.artifact_uri)
    assert _sha(stored / "adapter_model.safetensors") == first.file_sha256["adapter_model.safetensors"]
    envs = read_events(kafka, [Topic.ADAPTER_PUBLISHED], 2, timeout=30)
    assert len({e.id for e in envs}) == 1  # consumers de-duplicate the re-announcement by id

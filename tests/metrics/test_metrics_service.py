"""The metrics service end to end: gRPC Score and the Kafka flow on the real broker, bad input, Prometheus."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from service_fixtures import grpc_stub, running

from vispod.common.bus import EventPublisher, read_events
from vispod.common.service import ServiceHandle
from vispod.common.settings import ImageAccessSettings, KafkaSettings
from vispod.common.topics import Topic, dlq_topic, topic_name
from vispod.metrics.caption_grounding import CaptionGrounder
from vispod.metrics.clip_model import RANDOM_WEIGHTS_NOTE, ClipBundle
from vispod.metrics.grounding import GroundingScorer
from vispod.metrics.prom import OTHER, BoundedLabels
from vispod.metrics.service import build
from vispod.metrics.settings import MetricsSettings
from vispod.v1 import common_pb2, events_pb2, metrics_pb2, metrics_pb2_grpc

DIALOGUE = (
    "Speaker 1: We reached the harbour at dawn. Did you see the boats?\n\n"
    "Speaker 2: I did, and the gulls were everywhere over the nets.\n\n"
    "Speaker 1: Then we climbed the hill to the old church."
)


@pytest.fixture(scope="module")
def service(module_kafka: KafkaSettings, clip_bundle: ClipBundle, image_dir: Path,
            caption_grounder: CaptionGrounder) -> Iterator[ServiceHandle]:
    settings = MetricsSettings(
        grpc_port=0, metrics_port=0, shutdown_grace_s=2, kafka=module_kafka, clip_model=clip_bundle.name,
        clip_random_init=True, images=ImageAccessSettings(file_roots=[image_dir], max_images=8),
        max_system_labels=2,
    )
    yield from running(build(settings, GroundingScorer(clip_bundle, cache_size=32), caption_grounder).start())


@pytest.fixture(scope="module")
def stub(service: ServiceHandle) -> Iterator[metrics_pb2_grpc.MetricsServiceStub]:
    yield from grpc_stub(service, metrics_pb2_grpc.MetricsServiceStub)


def refs(image_dir: Path, *names: str) -> list[common_pb2.ImageRef]:
    return [common_pb2.ImageRef(uri=(image_dir / n).as_uri()) for n in names]


def test_score_over_grpc(stub: metrics_pb2_grpc.MetricsServiceStub, image_dir: Path) -> None:
    generated = _generated(image_dir, "grpc-1", images=refs(image_dir, "img0.png", "img1.png", "photo.jpg"))
    req = metrics_pb2.ScoreRequest(generated=generated, distractors=refs(image_dir, "img4.png"))
    resp = stub.Score(req, timeout=60).result
    # the MetricsComputed the Kafka path publishes: the event's ids and labels carried over
    assert (resp.image_set_id, resp.correlation_id, resp.system, resp.adapter_id, dict(resp.labels)) == (
        "grpc-1", "c-grpc-1", "tiny-test", "a@1", {"run": "t"})
    assert (resp.style.num_turns, resp.style.num_speakers, resp.paper_style.num_turns) == (3, 2, 3)
    assert resp.style.question_rate == pytest.approx(1 / 3)
    g = resp.grounding
    assert g.random_weights and len(g.per_image_max) == 3 and g.num_windows >= 1
    assert 0.0 <= g.retrieval_accuracy <= 1.0
    assert RANDOM_WEIGHTS_NOTE in resp.warnings
    # text-only metrics: format read from the text; no caption or facts: no hallucination check, no scenes
    assert (resp.format.num_turns, resp.format.too_few_turns, resp.format.valid) == (3, True, False)
    assert not resp.HasField("hallucination") and not resp.HasField("aligned_grounding")
    assert resp.naturalness.turns == 3 and resp.naturalness.weights == "all-MiniLM-L6-v2 (real)"


def test_scene_metrics_over_grpc(stub: metrics_pb2_grpc.MetricsServiceStub, image_dir: Path) -> None:
    """Captions, perception facts and turns that name their photo: every MetricsComputed section is filled."""
    images = refs(image_dir, "img0.png", "img1.png", "img2.png")
    captions = ["the boats rocked in the harbour at dawn.", "gulls circled over the fishing nets.",
                "an old stone church stood on the hill."]
    for ref, caption in zip(images, captions, strict=True):
        ref.caption = caption
    images[0].perception.objects.add(label="boat", score=0.9)
    turns = [common_pb2.Turn(speaker="Alex", text="The boats were rocking in the harbour when we arrived at dawn.",
                             image_refs=[0]),
             common_pb2.Turn(speaker="Sam", text="And gulls circled over the fishing nets, looking for breakfast.",
                             image_refs=[1]),
             common_pb2.Turn(speaker="Alex", text="Then we climbed to the old stone church on the hill with a dog.",
                             image_refs=[2])]
    generated = _generated(image_dir, "grpc-scenes", images=images, dialogue=common_pb2.Dialogue(turns=turns))
    prompt = "Talk about these scenes. The boats were rocking in the harbour when we arrived at dawn."
    resp = stub.Score(metrics_pb2.ScoreRequest(generated=generated, prompt=prompt), timeout=120).result
    a = resp.aligned_grounding
    assert a.scenes == 3 and a.aligned > a.shuffled and a.margin > 0.1 and a.coverage == 1.0
    assert (a.retrieval_hits, a.retrieval_turns) == (3, 3)
    h = resp.hallucination
    # boat: detected and captioned; church: in its own photo's caption; dog: nowhere
    assert (h.mentions, h.unsupported, list(h.unsupported_terms)) == (3, 1, ["dog"])
    assert (h.photos_with_perception, h.photos_with_caption) == (1, 3)
    assert resp.format.echo and "echoes the prompt" in resp.format.reasons[-1]


@pytest.mark.parametrize(
    ("dialogue", "images", "reason"),
    [
        (common_pb2.Dialogue(text="  \n "), ["img0.png"], "empty dialogue"),
        (common_pb2.Dialogue(text="x" * (10 * 1024 * 1024 + 1)), ["img0.png"], "over the 10485760-byte limit"),
        (common_pb2.Dialogue(text=DIALOGUE), [], "no images"),
        (common_pb2.Dialogue(text=DIALOGUE), ["img0.png"] * 500, "500 images, over the limit of 8"),
        (common_pb2.Dialogue(text=DIALOGUE), ["img0.png", "missing.png"], "image 1: image not found"),
        (common_pb2.Dialogue(text=DIALOGUE), ["corrupt.png"], "corrupt|cannot be decoded"),
    ],
    ids=["empty", "10MB", "no-images", "500-images", "missing-image", "corrupt-image"],
)
def test_bad_input_is_invalid_argument(stub: metrics_pb2_grpc.MetricsServiceStub, image_dir: Path,
                                       dialogue: common_pb2.Dialogue, images: list[str], reason: str) -> None:
    req = metrics_pb2.ScoreRequest(generated=events_pb2.DialogueGenerated(dialogue=dialogue,
                                                                          images=refs(image_dir, *images)))
    with pytest.raises(grpc.RpcError) as err:
        stub.Score(req, timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert re.search(reason, err.value.details()), err.value.details()


def test_image_outside_the_roots_is_refused(stub: metrics_pb2_grpc.MetricsServiceStub) -> None:
    req = metrics_pb2.ScoreRequest(generated=events_pb2.DialogueGenerated(
        dialogue=common_pb2.Dialogue(text=DIALOGUE), images=[common_pb2.ImageRef(uri="file:///etc/hostname")]))
    with pytest.raises(grpc.RpcError) as err:
        stub.Score(req, timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "outside" in err.value.details()


def _generated(image_dir: Path, set_id: str, **kw: object) -> events_pb2.DialogueGenerated:
    base: dict[str, object] = dict(image_set_id=set_id, correlation_id=f"c-{set_id}", status=common_pb2.STATUS_OK,
                                   dialogue=common_pb2.Dialogue(text=DIALOGUE),
                                   images=refs(image_dir, "img0.png", "img1.png"), system="tiny-test",
                                   model="tiny", adapter_id="a@1", labels={"run": "t"})
    base.update(kw)
    return events_pb2.DialogueGenerated(**base)


def test_kafka_flow_with_failed_and_bad_events(service: ServiceHandle, module_kafka: KafkaSettings,
                                               image_dir: Path) -> None:
    from prometheus_client import REGISTRY

    def failed_count() -> float:
        return REGISTRY.get_sample_value("vispod_metrics_failed_dialogues_total", {"system": "tiny-test"}) or 0.0

    before = failed_count()
    pub = EventPublisher(module_kafka, "test")
    try:
        pub.publish(Topic.DIALOGUE_GENERATED, _generated(image_dir, "failed", status=common_pb2.STATUS_FAILED,
                                                         error="backend down", dialogue=common_pb2.Dialogue()))
        pub.publish(Topic.DIALOGUE_GENERATED, _generated(image_dir, "empty", dialogue=common_pb2.Dialogue()))
        pub.publish(Topic.DIALOGUE_GENERATED, _generated(image_dir, "too-many",
                                                         images=refs(image_dir, *["img0.png"] * 500)))
        pub.send_raw(topic_name(Topic.DIALOGUE_GENERATED, module_kafka.topic_prefix), b"\x00garbage", [])
        pub.publish(Topic.DIALOGUE_GENERATED, _generated(image_dir, "good"))
        pub.publish(Topic.DIALOGUE_GENERATED, _generated(
            image_dir, "half", images=refs(image_dir, "img2.png", "missing.png", "corrupt.png"), system="another",
            dialogue=common_pb2.Dialogue(turns=[common_pb2.Turn(speaker="Alex", text="Look at the harbour."),
                                                common_pb2.Turn(speaker="Sam", text="Can you see the ferry?")])))
    finally:
        pub.close()

    computed = read_events(module_kafka, [Topic.METRICS_COMPUTED], 2, timeout=90)
    by_set = {env.message.image_set_id: env.message for env in computed}
    assert set(by_set) == {"good", "half"}
    good = by_set["good"]
    assert (good.correlation_id, good.system, good.adapter_id, good.model) == ("c-good", "tiny-test", "a@1", "tiny")
    assert dict(good.labels) == {"run": "t"}
    assert (good.style.num_turns, good.paper_style.num_turns) == (3, 3)
    assert good.grounding.random_weights and len(good.grounding.per_image_max) == 2
    assert good.computed_at.seconds > 0
    half = by_set["half"]
    assert (half.style.num_turns, half.style.num_speakers, half.style.question_rate) == (2, 2, 0.5)
    assert len(half.grounding.per_image_max) == 1  # missing and corrupt images became warnings, not failures
    assert any("image 1 skipped" in w for w in half.warnings)
    assert any("image 2 skipped" in w and "corrupt" in w for w in half.warnings)
    # "half" came after "good": good's images served as distractors
    assert half.grounding.retrieval_accuracy_distractors in (0.0, 1.0)

    letters = read_events(module_kafka, [dlq_topic("metrics", module_kafka.topic_prefix)], 3, timeout=60)
    errors = sorted(env.message.error for env in letters)
    assert len(errors) == 3
    assert any("empty dialogue" in e for e in errors)
    assert any("500 images" in e for e in errors)
    assert failed_count() == before + 1

    with urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    assert 'vispod_metrics_clipscore_score_count{system="tiny-test",weights="random"}' in text
    assert 'vispod_metrics_avg_turn_length_words_count{system="another"}' in text
    assert "vispod_metrics_images_embedded_total" in text and "vispod_metrics_image_cache_hits_total" in text
    assert 'vispod_metrics_scoring_seconds_count{path="kafka",stage="total"}' in text
    # instruments derived from the proto descriptors: a histogram per number, a counter per flag
    assert 'vispod_metrics_naturalness_novelty_ratio_count{system="tiny-test"}' in text
    assert 'vispod_metrics_format_too_few_turns_total{system="tiny-test"}' in text


def test_system_label_is_bounded() -> None:
    labels = BoundedLabels(2)
    assert [labels(s) for s in ["a", "b", "c", "a", "", "d"]] == ["a", "b", OTHER, "a", "unknown", OTHER]


def test_settings_refuse_to_run_grounding_without_weights(tmp_path: Path) -> None:
    from vispod.common.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="VISPOD_METRICS_CLIP_WEIGHTS"):
        load_settings(MetricsSettings, clip_weights=None, clip_random_init=False)
    with pytest.raises(SettingsError, match="no such file"):
        load_settings(MetricsSettings, clip_weights=tmp_path / "nope.pt")
    assert load_settings(MetricsSettings, grounding_enabled=False).clip_weights is None


def test_python_m_vispod_metrics_starts_and_stops(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "VISPOD_METRICS_GROUNDING_ENABLED": "false", "VISPOD_METRICS_CONSUME": "false",
           "VISPOD_METRICS_GRPC_PORT": "0", "VISPOD_METRICS_METRICS_PORT": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "vispod.metrics"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any(line.startswith("metrics: grpc 127.0.0.1:") for line in lines):  # after JSON log lines
            line = proc.stdout.readline()
            assert line and len(lines) < 50, (lines, proc.poll())
            lines.append(line)
        # run_service prints the ready line just before it installs its SIGTERM handler: give it a moment
        time.sleep(2)
        proc.terminate()
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
    bad = subprocess.run([sys.executable, "-m", "vispod.metrics"], env={"PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "VISPOD_METRICS_CLIP_WEIGHTS" in bad.stderr

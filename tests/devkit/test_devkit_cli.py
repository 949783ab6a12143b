"""The `vispod` command: every package's commands, example story, submit, and `vispod up` as a real process tree."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path

from vispod_cli import VISPOD, lines_until_ready

from vispod.common.bus import EventReader
from vispod.common.settings import KafkaSettings
from vispod.common.topics import Topic
from vispod.devkit.demo import pick_story
from vispod.devkit.example_story import write_example_story


def test_every_package_registers_its_commands() -> None:
    """Runtime, services, dataset builder and developer kit each add their commands to the one `vispod`."""
    out = subprocess.run([*VISPOD, "--help"], capture_output=True, text=True, timeout=120, check=True).stdout
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("    ") and line.split()}
    assert {"topics", "dlq",                                              # the runtime
            "dataset",                                                    # the dataset builder
            "kafka", "example", "up", "submit", "demo", "generate", "mini-paper",  # the developer kit
            "eval", "gate", "judge", "metrics", "synth", "train", "speak"} <= listed, out


def test_example_story_has_five_real_photos_with_captions(tmp_path: Path) -> None:
    story = write_example_story(tmp_path / "story")
    meta = json.loads((story / "story.json").read_text())
    assert [i["position"] for i in meta["images"]] == [1, 2, 3, 4, 5]
    assert all((story / i["file"]).stat().st_size > 5_000 and i["vist_caption"] for i in meta["images"])
    assert meta["images"][0]["source"] == "skimage.data.astronaut"


def test_submit_publishes_the_story_in_order(kafka: KafkaSettings, tmp_path: Path) -> None:
    story = write_example_story(tmp_path / "story")
    env = {**os.environ, "VISPOD_KAFKA_BOOTSTRAP": kafka.bootstrap, "VISPOD_KAFKA_TOPIC_PREFIX": kafka.topic_prefix}
    out = subprocess.run([*VISPOD, "submit", str(story), "--speaker", "Alex:host", "--speaker", "Sam",
                          "--target-words", "600", "--no-wait"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "submitted story-example-space-day (5 images)" in out.stdout
    [env_] = EventReader(kafka, [Topic.IMAGESET_SUBMITTED]).read(1, timeout=30)
    msg = env_.message
    assert [s.name for s in msg.speakers] == ["Alex", "Sam"] and msg.speakers[0].persona == "host"
    assert msg.target_words == 600 and msg.correlation_id
    first = msg.images[0]
    assert first.uri == (story / "image_1.jpg").as_uri() and first.caption.startswith("the astronaut")
    assert first.sha256 == hashlib.sha256((story / "image_1.jpg").read_bytes()).hexdigest()


def test_submit_refuses_a_folder_without_images(tmp_path: Path) -> None:
    out = subprocess.run([*VISPOD, "submit", str(tmp_path), "--bootstrap", "127.0.0.1:1", "--no-wait"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "no images found" in out.stderr


def test_up_prints_endpoints_and_stops_cleanly_on_sigterm(kafka: KafkaSettings, tmp_path: Path) -> None:
    env = {**os.environ, "VISPOD_KAFKA_BOOTSTRAP": kafka.bootstrap, "VISPOD_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
           "VISPOD_METRICS_GROUNDING_ENABLED": "false", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([*VISPOD, "up", "--services", "metrics", "--workdir", str(tmp_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = lines_until_ready(proc, 180)
    assert f"kafka: {kafka.bootstrap}\n" in lines, lines
    assert any(line.startswith("metrics: grpc 127.0.0.1:") for line in lines), lines
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert "stopped" in rest
    assert "service started" in (tmp_path / "metrics.log").read_text()
    assert '"msg": "stopped"' in (tmp_path / "metrics.log").read_text()


def test_describe_says_what_the_model_saw() -> None:
    from vispod.common.events import Envelope
    from vispod.devkit.submit import describe
    from vispod.v1 import common_pb2, events_pb2

    msg = events_pb2.DialogueGenerated(
        status=common_pb2.STATUS_OK, model="smollm2", backend="local", input_mode=events_pb2.INPUT_MODE_CAPTIONS,
        dialogue=common_pb2.Dialogue(turns=[common_pb2.Turn(speaker="Alex", text="Look at that fair!")]))
    text = describe(Envelope("id", msg.DESCRIPTOR.full_name, "s", "t", msg))
    assert "[STATUS_OK]" in text and "Alex: Look at that fair!" in text
    assert "captions, not their pixels" in text
    failed = events_pb2.DialogueGenerated(status=common_pb2.STATUS_FAILED, error="one speaker only",
                                          random_weights=True)
    text = describe(Envelope("id", failed.DESCRIPTOR.full_name, "s", "t", failed))
    assert "error: one speaker only" in text and "RANDOM weights" in text


def test_plain_up_starts_every_service_on_embedded_defaults_and_submit_gets_a_dialogue(
        kafka: KafkaSettings, tmp_path: Path) -> None:
    """`vispod up` as the README gives it: no model settings at all. The generator runs SmolLM2 in llama.cpp."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VISPOD_GENERATOR_", "VISPOD_SYNTH_",
                                                                    "VISPOD_JUDGE_", "VISPOD_METRICS_"))}
    env.update(VISPOD_KAFKA_BOOTSTRAP=kafka.bootstrap, VISPOD_KAFKA_TOPIC_PREFIX=kafka.topic_prefix,
               PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([*VISPOD, "up", "--workdir", str(tmp_path / "up")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        lines = lines_until_ready(proc, 300)
        assert lines and lines[-1].startswith("ready"), "".join(lines)
        for name in ("synth", "generator", "metrics", "judge", "voice", "gate"):
            assert any(line.startswith(f"{name}: grpc 127.0.0.1:") for line in lines), (name, lines)
        story = write_example_story(tmp_path / "story")
        out = subprocess.run([*VISPOD, "submit", str(story), "--target-words", "200", "--timeout", "300"], env=env,
                             capture_output=True, text=True, timeout=400)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "DialogueGenerated [STATUS_OK]" in out.stdout and "backend=llamacpp" in out.stdout, out.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)


def test_the_demo_finds_the_vist_set_the_datasets_setting_names_at_run_time(tmp_path: Path, monkeypatch) -> None:
    """The CLI sets VISPOD_DATASETS_ROOT after the demo module is imported: a fresh clone's `make demo` once fell
    back to the example story beside a present shared/datasets."""
    story = write_example_story(tmp_path / "datasets" / "vist-podcast-50" / "story_1")
    doc = json.loads((story / "story.json").read_text())
    (story / "story.json").write_text(json.dumps(doc | {"complete": True}))  # as the VIST set marks its stories
    monkeypatch.setenv("VISPOD_DATASETS_ROOT", str(tmp_path / "datasets"))
    folder, what = pick_story(None, tmp_path / "out")
    assert folder == story.resolve() and what.startswith("VIST story")

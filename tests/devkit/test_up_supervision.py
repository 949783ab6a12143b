"""`vispod up` on the real broker: the generator SIGKILLed in the middle of a load of image sets is back within 30 s,
and every accepted image set gets exactly one dialogue (exactly-once delivery across the restart)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from PIL import Image
from service_fixtures import HttpServer, JsonHandler
from vispod_cli import VISPOD, lines_until_ready

from vispod.common.bus import EventPublisher, EventReader
from vispod.common.settings import KafkaSettings
from vispod.common.topics import Topic
from vispod.v1 import common_pb2, events_pb2

SETS = 6
DIALOGUE = ("Speaker 1: Welcome back, today we walked along the beach.\n\n"
            "Speaker 2: The waves were huge, and the kids built a castle.\n\n"
            "Speaker 1: Then the sun went down over the hills.\n")


class _Engine(JsonHandler):
    """An OpenAI-compatible engine that takes 0.5 s per answer, so the image sets queue up."""

    def do_POST(self) -> None:
        body = self.read_json()
        time.sleep(0.5)
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": int(time.time()), "model": body["model"],
                 "choices": [{"index": 0, "delta": {"role": "assistant", "content": DIALOGUE},
                              "finish_reason": "stop"}]}
        self.send(200, f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode(), "text/event-stream")


def _image_set(story: Path, i: int) -> events_pb2.ImageSetSubmitted:
    images = [common_pb2.ImageRef(uri=(story / f"{k}.png").as_uri(), caption=f"photo {k} of the beach",
                                  mime_type="image/png") for k in range(2)]
    return events_pb2.ImageSetSubmitted(image_set_id=f"set-{i}", tenant="t", images=images, seed=i,
                                        correlation_id=f"c-{i}")


def test_a_killed_generator_is_back_within_30_s_and_every_image_set_gets_one_dialogue(
        kafka: KafkaSettings, tmp_path: Path) -> None:
    story = tmp_path / "story"
    story.mkdir()
    for k in range(2):
        Image.new("RGB", (32, 24), (90 * k, 120, 200)).save(story / f"{k}.png")
    engine = HttpServer(_Engine, poll_interval=0.05)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISPOD_GENERATOR_")}
    env.update(VISPOD_KAFKA_BOOTSTRAP=kafka.bootstrap, VISPOD_KAFKA_TOPIC_PREFIX=kafka.topic_prefix,
               VISPOD_GENERATOR_BACKEND="openai", VISPOD_GENERATOR_OPENAI_URL=engine.url,
               PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([*VISPOD, "up", "--services", "generator", "--workdir", str(tmp_path / "up"),
                             "--image-root", str(story), "--restart-backoff", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    publisher = EventPublisher(kafka, "test")
    dialogues = EventReader(kafka, [Topic.DIALOGUE_GENERATED])
    try:
        lines = lines_until_ready(proc, 180)
        assert lines and lines[-1].startswith("ready"), "".join(lines)
        pid = int(re.search(r"^generator: grpc .*\(pid (\d+),", "".join(lines), re.M).group(1))
        later: list[str] = []
        threading.Thread(target=lambda: later.extend(iter(proc.stdout.readline, "")), daemon=True).start()

        for i in range(SETS):
            publisher.publish(Topic.IMAGESET_SUBMITTED, _image_set(story, i))
        got = dialogues.read(1, timeout=60)
        assert got, "no dialogue before the kill"
        os.kill(pid, signal.SIGKILL)  # the other image sets are queued or in flight
        killed_at = time.monotonic()
        while not any(line.startswith("generator: ready again") for line in later):
            assert time.monotonic() - killed_at < 30, f"not back within 30 s: {later}"
            time.sleep(0.2)
        assert any(line.startswith("generator was killed by SIGKILL; restarting it in 1 s") for line in later), later

        got += dialogues.read(SETS - 1, timeout=90)
        got += dialogues.read(SETS, timeout=2)  # anything more would be a duplicate
        per_set = Counter(e.message.image_set_id for e in got)
        assert per_set == {f"set-{i}": 1 for i in range(SETS)}
        assert all(e.message.dialogue.turns and not e.message.error for e in got), [e.message.error for e in got]
    finally:
        publisher.close()
        dialogues.close()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        engine.stop()

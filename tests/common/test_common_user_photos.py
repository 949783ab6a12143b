"""A user's own photo folder, anywhere on disk, is readable by the services of a running `vispod up`."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from vispod.common.bus import EventReader
from vispod.common.images import ImageFetcher
from vispod.common.settings import ImageAccessSettings, KafkaSettings
from vispod.common.topics import Topic

VISPOD = [sys.executable, "-m", "vispod.common.cli"]


def _service_image_settings(up_pid: int) -> ImageAccessSettings:
    """The image settings a service process of that `vispod up` was started with (read from its environment)."""
    children = Path(f"/proc/{up_pid}/task/{up_pid}/children").read_text().split()
    assert children, "vispod up started no service"
    environ = Path(f"/proc/{children[0]}/environ").read_bytes().split(b"\0")
    env = dict(kv.decode().split("=", 1) for kv in environ if b"=" in kv)
    return ImageAccessSettings(file_roots=json.loads(env["VISPOD_IMAGES_FILE_ROOTS"]))


def test_submit_stages_a_users_photos_where_the_services_may_read_them(kafka: KafkaSettings, tmp_path: Path) -> None:
    photos = tmp_path / "holiday photos"  # the user's own folder: under no configured root
    photos.mkdir()
    for i, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)], 1):
        buf = io.BytesIO()
        Image.new("RGB", (40, 30), colour).save(buf, "JPEG")
        (photos / f"IMG_{i:04d}.jpg").write_bytes(buf.getvalue())
    env = {**os.environ, "VISPOD_KAFKA_BOOTSTRAP": kafka.bootstrap, "VISPOD_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
           "VISPOD_METRICS_GROUNDING_ENABLED": "false", "PYTHONUNBUFFERED": "1"}
    up = subprocess.Popen([*VISPOD, "up", "--services", "metrics", "--workdir", str(tmp_path / "up")], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert up.stdout is not None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not (up.stdout.readline() or "ready").startswith("ready"):
            pass
        service_images = _service_image_settings(up.pid)
        assert not any(photos.is_relative_to(r) for r in service_images.file_roots)

        out = subprocess.run([*VISPOD, "submit", str(photos), "--no-wait"], env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        [submitted] = EventReader(kafka, [Topic.IMAGESET_SUBMITTED]).read(1, timeout=30)
        refs = submitted.message.images
        assert len(refs) == 3
        fetcher = ImageFetcher(service_images)
        for i, ref in enumerate(refs, 1):  # what the generator and metrics services do with each photo
            data = fetcher.fetch(ref.uri, ref.sha256)
            assert data == (photos / f"IMG_{i:04d}.jpg").read_bytes()
            assert hashlib.sha256(data).hexdigest() == ref.sha256
    finally:
        up.send_signal(signal.SIGTERM)
        up.communicate(timeout=60)

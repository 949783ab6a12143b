"""Shared helpers of the generator tests: image stories, events, settings, and a scripted HTTP engine that
speaks the OpenAI / TGI chat-completions API (SSE streaming, 429/503/400). Fixtures live in conftest.py."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from service_fixtures import JsonHandler

from vispod.common.settings import ImageAccessSettings, KafkaSettings
from vispod.generator.settings import GeneratorSettings
from vispod.v1 import common_pb2, events_pb2

CAPTIONS = [
    "we drove to the beach and the waves were huge.",
    "the kids built a sand castle near the water.",
    "a dog ran across the park chasing a ball.",
    "grandma brought a birthday cake with candles.",
    "the sunset over the mountain ended the day.",
]
GOOD_DIALOGUE = (
    "Speaker 1: Welcome back! Today we went to the beach, and the waves were huge.\n\n"
    "Speaker 2: Huge waves! Did the kids build a sand castle near the water?\n\n"
    "Speaker 1: They did. Then a dog ran across the park chasing a ball.\n\n"
    "Speaker 2: And grandma had a birthday cake with candles, right?\n\n"
    "Speaker 1: Yes, and the sunset over the mountain ended the day.\n"
)


def image_settings(root: Path) -> ImageAccessSettings:
    return ImageAccessSettings(file_roots=[root], max_images=32)


def make_event(story: Path, n: int = 5, set_id: str = "set-1", speakers: list[tuple[str, str]] | None = None,
               **kw) -> events_pb2.ImageSetSubmitted:
    images = [common_pb2.ImageRef(uri=(story / f"image_{i % 5 + 1}.png").as_uri(), caption=CAPTIONS[i % 5],
                                  mime_type="image/png") for i in range(n)]
    spk = [common_pb2.Speaker(name=a, persona=b) for a, b in (speakers or [])]
    return events_pb2.ImageSetSubmitted(image_set_id=set_id, tenant="t", images=images, speakers=spk,
                                        correlation_id=f"c-{set_id}", seed=7, **kw)


def generator_settings(story: Path, kafka: KafkaSettings | None = None, **kw) -> GeneratorSettings:
    base = dict(images=image_settings(story), grpc_port=0, metrics_port=0, max_new_tokens=24,
                adapter_state_dir=story.parent / "state", adapter_cache_dir=story.parent / "cache",
                backoff_base_s=0.01, backoff_max_s=0.5)
    if kafka is not None:
        base["kafka"] = kafka
    base.update(kw)
    return GeneratorSettings(**base)


# --- a scripted engine -------------------------------------------------------------------------
@dataclass
class Reply:
    """One scripted answer: an HTTP status, or a text streamed in small SSE chunks."""

    text: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"
    body: str = ""
    delay_s: float = 0.0  # between streamed pieces: a slow engine


@dataclass
class ScriptedEngine:
    url: str
    replies: list[Reply]
    requests: list[dict] = field(default_factory=list)
    request_times: list[float] = field(default_factory=list)
    loaded: list[dict] = field(default_factory=list)
    default: Reply | None = None
    pieces_sent: int = 0
    disconnected: bool = False  # a client closed the stream mid-answer

    def next_reply(self) -> Reply:
        if self.replies:
            return self.replies.pop(0)
        return self.default or Reply(GOOD_DIALOGUE)


def handler_for(engine: ScriptedEngine) -> type[JsonHandler]:
    class Handler(JsonHandler):
        def do_POST(self) -> None:
            body = self.read_json()
            if self.path == "/v1/load_lora_adapter":
                engine.loaded.append(body)
                self.send(200, {"status": "ok"})
                return
            if self.path != "/v1/chat/completions":
                self.send(404, {"error": "not found"})
                return
            engine.requests.append(body)
            engine.request_times.append(time.monotonic())
            reply = engine.next_reply()
            if reply.status != 200:
                self.send(reply.status, {"error": reply.body or f"scripted {reply.status}"}, headers=reply.headers)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            pieces = [reply.text[i:i + 17] for i in range(0, len(reply.text), 17)]
            created = int(time.time())
            for i, piece in enumerate(pieces):
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                last = i == len(pieces) - 1
                event = {"id": "x", "object": "chat.completion.chunk", "created": created, "model": body["model"],
                         "system_fingerprint": "scripted",
                         "choices": [{"index": 0, "delta": {"role": "assistant", "content": piece},
                                      "logprobs": None, "finish_reason": reply.finish_reason if last else None}]}
                if not self._chunk(f"data: {json.dumps(event)}\n\n"):
                    engine.disconnected = True
                    return
                engine.pieces_sent += 1
            usage = {"id": "x", "object": "chat.completion.chunk", "created": created, "model": body["model"],
                     "system_fingerprint": "scripted", "choices": [],
                     "usage": {"prompt_tokens": 100, "completion_tokens": len(pieces),
                               "total_tokens": 100 + len(pieces)}}
            self._chunk(f"data: {json.dumps(usage)}\n\n")
            self._chunk("data: [DONE]\n\n")
            self._chunk("")

        def _chunk(self, text: str) -> bool:
            data = text.encode()
            try:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return False
            return True

    return Handler



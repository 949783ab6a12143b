"""TGI and OpenAI-compatible (vLLM) backends, both plain httpx, against a local scripted engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from gen_helpers import GOOD_DIALOGUE, Reply, generator_settings, make_event

from vispod.common.http_retry import RetryPolicy, parse_retry_after
from vispod.generator.adapters import AdapterUnavailable, AdapterVersion
from vispod.generator.backends.base import BackendError, BackendUnavailable, GenerationInput
from vispod.generator.backends.openai import OpenAIBackend
from vispod.generator.backends.tgi import TGIBackend
from vispod.generator.engine import Generator
from vispod.v1 import common_pb2

FAST = RetryPolicy(max_retries=3, backoff_base_s=0.01, backoff_max_s=2.0)
ADAPTER = AdapterVersion("story@3", Path("/adapters/story@3"), "qwen2.5-vl")


def _inp(**kw) -> GenerationInput:
    return GenerationInput(system="sys", user="write", image_bytes=[(b"\x89PNG", "image/png")], **kw)


@pytest.mark.parametrize("kind", ["openai", "tgi"])
def test_streams_text_usage_and_finish_reason(engine, kind) -> None:
    backend = (OpenAIBackend(engine.url, "base", retry=FAST) if kind == "openai"
               else TGIBackend(engine.url, ["story@3"], retry=FAST))
    s = backend.stream(_inp(adapter=ADAPTER, max_new_tokens=50, seed=3))
    chunks = list(s)
    assert len(chunks) > 3 and "".join(chunks) == GOOD_DIALOGUE
    assert s.finish_reason == "stop" and s.prompt_tokens == 100 and s.completion_tokens == len(chunks)
    req = engine.requests[0]
    assert req["model"] == "story@3" and req["max_tokens"] == 50 and req["seed"] == 3 and req["stream"] is True
    assert req["messages"][1]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")


@pytest.mark.parametrize("kind", ["openai", "tgi"])
def test_text_only_user_content_is_a_plain_string(engine, kind) -> None:
    """Text models' chat templates (llama.cpp's server renders the GGUF's Jinja) take `content` as a string."""
    backend = (OpenAIBackend(engine.url, "base", text_only=True, retry=FAST) if kind == "openai"
               else TGIBackend(engine.url, [], text_only=True, retry=FAST))
    assert "".join(backend.stream(_inp())) == GOOD_DIALOGUE
    assert engine.requests[0]["messages"] == [{"role": "system", "content": "sys"},
                                              {"role": "user", "content": "write"}]


@pytest.mark.parametrize("kind", ["openai", "tgi"])
def test_a_stream_ending_without_finish_reason_is_an_error_not_empty_text(engine, kind) -> None:
    """An engine that fails after its 200 (the stream just ends) is a failed request, never a complete answer."""
    backend = (OpenAIBackend(engine.url, "base", retry=FAST) if kind == "openai"
               else TGIBackend(engine.url, [], retry=FAST))
    engine.replies = [Reply("")]
    with pytest.raises(BackendError, match="without a finish reason"):
        list(backend.stream(_inp()))


@pytest.mark.parametrize("kind", ["openai", "tgi"])
def test_429_retry_after_is_honoured_and_503_backs_off(engine, kind) -> None:
    engine.replies = [Reply(status=429, headers={"Retry-After": "1"}), Reply(status=503), Reply(GOOD_DIALOGUE)]
    backend = (OpenAIBackend(engine.url, "base", retry=FAST) if kind == "openai"
               else TGIBackend(engine.url, [], retry=FAST))
    assert "".join(backend.stream(_inp())) == GOOD_DIALOGUE
    t = engine.request_times
    assert len(t) == 3 and t[1] - t[0] >= 0.95 and t[2] - t[1] < 0.9


@pytest.mark.parametrize("kind", ["openai", "tgi"])
def test_overload_after_retries_is_unavailable_and_400_is_permanent(engine, kind) -> None:
    backend = (OpenAIBackend(engine.url, "base", retry=RetryPolicy(1, 0.01, 0.05)) if kind == "openai"
               else TGIBackend(engine.url, [], retry=RetryPolicy(1, 0.01, 0.05)))
    engine.replies = [Reply(status=503), Reply(status=503)]
    with pytest.raises(BackendUnavailable, match="503"):
        backend.stream(_inp())
    engine.replies = [Reply(status=400, body="bad input")]
    with pytest.raises(BackendError, match="400"):
        backend.stream(_inp())
    assert len(engine.requests) == 3  # 400 is not retried


def test_unreachable_engine_is_unavailable() -> None:
    backend = OpenAIBackend("http://127.0.0.1:9", "base", retry=RetryPolicy(1, 0.01, 0.05), connect_timeout_s=1)
    with pytest.raises(BackendUnavailable):
        backend.stream(_inp())


def test_openai_loads_new_adapters_at_run_time(engine) -> None:
    backend = OpenAIBackend(engine.url, "base", retry=FAST)
    backend.on_adapter_loaded(ADAPTER)     # the registry's hook after verification
    assert engine.loaded == [{"lora_name": "story@3", "lora_path": "/adapters/story@3"}]
    list(backend.stream(_inp(adapter=ADAPTER)))
    assert len(engine.loaded) == 1  # already loaded: not again
    other = AdapterVersion("story@4", Path("/adapters/story@4"), "b")
    list(backend.stream(_inp(adapter=other)))
    assert engine.loaded[-1]["lora_name"] == "story@4" and engine.requests[-1]["model"] == "story@4"


def test_tgi_refuses_adapters_it_was_not_started_with(engine, story_dir) -> None:
    backend = TGIBackend(engine.url, ["story@3"], retry=FAST)
    assert backend.servable("story@3") and not backend.servable("story@4")
    with pytest.raises(AdapterUnavailable, match="not started with adapter story@4"):
        backend.stream(_inp(adapter=AdapterVersion("story@4", Path("/x"), "b")))
    assert engine.requests == []

    class OneAdapter:  # a registry that knows story@4 (TGI does not)
        def resolve(self, requested, routing_key):
            return AdapterVersion("story@4", Path("/x"), "b")

    s = generator_settings(story_dir, backend="tgi", tgi_url=engine.url, tgi_adapters=["story@3"])
    r = Generator(s, backend, OneAdapter()).generate(make_event(story_dir))
    assert r.status == common_pb2.STATUS_FAILED and "adapter unavailable" in r.error and r.adapter_id == "story@4"
    assert engine.requests == []  # never silently served by the base model


def test_retry_after_forms() -> None:
    assert parse_retry_after("3") == 3.0 and parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.0 + 1e-9


def test_tgi_is_called_while_hf_hub_offline_is_set(engine, monkeypatch) -> None:
    """Every image sets HF_HUB_OFFLINE=1 (no Hub downloads); a call to TGI is not a Hub call and must go through
    (huggingface_hub's InferenceClient refused it: the cluster's dialogues through TGI all failed)."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)  # as read at import in a process started with it
    backend = TGIBackend(engine.url, ["story@3"], retry=FAST)
    s = backend.stream(_inp(adapter=ADAPTER))
    assert "".join(s) == GOOD_DIALOGUE and s.finish_reason == "stop"
    assert engine.requests[0]["model"] == "story@3"

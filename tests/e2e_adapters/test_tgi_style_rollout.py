"""TGI's way, on a real server: adapters fixed at start-up, so a new adapter is a rollout of llama.cpp's OpenAI
server restarted with `--lora_path`. The generator's TGI backend keeps routing to the previous adapter until the
new server answers; a tampered version and a store outage never take the serving adapter away."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from conftest import overwrite, publish_version, record, store_settings, variant
from llama_server import LlamaServerRollout

from vispod.common.adapter_store.store import blob_key
from vispod.common.embedded_models import resolve_gguf
from vispod.common.http_retry import RetryPolicy
from vispod.devkit.local_s3 import start_s3
from vispod.generator.adapters import AdapterUnavailable, AdapterVersion
from vispod.generator.backends.base import GenerationInput
from vispod.generator.backends.openai import OpenAIBackend
from vispod.generator.backends.tgi import TGIBackend

FAST = RetryPolicy(max_retries=1, backoff_base_s=0.01, backoff_max_s=0.1)


def version(adapter_id: str) -> AdapterVersion:
    return AdapterVersion(adapter_id, Path("/generator-pod/cache") / adapter_id, "smollm2")


def ask(backend: TGIBackend | OpenAIBackend, adapter_id: str) -> str:
    inp = GenerationInput(system="You write podcasts.", user="Scenes: a beach at sunset.", max_new_tokens=8,
                          temperature=0.0, adapter=version(adapter_id))
    stream = backend.stream(inp)
    chunks = list(stream)  # llama.cpp's server streams one token per chunk (and reports no usage when streaming)
    assert stream.finish_reason in ("stop", "length") and "".join(chunks).strip(), chunks
    TOKENS.append(len(chunks))
    return "".join(chunks)


TOKENS: list[int] = []  # streamed chunks per answer


# The empty answers measured before (2026-12-01) were llama.cpp's server failing after its 200: the GGUF's chat
# template concatenates `content` as a string and the backends sent a list of parts; text-only content is now a
# string, and a stream that ends without a finish reason is an error, never an empty answer.
def test_tgi_style_rollout_on_a_real_llama_cpp_server(published, keys, keyring, own_s3, tmp_path: Path) -> None:
    outcome = published[0]
    env = store_settings(own_s3, keys, f"tgi-{uuid.uuid4().hex[:6]}")
    store, signer = env.open(), env.signer()
    rollout = LlamaServerRollout(store, keyring, resolve_gguf("smollm2"), tmp_path / "volume", tmp_path / "gguf",
                                 retry_s=0.5)
    backend = TGIBackend("", [], text_only=True, retry=FAST, rollout=rollout)
    try:
        publish_version(store, signer, outcome, "1")
        backend.hold(("podcast@1",))  # the registry's held set: the new candidate
        assert not backend.servable("podcast@1")          # the server is still starting: not routable
        with pytest.raises(AdapterUnavailable):
            ask(backend, "podcast@1")
        rollout.wait()
        assert backend.servable("podcast@1") and ask(backend, "podcast@1")

        # A new version: the old server keeps serving podcast@1 until the new one answers.
        publish_version(store, signer, outcome, "2", variant(outcome.result.adapter_dir, tmp_path / "v2", 2.0))
        backend.hold(("podcast@2",))
        assert backend.servable("podcast@1") and not backend.servable("podcast@2")
        assert ask(backend, "podcast@1")
        rollout.wait()
        assert backend.servable("podcast@2") and ask(backend, "podcast@2")
        # The OpenAI backend on the same server: it routes to what the engine lists (the adapter it started with).
        openai = OpenAIBackend(rollout.base_url, "smollm2", text_only=True, retry=FAST, adapter_loading="sync")
        try:
            assert openai.servable("podcast@2") and not openai.servable("podcast@1")
            assert ask(openai, "podcast@2")
            with pytest.raises(AdapterUnavailable):
                ask(openai, "podcast@1")  # the old adapter left with the old server: never the base model
        finally:
            openai.close()

        # Tampered: the init step rejects it, no server starts, podcast@2 keeps serving.
        event3 = publish_version(store, signer, outcome, "3", variant(outcome.result.adapter_dir, tmp_path / "v3", 3.0))
        overwrite(env, blob_key(event3.file_sha256["adapter_model.safetensors"]), b"\x00" * 64)
        backend.hold(("podcast@3",))
        rollout.wait()
        assert ("podcast@3", "rejected:sha256_mismatch") in rollout.events
        assert rollout.ready() == {"podcast@2"} and ask(backend, "podcast@2")
        assert not (tmp_path / "volume" / "podcast" / "3").exists()

        # An outage during a rollout: delayed, podcast@2 serves meanwhile; after the store is back it completes.
        publish_version(store, signer, outcome, "4", variant(outcome.result.adapter_dir, tmp_path / "v4", 0.5))
        own_s3.stop()
        backend.hold(("podcast@4",))
        for _ in range(60):
            if ("podcast@4", "delayed") in rollout.events:
                break
            rollout._stop.wait(0.5)
        assert ("podcast@4", "delayed") in rollout.events
        assert backend.servable("podcast@2") and ask(backend, "podcast@2")
        start_s3(server=own_s3)
        rollout.wait()
        assert backend.servable("podcast@4") and ask(backend, "podcast@4")
        assert store.versions("podcast") == ["1", "2", "3", "4"]
        record(tgi_style_rollout="ok", llama_server_answers=len(TOKENS), llama_server_tokens=sum(TOKENS),
               rollout_events=[f"{a}:{e}" for a, e in rollout.events])
    finally:
        rollout.close()

"""The adapter-sync settings (env prefix VISPOD_ADAPTERSYNC_; the store's own block is VISPOD_ADAPTER_STORE_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from vispod.common.adapter_store.retention import DEFAULT_CANDIDATE_SLOTS, MAX_CANDIDATE_SLOTS
from vispod.common.adapter_store.settings import AdapterStoreSettings
from vispod.common.settings import ServiceSettings


class AdapterSyncSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VISPOD_ADAPTERSYNC_", env_nested_delimiter="__", extra="ignore")

    service_name: str = "adaptersync"
    consume: bool = False                   # no Kafka: the lifecycle comes from the generator's ListAdapters
    # The shared volume the engine reads adapters from (verified copies only are written there).
    dest: Path = Path("/var/lib/vispod/adapters")
    # vLLM's HTTP address (the same pod) and its API key (vLLM's --api-key, from a Secret; never logged).
    engine_url: str = "http://127.0.0.1:8000"
    engine_api_key: SecretStr | None = None
    # Where the lifecycle is read: the generator's gRPC address (ListAdapters; TLS from VISPOD_GRPC_TLS_*).
    generator_addr: str = "127.0.0.1:8081"
    # Adapter names this engine serves; empty: every name.
    names: list[str] = Field(default_factory=list)
    # Candidates held besides the pinned adapters (vispod.common.adapter_store.retention).
    candidate_slots: int = Field(default=DEFAULT_CANDIDATE_SLOTS, ge=0, le=MAX_CANDIDATE_SLOTS)
    # The content digest of the base the engine serves (vispod.common.base_identity); set, a version whose signed
    # manifest names another base is never loaded.
    base_model_digest: str = ""
    interval_s: float = Field(default=10.0, gt=0)
    rpc_timeout_s: float = Field(default=10.0, gt=0)
    # TGI's init container: fetch and verify the versions named in LORA_ADAPTERS into `dest`, then exit.
    once: bool = False
    lora_adapters: str = Field(default="", validation_alias="LORA_ADAPTERS")
    adapter_store: AdapterStoreSettings = Field(default_factory=AdapterStoreSettings)

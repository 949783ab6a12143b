"""Where the adapter store is and which keys sign and verify it; read from VISPOD_ADAPTER_STORE_* by every user."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from vispod.common.adapter_store.objects import S3Config, open_objects
from vispod.common.adapter_store.store import AdapterStore
from vispod.common.signing import Keyring, Signer


class AdapterStoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VISPOD_ADAPTER_STORE_", extra="ignore")

    # s3://bucket/prefix, file:///path or a path; empty: no store (adapters come as unsigned local folders).
    url: str = ""
    endpoint_url: str | None = None       # an S3-compatible server (S3Proxy, SeaweedFS, Ceph …); None: AWS
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    # Folder of trusted public keys (<identity>.pub): consumers accept manifests signed by "trainer" only.
    keyring_dir: Path | None = None
    # The trainer's private key (a mounted Secret); read once at start, never logged.
    signing_key_file: Path | None = None
    max_bytes: int = Field(default=8 * 1024**3, ge=1)

    def s3_config(self) -> S3Config:
        return S3Config(endpoint_url=self.endpoint_url, region=self.region,
                        access_key_id=self.access_key_id.get_secret_value() if self.access_key_id else None,
                        secret_access_key=(self.secret_access_key.get_secret_value()
                                           if self.secret_access_key else None))

    def open(self) -> AdapterStore:
        if not self.url:
            raise ValueError("VISPOD_ADAPTER_STORE_URL is not set")
        return AdapterStore(open_objects(self.url, self.s3_config()), self.max_bytes)

    def keyring(self) -> Keyring:
        if self.keyring_dir is None:
            raise ValueError("VISPOD_ADAPTER_STORE_KEYRING_DIR is not set: adapters cannot be verified")
        return Keyring.from_dir(self.keyring_dir)

    def signer(self) -> Signer:
        if self.signing_key_file is None:
            raise ValueError("VISPOD_ADAPTER_STORE_SIGNING_KEY_FILE is not set: the trainer cannot sign")
        return Signer.from_file(self.signing_key_file, "trainer")

"""The log redaction measured on a corpus: every secret shape masked (0 leaks), every harmless field and line left
as it was (0 false masks), and secrets in settings typed so that they never render."""

from __future__ import annotations

import json
import logging
import typing

import pytest
from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings

from vispod.common.logging import JsonFormatter, is_secret_name, redact, redact_text

PW = "Hunter2-Corr3ct/H0rse@Battery"  # a password with '/' and '@'
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"
GHP = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
GITHUB_PAT = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
SLACK = "xoxb-2048392-1029384756-Qq8ZkW3x9yTnE4rVb7LmPc2d"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
AKIA = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

# (log line, the secret it carries): each shape a probe found leaking, and those that were fixed before.
LEAKS = [
    (f"DB_PASSWORD={PW}", PW),
    ("SECRET_KEY=django-insecure-8s7d6f5g4h3j", "django-insecure-8s7d6f5g4h3j"),
    ("client_secret=cs-77aa88bb99cc", "cs-77aa88bb99cc"),
    (f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}", AWS_SECRET),
    ("export AWS_ACCESS_KEY_ID=" + AKIA, AKIA),
    ('sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="svc" '
     'password="jaas-Pa55word";', "jaas-Pa55word"),
    ('{"user": "bob", "password": "json-pw-123"}', "json-pw-123"),
    ('{"apiKey": "AbCdEf0123456789"}', "AbCdEf0123456789"),
    ("{'password': 'repr-pw-456', 'user': 'bob'}", "repr-pw-456"),
    (f"id key {AKIA} used", AKIA),
    (f"token was {JWT}", JWT),
    (f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----", PEM_BODY),
    (f"-----BEGIN OPENSSH PRIVATE KEY-----\n{PEM_BODY}\n", PEM_BODY),
    (f"clone with {GHP}", GHP),
    (f"using {GITHUB_PAT}", GITHUB_PAT),
    (f"slack {SLACK} posted", SLACK),
    (f"charge with {STRIPE}", STRIPE),
    ("GET https://maps.example/api?key=q9Zx8Yw7Vu6&size=2", "q9Zx8Yw7Vu6"),
    ("redis://:redis-pw-789@cache:6379/0", "redis-pw-789"),
    (f"postgres://svc:{PW}@db:5432/x", PW),
    ("https://tok3nAsUs3r99@git.example/repo.git", "tok3nAsUs3r99"),
    ("https://bob:hunter2@store.example/v1", "hunter2"),
    ("Authorization: Bearer abc.def.ghi-123", "abc.def.ghi-123"),
    ("Authorization: Basic Ym9iOmh1bnRlcjI=", "Ym9iOmh1bnRlcjI="),
    ("calling gemini with AIzaSyD3x4mpl3K3yW1thEnough_Chars-0123456", "AIzaSyD3x4mpl3K3yW1thEnough_Chars-0123456"),
    ("hf hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ012345", "hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ012345"),
    ("openai sk-proj-aBcDeFgHiJkLmNoPqRsT", "sk-proj-aBcDeFgHiJkLmNoPqRsT"),
    ("X-API-Key: xk-5566778899", "xk-5566778899"),
    ("access_token=at-1122334455 refresh_token=rt-99887766", "at-1122334455"),
    ("access_token=at-1122334455 refresh_token=rt-99887766", "rt-99887766"),
    ("PGPASSWORD=pg-secret-1 psql", "pg-secret-1"),
    ("HF_TOKEN: hf-env-token-2", "hf-env-token-2"),
    ("--password pw-flag-3", "pw-flag-3"),
]

# Field names that hold no secret, and log lines that must come out exactly as they went in.
HARMLESS_NAMES = ["completion_tokens", "prompt_tokens", "max_tokens", "max_new_tokens", "total_tokens", "tokenizer",
                  "tokenizer_path", "token_budget", "tokens_per_second", "num_tokens", "key_file", "signing_key_file",
                  "admin_key_file", "cache_key", "sort_key", "partition_key", "keyframes", "password_file",
                  "secret_name", "adapter_id", "image_set_id", "sha256", "correlation_id", "keys_dir"]
HARMLESS_LINES = [
    "completion_tokens=512 prompt_tokens=1024 tokenizer=smollm2 token_budget=300",
    '{"completion_tokens": 512, "tokenizer": "gpt2", "token_budget": 300, "cache_key": "c0ffee"}',
    "Speaker 1: the hf_ prefix and AIza are words here; see https://example.org/path?q=1",
    "image sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 accepted",
    "adapter 3f2a9c1e-7b4d-4e8a-9f1c-2d3e4f5a6b7c installed from s3://adapters/v3/model.safetensors",
    "kafka: 127.0.0.1:9092 topic vispod.image-sets.v1 partition 0 offset 18446744",
    "fetching https://medium.com/@user/post failed: HTTP 404",
    "ratio 10:30 at 12:45:01; pairs: alpha=1, beta=2; --max-tokens 20 --token-file t.txt",
    "image host 'images.example' resolves to a loopback address (127.0.0.1)",
    "the token budget was spent: 300 tokens; Basic auth is off; a bearer of news",
]


def _formatted(msg: str, *args: object, **extra: object) -> str:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return JsonFormatter("test").format(record)


def test_no_secret_in_the_corpus_leaks() -> None:
    leaks = [(line, secret) for line, secret in LEAKS if secret in redact_text(line)]
    # also as JSON fields and nested values, the other ways a line reaches the log
    leaks += [(line, secret) for line, secret in LEAKS if secret in _formatted("%s", line, detail={"l": [line]})]
    assert not leaks, f"{len(leaks)} of {2 * len(LEAKS)} leak: {leaks[:4]}"


def test_no_harmless_name_or_line_is_masked() -> None:
    assert [n for n in HARMLESS_NAMES if is_secret_name(n)] == []
    masked = [line for line in HARMLESS_LINES if redact_text(line) != line]
    masked += [n for n in HARMLESS_NAMES if redact({n: 12}) != {n: 12} or redact_text(f"{n}=12") != f"{n}=12"]
    masked += [n for n in HARMLESS_NAMES if json.loads(_formatted("m", **{n: 7}))[n] != 7]
    assert masked == []


def test_secret_field_names_are_masked_whatever_their_value() -> None:
    names = ["password", "DB_PASSWORD", "client_secret", "AWS_SECRET_ACCESS_KEY", "apiKey", "api_key", "x-api-key",
             "access_token", "token", "hf_token", "sasl_password", "key", "privateKey", "authorization", "cookie"]
    assert [n for n in names if not is_secret_name(n)] == []
    doc = json.loads(_formatted("m", **{n: "v4lue" for n in names if n.isidentifier()}))
    assert "v4lue" not in json.dumps(doc)


def _secret_named_fields(model: type[BaseModel], seen: set[type]) -> list[tuple[str, object]]:
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        for arg in (ann, *typing.get_args(ann)):
            if isinstance(arg, type) and issubclass(arg, BaseModel) and arg not in seen:
                seen.add(arg)
                out += _secret_named_fields(arg, seen)
        if is_secret_name(name):
            out.append((f"{model.__name__}.{name}", ann))
    return out


def test_every_secret_in_the_settings_is_a_type_that_never_renders() -> None:
    import vispod.common.adapter_store.settings
    import vispod.gate.settings
    import vispod.generator.settings
    import vispod.judge.settings
    import vispod.metrics.settings
    import vispod.synth.settings
    import vispod.trainer.settings
    import vispod.voice.settings  # noqa: F401

    def subclasses(cls: type) -> list[type]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    seen: set[type] = set()
    fields = [f for cls in subclasses(BaseSettings) if cls.__module__.startswith("vispod.")
              for f in _secret_named_fields(cls, seen)]
    assert len(fields) >= 8  # the API keys, the Kafka and S3 secrets
    untyped = [(name, ann) for name, ann in fields if SecretStr not in (ann, *typing.get_args(ann))]
    assert untyped == []


def test_settings_logged_whole_show_no_secret() -> None:
    from vispod.judge.settings import JudgeSettings

    settings = JudgeSettings(openai_api_key="sk-never-logged-0123456789", gemini_api_key="g-key-42")
    line = _formatted("settings %s %r", settings, settings, settings=settings)
    assert "never-logged" not in line and "g-key-42" not in line


@pytest.mark.parametrize("line", [line for line, _ in LEAKS[:3]])
def test_masked_lines_still_say_what_they_were_about(line: str) -> None:
    name = line.split("=", 1)[0]
    assert redact_text(line) == f"{name}=***"

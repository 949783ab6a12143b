"""Structured JSON logs to stdout, from one place; secrets are masked.

Masking works in three layers, surest first:
1. Secrets are typed. Settings hold them as pydantic `SecretStr`, which renders as '**********' in str(), repr()
   and dumps, so a settings object logged whole shows none (tests/common check every secret-named field's type).
2. Fields named like secrets are masked whatever their value: dict keys and `extra` keys at any depth, and
   `name=value`, `name: value`, `"name": "value"`, `name="value"` in text. A name is a secret's when its last
   word (split at `_ - .` and camelCase) is a secret word: password, passwd, passphrase, pwd, pass, secret, token,
   credential(s), authorization, auth, cookie, apikey; or `key` alone or after api, access, secret, private,
   client, signing... So `DB_PASSWORD`, `client_secret`, `AWS_SECRET_ACCESS_KEY`, `apiKey`, `?key=` are masked,
   while `completion_tokens`, `tokenizer`, `token_budget`, `sort_key` and `key_file` are not.
3. Values shaped like secrets wherever they appear: the patterns of detect-secrets' detectors (AWS key ids,
   GitHub, GitLab, Slack, Stripe, OpenAI, PyPI, npm, SendGrid, Twilio, Discord, Telegram, JWTs, ...: a maintained
   list, not ours), plus PEM private-key blocks, `Bearer|Basic|Token …` credentials, the userinfo of URLs
   (`scheme://user:pass@`, `redis://:pw@`, a token as the user) and the provider keys those detectors lack
   (Google `AIza…`, Hugging Face `hf_…`, GitHub `github_pat_…`, Anthropic/OpenAI `sk-…`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from functools import cache

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.plugins.base import RegexBasedDetector

MASK = "***"

_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token", "credential", "credentials", "apikey")
_SECRET_WHOLE_WORDS = frozenset({"pwd", "pass", "auth", "authorization", "cookie", "key"})
# `key` names a secret alone or after one of these; `sort_key`, `cache_key` and `partition_key` are no secrets.
_KEY_QUALIFIERS = frozenset({"api", "access", "secret", "private", "client", "signing", "auth", "master", "account",
                             "encryption", "session", "subscription", "service", "storage", "license", "x"})
_NAME_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


@cache
def is_secret_name(name: str) -> bool:
    """Whether a field called `name` holds a secret (see the module docstring)."""
    words = [w.lower() for w in _NAME_WORDS.findall(name)]
    if not words:
        return False
    last = words[-1]
    if last == "key" and len(words) > 1:
        return words[-2] in _KEY_QUALIFIERS
    if last in _SECRET_WHOLE_WORDS or last.endswith(_SECRET_WORDS):
        return True
    return last.endswith("key") and last[:-3] in _KEY_QUALIFIERS  # "secretkey", "apikey", "accesskey"


def _detector_patterns() -> list[re.Pattern[str]]:
    """Every regex-based detector of detect-secrets but the one for public IP addresses (no secret)."""
    patterns: list[re.Pattern[str]] = []
    for plugin in get_mapping_from_secret_type_to_class().values():
        if issubclass(plugin, RegexBasedDetector) and plugin.__name__ != "IPPublicDetector":
            patterns += plugin.denylist
    return patterns


_DETECTED = _detector_patterns()
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----.*?(?:-----END \1-----|\Z)", re.S)
_PROVIDER_KEYS = re.compile(
    r"(?<![\w-])(?:sk-[A-Za-z0-9_-]{8,}|AIza[0-9A-Za-z_-]{30,}|hf_[A-Za-z0-9]{20,}|ya29\.[0-9A-Za-z_.-]{20,}"
    r"|github_pat_[A-Za-z0-9_]{22,})")
# A credential after its scheme; 8 characters at least, so prose ("the token was", "Basic auth") stays.
_AUTH_SCHEME = re.compile(r"\b((?i:bearer|basic)|Token)\s+[A-Za-z0-9._~+/=-]{8,}")
# scheme://userinfo@: to the last '@' of the run; userinfo when it has ':' before any '/', or no '/' at all.
_URL_USERINFO = re.compile(r"\b([a-z][a-z0-9+.-]*://)(\S*)@", re.I)
_NAME_SEP = re.compile(r"""(?P<q>["']?)(?P<name>[A-Za-z_][\w.-]{0,80})(?P=q)\s*[:=]\s*"""
                       r"""|(?<![\w-])--(?P<flag>[A-Za-z][\w-]{0,80})(?:=|\s+)""")  # and `--password value`
_VALUE = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s&,;'")\]}]+""")
_DELIMS = " \t\r\n=:\"'"
_STD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _mask_match(m: re.Match[str]) -> str:
    """The match masked, keeping the delimiters some detector patterns include around a secret."""
    text = m.group(0)
    core = text.strip(_DELIMS)
    if not core:
        return text
    start = text.index(core)
    return text[:start] + MASK + text[start + len(core):]


def _mask_userinfo(m: re.Match[str]) -> str:
    info = m.group(2)
    slash, colon = info.find("/"), info.find(":")
    if slash >= 0 and not 0 <= colon < slash:
        return m.group(0)  # "https://host/@user": a path, no userinfo
    return f"{m.group(1)}{MASK}@"


def _mask_assignments(text: str) -> str:
    """`name=value`, `name: value`, `"name": "value"`, `--name value`: the value masked when the name is a
    secret's. Scanned by hand so that a non-secret name never swallows what follows it (`https://h/p?key=…`)."""
    out: list[str] = []
    pos = 0
    for m in _NAME_SEP.finditer(text):
        if m.start() < pos or not is_secret_name(m.group("name") or m.group("flag")):
            continue
        value = _VALUE.match(text, m.end())
        if value is None:
            continue
        quote = value.group(0)[0] if value.group(0)[0] in "\"'" else ""
        out += [text[pos:m.end()], quote, MASK, quote]
        pos = value.end()
    out.append(text[pos:])
    return "".join(out)


def redact_text(text: str) -> str:
    if not text:
        return text
    text = _PEM_BLOCK.sub(lambda m: f"-----BEGIN {m.group(1)}-----{MASK}", text)
    text = _URL_USERINFO.sub(_mask_userinfo, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _PROVIDER_KEYS.sub(MASK, text)
    for pattern in _DETECTED:
        text = pattern.sub(_mask_match, text)
    return _mask_assignments(text)


def redact(value: object) -> object:
    """Masks secret-looking values at any depth; dict keys that name secrets are masked whatever their value."""
    if isinstance(value, dict):
        return {k: (MASK if is_secret_name(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(v) for v in value]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact_text(str(value))  # what json.dumps(default=str) would print


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                doc[key] = MASK if is_secret_name(key) else redact(value)
        if record.exc_info:
            doc["exc"] = redact_text(self.formatException(record.exc_info))
        if record.stack_info:
            doc["stack"] = redact_text(self.formatStack(record.stack_info))
        return json.dumps(doc, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kafka-python is chatty at INFO.
    logging.getLogger("kafka").setLevel(logging.WARNING)
    # Its event loop warns whenever a task runs >100 ms, which a loaded CPU makes routine.
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)

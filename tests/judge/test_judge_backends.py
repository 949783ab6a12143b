"""Every API judge against a local server speaking that API, including its errors."""

from __future__ import annotations

import io
import logging

import pytest
from judge_fake_apis import KEY, FakeAPI, always, prefers
from PIL import Image

from vispod.common.http_retry import parse_retry_after
from vispod.judge.backends import JudgeBackendError, RetryPolicy, build_backend
from vispod.judge.images import prepare_images
from vispod.judge.protocol import PairInput, Panel
from vispod.judge.rubrics import load_rubric
from vispod.judge.settings import JudgeSettings
from vispod.judge.stats import INVALID, TIE, A

# (spec, fake API, settings field of the base URL, URL suffix)
BACKENDS = [
    ("openai:gpt-test", "openai", "openai_base_url", "/v1"),
    ("vllm:qwen3-vl-test", "openai", "vllm_base_url", "/v1"),
    ("anthropic:claude-test", "anthropic", "anthropic_base_url", ""),
    ("gemini:gemini-test", "gemini", "gemini_base_url", ""),
    ("tgi:tgi", "tgi", "tgi_base_url", ""),
    ("tgi:tgi", "tgi_generate", "tgi_base_url", ""),
]
IDS = ["openai", "vllm", "anthropic", "gemini", "tgi-chat", "tgi-generate"]


class Sleeps(list):
    """Records the waits a RetryPolicy asks for, so tests check them without sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _jpeg(size: tuple[int, int] = (1600, 1200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buf, format="JPEG")
    return buf.getvalue()


def _panel(spec: str, api: str, field: str, url: str, sleeps: Sleeps, **extra: object) -> Panel:
    extra.setdefault("request_timeout_s", 5)
    settings = JudgeSettings(
        judges=[spec],
        criteria=["naturalness"],
        openai_api_key=KEY,
        vllm_api_key=KEY,
        anthropic_api_key=KEY,
        gemini_api_key=KEY,
        tgi_images=True,
        tgi_route="generate" if api == "tgi_generate" else "chat",
        max_retries=2,
        prices={spec: {"input_per_mtok": 2.0, "output_per_mtok": 10.0}},
        **{field: url},
        **extra,
    )
    retry = RetryPolicy(max_retries=settings.max_retries, backoff_base_s=0.5, sleep=sleeps)
    return Panel(
        [build_backend(spec, settings, retry)], load_rubric("v1"), settings.price_for, settings.max_concurrency
    )


PAIR = PairInput(
    dialogue_a="Speaker 1: GOOD we went to the lake.\nSpeaker 2: And then?",
    dialogue_b="Speaker 1: The lake. Speaker 2: Yes.",
    photos="1. a lake\n2. a boat",
    images=prepare_images([_jpeg(), _jpeg()], max_images=5, max_side=768, max_bytes=500_000),
)


@pytest.mark.parametrize(("spec", "api", "field", "suffix"), BACKENDS, ids=IDS)
def test_consistent_judge_gives_a_win_with_images_tokens_and_cost(spec, api, field, suffix) -> None:
    sleeps = Sleeps()
    with FakeAPI(api, prefers("GOOD")) as server:
        panel = _panel(spec, api, field, server.url + suffix, sleeps)
        [v] = panel.compare(PAIR, ["naturalness"])
        requests = list(server.requests)
    assert (v.outcome, v.outcome_ab, v.outcome_ba) == (A, A, A)
    assert "GOOD" in v.rationale and v.rubric_version == "v1" and not v.errors
    assert (v.prompt_tokens, v.completion_tokens) == (200, 40)
    assert v.cost_usd == pytest.approx((200 * 2.0 + 40 * 10.0) / 1e6)
    assert len(requests) == 2 and sleeps == []
    body = str(requests[0][2])
    assert body.count("/9j/") == 2  # both JPEGs went as base64, in the API's own image part


@pytest.mark.parametrize(("spec", "api", "field", "suffix"), BACKENDS, ids=IDS)
def test_429_retry_after_is_honoured_then_500_and_bad_json_are_retried(spec, api, field, suffix, caplog) -> None:
    sleeps = Sleeps()
    caplog.set_level(logging.DEBUG)
    with FakeAPI(api, always("A"), script=["429", "500", "badjson"], retry_after="7") as server:
        panel = _panel(spec, api, field, server.url + suffix, sleeps)
        [v] = panel.compare(PAIR, ["naturalness"])
        n_requests = len(server.requests)
    # The first order spends 2 retries on 429 and 500 and then succeeds; its third fault ("badjson")
    # hits whichever call comes next and is retried too. A judge that always says "A" flips with order.
    assert (v.outcome_ab, v.outcome_ba, v.outcome) == (A, "B", TIE)
    assert 7.0 in sleeps  # Retry-After, not a made-up backoff
    assert len(sleeps) == 3 and n_requests == 5
    assert KEY not in caplog.text


@pytest.mark.parametrize(("spec", "api", "field", "suffix"), BACKENDS, ids=IDS)
def test_retries_are_bounded_and_failure_is_reported_invalid(spec, api, field, suffix) -> None:
    sleeps = Sleeps()
    with FakeAPI(api, always("A"), script=["500"] * 6) as server:
        panel = _panel(spec, api, field, server.url + suffix, sleeps)
        [v] = panel.compare(PAIR, ["naturalness"])
        n_requests = len(server.requests)
    assert v.outcome == INVALID and len(v.errors) == 2 and v.retryable_failure
    assert n_requests == 6  # (1 + max_retries 2) per order
    assert all(KEY not in e for e in v.errors)


@pytest.mark.parametrize(("spec", "api", "field", "suffix"), BACKENDS, ids=IDS)
def test_401_is_not_retried(spec, api, field, suffix) -> None:
    sleeps = Sleeps()
    with FakeAPI(api, always("A"), script=["401", "401"]) as server:
        panel = _panel(spec, api, field, server.url + suffix, sleeps)
        [v] = panel.compare(PAIR, ["naturalness"])
        n_requests = len(server.requests)
    assert v.outcome == INVALID and n_requests == 2 and sleeps == [] and not v.retryable_failure
    assert "401" in v.errors[0]


@pytest.mark.parametrize(("spec", "api", "field", "suffix"), BACKENDS, ids=IDS)
def test_unparseable_verdict_is_retried_once_then_invalid(spec, api, field, suffix) -> None:
    replies = iter(["Sure! Dialogue A is better.", '{"winner": "A", "rationale": "ok"}', "nope", "still nope"])
    with FakeAPI(api, lambda prompt: next(replies)) as server:
        panel = _panel(spec, api, field, server.url + suffix, Sleeps(), max_concurrency=1)
        [v] = panel.compare(PAIR, ["naturalness"])
        retry_prompt = str(server.requests[1][2])
    assert v.outcome_ab == A  # second try parsed
    assert v.outcome_ba == INVALID and v.outcome == INVALID  # two junk replies: invalid, kept
    assert "unparseable" in v.rationale
    assert "could not be used" in retry_prompt


@pytest.mark.parametrize(("spec", "api", "field", "suffix"), BACKENDS, ids=IDS)
def test_timeouts_are_retried(spec, api, field, suffix) -> None:
    sleeps = Sleeps()
    with FakeAPI(api, always("tie"), script=["slow"]) as server:
        panel = _panel(spec, api, field, server.url + suffix, sleeps, request_timeout_s=0.5, max_concurrency=1)
        [v] = panel.compare(PAIR, ["naturalness"])
    assert v.outcome == TIE and not v.errors and len(sleeps) == 1


def test_text_only_tgi_gets_no_images() -> None:
    with FakeAPI("tgi", always("tie")) as server:
        settings = JudgeSettings(judges=["tgi:tgi"], tgi_base_url=server.url, tgi_images=False)
        panel = Panel([build_backend("tgi:tgi", settings)], load_rubric("v1"))
        [v] = panel.compare(PAIR, ["naturalness"])
        body = str(server.requests[0][2])
    assert v.outcome == TIE and "image_url" not in body


def test_images_are_bounded() -> None:
    images = prepare_images([_jpeg((3000, 2000))] * 7, max_images=3, max_side=512, max_bytes=20_000)
    assert len(images) == 3
    for im in images:
        with Image.open(io.BytesIO(im.data)) as decoded:
            assert max(decoded.size) <= 512
        assert len(im.data) <= 20_000


def test_http_date_retry_after_and_caps() -> None:
    policy = RetryPolicy(max_retry_after_s=5, backoff_base_s=1.0, backoff_max_s=30.0)
    assert policy.delay(0, parse_retry_after("120")) == 5
    assert policy.delay(0, parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT")) == 0.0  # in the past
    assert 0 <= policy.delay(3, parse_retry_after(None)) <= 8


def test_settings_hide_keys() -> None:
    settings = JudgeSettings(openai_api_key=KEY)
    assert KEY not in repr(settings) and KEY not in settings.model_dump_json()
    with pytest.raises(ValueError):
        JudgeSettings(judges=["openai"])  # no model
    with pytest.raises(ValueError):
        JudgeSettings(criteria=["beauty"])


def test_unknown_judge_or_criterion_is_refused() -> None:
    panel = Panel([], load_rubric("v1"))
    with pytest.raises(KeyError):
        panel.compare(PAIR, ["naturalness"], ["openai:none"])


def test_backend_error_carries_no_key() -> None:
    err = JudgeBackendError("x")
    assert not err.retryable


@pytest.mark.parametrize("api", ["tgi", "tgi_generate"])
def test_tgi_judge_is_called_while_hf_hub_offline_is_set(api, monkeypatch) -> None:
    """Every image sets HF_HUB_OFFLINE=1; a TGI judge is not the Hub and must still answer."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)  # as read at import in a process started with it
    with FakeAPI(api, prefers("GOOD")) as server:
        panel = _panel("tgi:tgi", api, "tgi_base_url", server.url, Sleeps())
        [v] = panel.compare(PAIR, ["naturalness"])
    assert v.outcome == A and not v.errors

"""PeftSwitcher with the tiny random Qwen3-VL: adapters change the output, swaps never tear a request."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from vispod.devkit.testing.adapter_files import make_lora_adapter  # noqa: E402
from vispod.devkit.testing.tiny_vlm import build_tiny_qwen3_vl  # noqa: E402
from vispod.generator.adapters import AdapterVersion  # noqa: E402
from vispod.generator.adapters.peft_switch import PeftSwitcher  # noqa: E402

NEW_TOKENS = 6


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """The tiny VLM, its processor, one image prompt and two adapters made here (random weights)."""
    import numpy as np
    from PIL import Image
    from transformers import AutoProcessor

    root = tmp_path_factory.mktemp("tiny")
    model_dir = build_tiny_qwen3_vl(root / "model")
    adapters = {f"sporc@{i}": AdapterVersion(f"sporc@{i}", make_lora_adapter(model_dir, root / f"lora{i}", seed=i),
                                             "model") for i in (1, 2)}
    processor = AutoProcessor.from_pretrained(model_dir)
    image = Image.fromarray((np.random.RandomState(0).rand(64, 64, 3) * 255).astype("uint8"))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Write a dialogue"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    return {"model_dir": model_dir, "adapters": adapters, "inputs": inputs}


def load_model(model_dir: Path):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(model_dir).eval()


def generate(model, inputs, new_tokens: int = NEW_TOKENS) -> list[int]:
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    return out[0, inputs["input_ids"].shape[1]:].tolist()


def test_adapter_changes_output_and_swaps_back_exactly(tiny):
    inputs, a1, a2 = tiny["inputs"], tiny["adapters"]["sporc@1"], tiny["adapters"]["sporc@2"]
    switcher = PeftSwitcher(load_model(tiny["model_dir"]))
    with switcher.using(None) as m:
        base = generate(m, inputs)
    with switcher.using(a1) as m:
        out1 = generate(m, inputs)
    with switcher.using(a2) as m:
        out2 = generate(m, inputs)
    assert out1 != base and out2 != base and out1 != out2
    assert switcher.loaded == ["sporc@1", "sporc@2"]
    with switcher.using(None) as m:
        assert generate(m, inputs) == base, "the base model is untouched while adapters are loaded"
    with switcher.using(a1) as m:
        assert generate(m, inputs) == out1
    # Retiring an adapter unloads it; a later request loads it again lazily, with the same result.
    assert switcher.unload("sporc@1")
    assert switcher.loaded == ["sporc@2"]
    with switcher.using(a1) as m:
        assert generate(m, inputs) == out1
    assert switcher.retain({"sporc@2"}) == ["sporc@1"]
    assert switcher.retain(set()) == ["sporc@2"]
    assert switcher.loaded == []
    with switcher.using(None) as m:
        assert generate(m, inputs) == base, "unwrapped back to the plain base model"


def test_lru_bound_on_loaded_adapters(tiny):
    a1, a2 = tiny["adapters"]["sporc@1"], tiny["adapters"]["sporc@2"]
    switcher = PeftSwitcher(load_model(tiny["model_dir"]), max_loaded=1)
    with switcher.using(a1):
        pass
    with switcher.using(a2) as m:
        assert switcher.loaded == ["sporc@2"]
        assert generate(m, tiny["inputs"], 2)


def test_in_flight_requests_finish_on_their_adapter_during_a_swap(tiny):
    """A long request on adapter 1 is in flight when requests for adapter 2 and the base arrive: it finishes
    on adapter 1 (same tokens as alone), the swap waits for it, and later arrivals queue in order."""
    inputs, a1, a2 = tiny["inputs"], tiny["adapters"]["sporc@1"], tiny["adapters"]["sporc@2"]
    reference = {}
    ref_switcher = PeftSwitcher(load_model(tiny["model_dir"]))
    for key, version in (("sporc@1", a1), ("sporc@2", a2), ("base", None)):
        with ref_switcher.using(version) as m:
            reference[key] = generate(m, inputs, 12 if key == "sporc@1" else NEW_TOKENS)

    switcher = PeftSwitcher(load_model(tiny["model_dir"]))
    with switcher.using(a1):
        pass   # loaded and applied
    inside = threading.Event()
    results: dict[str, list[int]] = {}
    order: list[str] = []

    def long_request() -> None:
        with switcher.using(a1) as m:
            inside.set()
            time.sleep(0.3)              # make sure the others arrive while this one runs
            results["sporc@1"] = generate(m, inputs, 12)
            order.append("sporc@1 done")

    def request(key: str, version: AdapterVersion | None) -> None:
        with switcher.using(version) as m:
            order.append(f"{key} start")
            results[key] = generate(m, inputs)

    t1 = threading.Thread(target=long_request)
    t1.start()
    assert inside.wait(30)
    t2 = threading.Thread(target=request, args=("sporc@2", a2))
    t2.start()
    time.sleep(0.1)
    t3 = threading.Thread(target=request, args=("base", None))
    t3.start()
    for t in (t1, t2, t3):
        t.join(60)
    assert results == reference
    assert order == ["sporc@1 done", "sporc@2 start", "base start"]


def test_requests_for_the_applied_adapter_share_the_model(tiny):
    """Same-adapter requests run together (no needless serialisation): three are inside `using` at once."""
    a1 = tiny["adapters"]["sporc@1"]
    switcher = PeftSwitcher(load_model(tiny["model_dir"]))
    with switcher.using(a1):
        pass
    barrier = threading.Barrier(3, timeout=30)
    lock = threading.Lock()
    inside = {"now": 0, "most": 0}
    errors: list[BaseException] = []

    def request() -> None:
        try:
            with switcher.using(a1):
                with lock:
                    inside["now"] += 1
                    inside["most"] = max(inside["most"], inside["now"])
                barrier.wait()   # serialised requests would never all get here: BrokenBarrierError
                with lock:
                    inside["now"] -= 1
        except BaseException as exc:  # a thread's exception must fail the test, not vanish
            errors.append(exc)

    threads = [threading.Thread(target=request) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and inside["most"] == 3
    assert switcher.loaded == ["sporc@1"] and switcher.applied == "sporc@1"


def test_a_failed_load_leaves_the_switcher_usable(tiny, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text("{}")
    switcher = PeftSwitcher(load_model(tiny["model_dir"]))
    with switcher.using(tiny["adapters"]["sporc@1"]) as m:
        out1 = generate(m, tiny["inputs"])
    with pytest.raises(KeyError, match="peft_type"), switcher.using(AdapterVersion("broken@1", broken, "model")):
        pass  # peft's own error for a config without a peft_type
    assert switcher.loaded == ["sporc@1"]  # the broken one left nothing behind
    with switcher.using(tiny["adapters"]["sporc@1"]) as m:
        assert generate(m, tiny["inputs"]) == out1

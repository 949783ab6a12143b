"""vispod trainer: LoRA fine-tuning of the base VLM on image–dialogue pairs, published as immutable adapter versions.

Modules: settings (VISPOD_TRAINER_*), dataset (pairs folder checks, dataset hash), encoding (chat messages → ids,
pixels, labels), lora (language-model-only LoRA, NEFTune), loop (training loop, eval, exact resume), checkpoint,
telemetry (Prometheus metrics, JSON progress lines), publish (manifest, artifact store, AdapterPublished),
run (one run end to end; the Job's main), cli (`vispod train`, `python -m vispod.trainer`).
"""

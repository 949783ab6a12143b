"""vispod synth: the text-to-image service.

settings (VISPOD_SYNTH_*), engine (diffusers pipeline, batching, seeds, PNG), limits (request validation),
service (gRPC SynthService + the synthesis.requested consumer), metrics, tiny (the offline random pipeline,
used only when asked for). The training-set builder that calls it is its own package, vispod.dataset.

What other packages may use: engine.Synthesizer (its `draw` renders one SynthesisRequested in process, validated and
counted as the service does), settings.SynthSettings and service.resolve_model; the rest is synth's own
(tests/dataset/test_dataset_synth_boundary.py).
"""

"""vispod synth: the text-to-image service.

settings (VISPOD_SYNTH_*), engine (diffusers pipeline, batching, seeds, PNG), limits (request validation),
service (gRPC SynthService + the synthesis.requested consumer), metrics, tiny (the offline random pipeline,
used only when asked for). The training-set builder that calls it is its own package, vispod.dataset.
"""

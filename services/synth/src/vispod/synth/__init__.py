"""vispod synth: the text-to-image service and the training-set builder.

Service: settings (VISPOD_SYNTH_*), engine (diffusers pipeline, batching, seeds, PNG), limits (request
validation), service (gRPC SynthService + the synthesis.requested consumer), metrics, tiny (the
offline random test pipeline). Data: sporc (both SPoRC layouts), chitchat (real chats, demo source),
excerpts (600–800-word spans), scoring (visualizability), prompts (scene prompts, instruction),
vist (VIST JSON and the vist-podcast-50 folders), dataset (the builder; its folder layout is
documented in vispod.dataset).
"""

"""The adapter-sync deployable: verified adapter versions from the store into an engine (vLLM sidecar, TGI init)."""

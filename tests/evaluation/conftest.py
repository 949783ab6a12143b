"""Evaluation test fixtures: the gate's synthetic evaluation set, a tiny random CLIP, scripted gRPC services."""

from gate_scripted import builtin_set, servers  # noqa: F401  (fixtures)
from tiny_clip import tiny_clip  # noqa: F401  (a fixture)

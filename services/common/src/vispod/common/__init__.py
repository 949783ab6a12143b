"""Shared runtime of every vispod service: settings, event bus, gRPC bootstrap, logging, metrics, image access."""

"""Perception: photo -> machine-detected facts (objects with boxes, visible text, image labels) from real weights.

A text-only model cannot see pixels; these facts are what it reads about a photo. `Perceiver` is the one
interface: `PhotoPerceiver` runs the three offline models in-process; a VLM backend sees the pixels itself and
uses none. Every fact carries the model that produced it (`Perception.models`).
"""

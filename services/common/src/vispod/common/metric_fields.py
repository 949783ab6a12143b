"""The metrics of vispod, read from the proto descriptors: every field marked `(vispod.v1.metric)`.

One source for the Prometheus instruments (metrics/prom.py), the gate's and the evaluation's tables and CSVs and
the decision's direction (higher or lower is better). A new metric is a proto field with the option, the function
that fills it and its test; nothing here lists names by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from vispod.v1 import common_pb2, events_pb2, metric_options_pb2

HIGHER, LOWER, NEITHER = "higher", "lower", "neither"
_BETTER = (HIGHER, LOWER, NEITHER)


@dataclass(frozen=True)
class MetricField:
    section: str  # the MetricsComputed field that holds it: style, paper_style, grounding, hallucination, …
    name: str  # the field's name inside its message
    unit: str
    better: str  # higher | lower | neither
    paper_table: bool
    is_flag: bool  # a yes/no per dialogue

    @property
    def key(self) -> str:
        """`section.name`, unique across MetricsComputed."""
        return f"{self.section}.{self.name}"


def fields_of(message: Descriptor, section: str = "") -> tuple[MetricField, ...]:
    """The metric fields of one message, in declaration order."""
    out = []
    for field in message.fields:
        options = field.GetOptions()
        if not options.HasExtension(metric_options_pb2.metric):
            continue
        option = options.Extensions[metric_options_pb2.metric]
        if option.better not in _BETTER or not option.unit:
            raise ValueError(f"{message.name}.{field.name}: a metric needs a unit and a direction")
        out.append(MetricField(section, field.name, option.unit, option.better, option.paper_table,
                               field.type == FieldDescriptor.TYPE_BOOL))
    return tuple(out)


@cache
def sections() -> dict[str, tuple[MetricField, ...]]:
    """MetricsComputed's metric messages by field name (style, paper_style, grounding, …), each with its metrics."""
    out = {}
    for field in events_pb2.MetricsComputed.DESCRIPTOR.fields:
        if field.message_type is not None:
            found = fields_of(field.message_type, field.name)
            if found:
                out[field.name] = found
    return out


def metric_names(message: type) -> tuple[str, ...]:
    """The metric field names of a generated message class (e.g. common_pb2.StyleMetrics)."""
    return tuple(f.name for f in fields_of(message.DESCRIPTOR))


def values(metrics: events_pb2.MetricsComputed, section: str) -> dict[str, float] | None:
    """A section's metrics as numbers (flags as 0/1); None when the section is unset."""
    if not metrics.HasField(section):
        return None
    part = getattr(metrics, section)
    return {f.name: float(getattr(part, f.name)) for f in sections()[section]}


# Fields that mean nothing when their message says nothing was scored (`scenes` 0).
_UNDEFINED_WITHOUT_SCENES = ("aligned", "shuffled", "margin")


def flat_values(metrics: events_pb2.MetricsComputed,
                skip: tuple[str, ...] = ("paper_style",)) -> dict[str, float | None]:
    """Every metric as `<section>.<field>` -> number; None where the section is unset or the value undefined
    (the aligned-grounding margin of a dialogue with no scene scored)."""
    out: dict[str, float | None] = {}
    for section, fields in sections().items():
        if section in skip:
            continue
        numbers = values(metrics, section)
        for f in fields:
            out[f.key] = None if numbers is None else numbers[f.name]
    if metrics.HasField("aligned_grounding") and metrics.aligned_grounding.scenes == 0:
        out.update({f"aligned_grounding.{name}": None for name in _UNDEFINED_WITHOUT_SCENES})
    return out


PAPER_TABLE = tuple(f.name for f in fields_of(common_pb2.StyleMetrics.DESCRIPTOR) if f.paper_table)

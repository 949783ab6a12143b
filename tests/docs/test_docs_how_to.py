"""The "how to add …" pages in docs/ stay true: every path they name exists, and every step they list is done for
each event type and generator backend in the code (a forgotten step fails here with the step's number)."""

from __future__ import annotations

import ast
import re
import typing
from pathlib import Path

from test_docs_truth import README, topic_table

from vispod.common.events import EVENT_TYPES
from vispod.common.topics import Topic, topic_name
from vispod.generator.settings import GeneratorSettings
from vispod.v1 import events_pb2

REPO = Path(__file__).resolve().parents[2]
HOW_TOS = sorted((REPO / "docs").glob("how-to-*.md"))
BACKENDS_DIR = REPO / "services" / "generator" / "src" / "vispod" / "generator" / "backends"
DLQ = "vispod.dlq.<service>"


def _named_paths(text: str) -> set[str]:
    """Repository paths a page names in backticks (those with a placeholder such as <name> left out)."""
    return {p for p in re.findall(r"`([\w./-]+/[\w.-]+)`", text) if not p.startswith("vispod.")}


def proto_events(proto: str) -> dict[str, str]:
    """Message -> topic, for every message whose comment says which topic it is published on."""
    return {message: topic.rstrip(".,")
            for topic, message in re.findall(r"^//[^\n]*? on (vispod\.[\w.<>]+)[^\n]*\n(?://[^\n]*\n)*message (\w+)",
                                             proto, re.M)}


def test_the_pages_exist_and_every_path_they_name_is_there() -> None:
    assert [p.name for p in HOW_TOS] == ["how-to-add-a-generator-backend.md", "how-to-add-an-event-type.md"]
    missing = [f"{page.name}: {path}" for page in HOW_TOS for path in sorted(_named_paths(page.read_text()))
               if not (REPO / path).exists()]
    assert missing == []


def test_the_proto_scan_pairs_a_message_with_its_topic() -> None:
    proto = ("// Published by x on vispod.a.b.\nmessage A {}\n// helper\nmessage H {}\n"
             "// Published on vispod.c.d whenever it changes.\n// More words.\nmessage C {}\n")
    assert proto_events(proto) == {"A": "vispod.a.b", "C": "vispod.c.d"}


# --- event types ------------------------------------------------------------------------------------------------
EVENTS = proto_events((REPO / "protos" / "vispod" / "v1" / "events.proto").read_text(encoding="utf-8"))


def test_step_1_every_event_message_names_its_topic() -> None:
    assert len(EVENTS) >= 10
    registered = {name.rsplit(".", 1)[1] for name in EVENT_TYPES}
    assert registered - set(EVENTS) == set(), "step 1: events.proto has no 'on vispod.<topic>' comment for these"


def test_step_2_every_event_topic_is_a_topic_and_every_topic_carries_one_event() -> None:
    topics = [t for t in EVENTS.values() if t != DLQ]
    assert sorted(topics) == sorted(topic_name(t) for t in Topic), "step 2: Topic and the events' topics differ"


def test_step_3_every_event_message_is_in_the_registry() -> None:
    assert {f"vispod.v1.{m}" for m in EVENTS} == set(EVENT_TYPES), "step 3: EVENT_TYPES in common/events.py"
    assert all(getattr(events_pb2, m) is EVENT_TYPES[f"vispod.v1.{m}"] for m in EVENTS)


def test_step_6_the_readme_table_pairs_each_topic_with_its_event() -> None:
    table = {}
    lines = README.splitlines()
    start = lines.index("| topic | event | producers | consumers | also read by |")
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        topic, event = (c.strip().strip("`") for c in line.strip("|").split("|")[:2])
        table[topic] = event
    assert table == {topic: message for message, topic in EVENTS.items()}, "step 6: the README's topic table"
    assert set(topic_table()) == set(table)


# --- generator backends -----------------------------------------------------------------------------------------
def _backend_classes() -> dict[str, tuple[str, str]]:
    """name -> (module file, class) for every class in backends/ with a literal `name = "..."`."""
    found = {}
    for path in sorted(BACKENDS_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    if (isinstance(stmt, ast.Assign) and [getattr(t, "id", "") for t in stmt.targets] == ["name"]
                            and isinstance(stmt.value, ast.Constant)):
                        found[stmt.value.value] = (path.name, node.name)
    return found


def _make_backend_branches() -> set[str]:
    """The backend names `make_backend` compares settings.backend with."""
    tree = ast.parse((BACKENDS_DIR / "__init__.py").read_text(encoding="utf-8"))
    make = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "make_backend")
    return {c.comparators[0].value for c in ast.walk(make)
            if isinstance(c, ast.Compare) and isinstance(c.comparators[0], ast.Constant)
            and ast.unparse(c.left) == "settings.backend"}


CHOICES = set(typing.get_args(GeneratorSettings.model_fields["backend"].annotation))


def test_step_1_every_backend_choice_has_its_class() -> None:
    assert {"llamacpp", "local", "tgi", "openai"} <= CHOICES
    classes = _backend_classes()
    assert CHOICES - set(classes) == set(), "step 1: no class with this name = … in generator/backends/"


def test_step_2_settings_and_make_backend_offer_the_same_backends() -> None:
    assert _make_backend_branches() == CHOICES, "step 2: GeneratorSettings.backend and make_backend differ"


def test_step_3_every_backend_class_is_tested() -> None:
    tests = "".join(p.read_text(encoding="utf-8") for p in sorted((REPO / "tests" / "generator").glob("test_*.py")))
    untested = [cls for name, (_, cls) in _backend_classes().items() if name in CHOICES and cls not in tests]
    assert untested == [], "step 3: no test module in tests/generator/ drives these"


def test_step_4_the_generator_readme_lists_every_backend() -> None:
    readme = (REPO / "services" / "generator" / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Backends", 1)[1].split("\n\n", 1)[0]
    rows = set(re.findall(r"^\| `(\w+)`", table, re.M))
    assert rows == CHOICES, "step 4: the backends table of services/generator/README.md"

"""The docs say what the code does: the README's topic table against the consumers each package registers,
the architecture picture against the topics and gRPC services, and a README for every package."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from vispod.common.topics import Topic, topic_name

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
PACKAGES = sorted(p.name for p in (REPO / "services").iterdir() if (p / "pyproject.toml").is_file())
# How the topic table names the packages that are not services.
TABLE_NAMES = {"dataset builder": "dataset", "developer kit": "devkit"}


def _sources(package: str) -> list[Path]:
    return sorted((REPO / "services" / package / "src" / "vispod" / package).rglob("*.py"))


def _topic(node: ast.AST) -> Topic | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Topic":
        return Topic[node.attr]
    return None


def _call_name(node: ast.Call) -> str:
    return node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")


def scan(package: str) -> dict[str, set]:  # type: ignore[type-arg]
    """What a package's code registers: consumed topics (EventConsumer/EventReader with a literal topic list),
    produced topics (Output(Topic.X, …) and publish(Topic.X, …)), gRPC services it serves, settings prefixes."""
    found: dict[str, set] = {"consumes": set(), "produces": set(), "serves": set(), "prefixes": set()}  # type: ignore[type-arg]
    for path in _sources(package):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = _call_name(node)
                if name in ("EventConsumer", "EventReader"):
                    args = [kw.value for kw in node.keywords if kw.arg == "topics"] or node.args[1:2]
                    for arg in args:
                        if isinstance(arg, ast.List | ast.Tuple):
                            found["consumes"] |= {t for t in map(_topic, arg.elts) if t}
                if name in ("Output", "publish") and node.args and (t := _topic(node.args[0])):
                    found["produces"].add(t)
                for kw in node.keywords:
                    if kw.arg == "env_prefix" and isinstance(kw.value, ast.Constant):
                        found["prefixes"].add(kw.value.value)
            elif isinstance(node, ast.ClassDef):
                for base in node.bases:
                    if isinstance(base, ast.Attribute) and base.attr.endswith("ServiceServicer"):
                        found["serves"].add(base.attr.removesuffix("Servicer"))
    return found


def topic_table() -> dict[str, tuple[set[str], set[str], str]]:
    """topic name -> (producer packages, consumer packages, also-read-by text), from the README."""
    lines = README.splitlines()
    start = lines.index("| topic | event | producers | consumers | also read by |")
    table = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        topic, _event, producers, consumers, readers = (c.strip() for c in line.strip("|").split("|"))

        def names(cell: str) -> set[str]:
            return {TABLE_NAMES.get(n.strip(), n.strip()) for n in cell.split(",") if n.strip() not in ("", "—")}
        table[topic.strip("`")] = (names(producers), names(consumers), readers)
    return table


def test_the_scan_reads_a_registration(tmp_path: Path) -> None:
    scanned = scan("judge")
    assert Topic.DIALOGUE_GENERATED in scanned["consumes"] and Topic.JUDGEMENT_COMPLETED in scanned["produces"]
    assert scanned["serves"] == {"JudgeService"} and scanned["prefixes"] == {"VISPOD_JUDGE_"}


def test_the_topic_table_lists_exactly_the_registered_consumers_and_producers() -> None:
    table = topic_table()
    dlq = [t for t in table if "<" in t]
    assert dlq == ["vispod.dlq.<service>"]
    assert sorted(t for t in table if "<" not in t) == sorted(topic_name(t) for t in Topic)
    scanned = {p: scan(p) for p in PACKAGES}
    for topic in Topic:
        producers, consumers, _ = table[topic_name(topic)]
        registered = {p for p, s in scanned.items() if topic in s["consumes"] and p != "devkit"}
        assert consumers == registered, f"{topic_name(topic)}: README consumers {consumers}, code {registered}"
        emitting = {p for p, s in scanned.items() if topic in s["produces"]}
        named = producers & set(PACKAGES)
        assert emitting <= named, f"{topic_name(topic)}: {emitting - named} publish it, the README omits them"
        for package in named:  # a named producer at least refers to the topic
            text = "".join(p.read_text(encoding="utf-8") for p in _sources(package))
            assert f"Topic.{topic.name}" in text, f"{package} never names {topic_name(topic)}"


def test_the_architecture_picture_draws_every_topic_and_grpc_service() -> None:
    picture = re.search(r"```mermaid\n(.*?)```", README, re.S)
    assert picture is not None
    edges = picture.group(1)
    for topic in Topic:
        assert f"|{topic.value}|" in edges, f"no Kafka edge for {topic.value}"
    for proto in sorted((REPO / "protos" / "vispod" / "v1").glob("*.proto")):
        for service, body in re.findall(r"^service (\w+) \{(.*?)^\}", proto.read_text(encoding="utf-8"), re.S | re.M):
            methods = re.findall(r"rpc (\w+)\(", body)
            assert any(re.search(rf"-\.->\|[^|]*\b{m}\b", edges) for m in methods), f"no gRPC edge to {service}"


def test_every_package_has_a_readme_naming_its_interfaces_and_settings() -> None:
    for package in PACKAGES:
        readme = REPO / "services" / package / "README.md"
        assert readme.is_file(), f"services/{package}/README.md is missing"
        text = readme.read_text(encoding="utf-8")
        scanned = scan(package)
        missing = [f"vispod.v1.{s}" for s in scanned["serves"] if f"vispod.v1.{s}" not in text]
        missing += [topic_name(t) for t in scanned["consumes"] if topic_name(t) not in text]
        missing += [p for p in scanned["prefixes"] if p not in text]
        assert missing == [], f"services/{package}/README.md does not name {missing}"


def test_the_layout_lists_every_package_and_the_picture_every_deployable() -> None:
    layout = re.search(r"## Layout\n\n```\n(.*?)```", README, re.S)
    picture = re.search(r"```mermaid\n(.*?)```", README, re.S)
    assert layout is not None and picture is not None
    for package in PACKAGES:
        assert f"services/{package}/" in layout.group(1), f"services/{package}/ is missing from the README layout"
        if (REPO / "services" / package / "src" / "vispod" / package / "__main__.py").is_file():  # a deployable
            assert re.search(rf"\b{package}\b", picture.group(1)), f"{package} is missing from the picture"

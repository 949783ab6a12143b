"""The platform engineer's story on the local cluster (make k8s-e2e): the real chart, the real probes, a dialogue
through in-cluster Kafka, a trainer Job that publishes a signed adapter to the in-cluster S3 store, the generator
serving it, the gate promoting it, an upgrade and a pod deletion that keep it, a TGI-style rollout, GPU-profile
scheduling and an uninstall that leaves nothing.

Run on the node (root) with the project's venv, after scripts/k8s/up.sh and scripts/k8s/images.py. The last line:
  k8s e2e: pods ready N/N, dialogue ok, adapter <id> served, upgrade kept it, rollout ok, uninstall clean
What it proves is plumbing on real weights that are small (SmolLM2-135M): the gate decides by itself, with the
rule of deploy/k8s-local/gate-plan.yaml on the metrics service's numbers when the 135M judge gives no valid verdict
(the decision's reason says which rule decided); a rejection on that evidence fails the run. Quality is measured
elsewhere (make mini-paper).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "vispod"
LOCAL = REPO / "deploy" / "k8s-local"
STATE = Path(os.environ.get("VISPOD_K8S_STATE", "/var/lib/vispod-k8s"))
RELEASE = "vispod"
STORAGE_CLASS = "vispod-local"
UID = 10001


def say(msg: str) -> None:
    print(f"k8s-e2e [{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Failed(RuntimeError):
    pass


def run(*cmd: str, check: bool = True, timeout: float = 900, stdin: str | None = None) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=stdin)
    if check and res.returncode != 0:
        raise Failed(f"{' '.join(cmd[:6])} … exited {res.returncode}: {res.stderr.strip()[-2000:]}")
    return res.stdout


class Cluster:
    def __init__(self, namespace: str) -> None:
        self.ns = namespace

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None, timeout: float = 300) -> str:
        return run("kubectl", "-n", self.ns, *args, check=check, stdin=stdin, timeout=timeout)

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def apply(self, manifest: str) -> None:
        self.kubectl("apply", "-f", "-", stdin=manifest)

    def helm(self, *args: str, timeout: float = 1200) -> str:
        return run("helm", "-n", self.ns, *args, timeout=timeout)

    def pods(self, selector: str = "") -> list[dict]:
        args = ["get", "pods"] + (["-l", selector] if selector else [])
        return self.json(*args)["items"]

    def pod_ip(self, app: str) -> str:
        for pod in self.pods(f"app.kubernetes.io/name={app}"):
            if pod["status"].get("podIP") and ready(pod) and not pod["metadata"].get("deletionTimestamp"):
                return pod["status"]["podIP"]
        raise Failed(f"no ready {app} pod")


def ready(pod: dict) -> bool:
    conds = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
    return pod["status"].get("phase") == "Running" and conds.get("Ready") == "True"


def wait(what: str, check: Callable[[], Any], timeout: float, every: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            got = check()
            if got:
                return got
        except Failed as exc:
            last = exc
        time.sleep(every)
    raise Failed(f"timed out after {timeout:.0f} s waiting for {what}" + (f" (last: {last})" if last else ""))


# --- volumes, keys, data ------------------------------------------------------------------------------------
def volume_dir(ns: str, name: str) -> Path:
    return STATE / "volumes" / ns / name


def make_volumes(c: Cluster) -> dict[str, Path]:
    """hostPath PersistentVolumes pre-bound to the chart's claims (a single node: ReadWriteMany holds)."""
    claims = {"vispod-artifacts": "ReadWriteMany", "vispod-models": "ReadWriteMany",
              "trainer-data": "ReadWriteOnce", "trainer-work": "ReadWriteOnce"}
    dirs = {}
    docs = []
    for claim, mode in claims.items():
        path = volume_dir(c.ns, claim)
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, UID, UID)
        dirs[claim] = path
        docs.append({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": f"{c.ns}-{claim}", "labels": {"vispod-e2e": c.ns}},
            "spec": {"capacity": {"storage": "2Gi"}, "accessModes": [mode], "storageClassName": STORAGE_CLASS,
                     "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": str(path), "type": "Directory"},
                     "claimRef": {"namespace": c.ns, "name": claim}},
        })
    c.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    return dirs


def chown_tree(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        os.chown(p, UID, UID, follow_symlinks=False)


def make_secrets(c: Cluster, work: Path) -> dict[str, str]:
    """The chart's Secrets: lifecycle keys (gate), adapter keys (trainer), the S3 credentials (writer, readers)."""
    from vispod.common.signing import generate_keypair

    keys = work / "keys"
    for identity in ("gate", "trainer"):
        if not (keys / f"{identity}.key").exists():
            generate_keypair(keys, identity)
    s3 = {"access-key-id": "vispod-e2e", "secret-access-key": base64.b16encode(os.urandom(16)).decode().lower()}

    def secret(name: str, data: dict[str, bytes]) -> dict:
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
                "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}

    items = [
        secret("vispod-lifecycle-keys", {"gate.pub": (keys / "gate.pub").read_bytes()}),
        secret("vispod-gate-signing-key", {"gate.key": (keys / "gate.key").read_bytes()}),
        secret("vispod-adapter-keys", {"trainer.pub": (keys / "trainer.pub").read_bytes()}),
        secret("vispod-trainer-signing-key", {"trainer.key": (keys / "trainer.key").read_bytes()}),
        secret("vispod-adapter-store", {k: v.encode() for k, v in s3.items()}),
        # The readers' credentials (generator, adapter-sync): S3Proxy knows one identity, so the same keys; a real
        # store gives them read-only rights.
        secret("vispod-adapter-store-reader", {k: v.encode() for k, v in s3.items()}),
    ]
    c.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return s3


def example_story(work: Path) -> Path:
    """The example story (scikit-image's real photos), cut to two photos: every dialogue here is generated on 2
    shared cores, the gate's evaluation included."""
    from vispod.devkit.example_story import write_example_story

    story = write_example_story(work / "story")
    meta = json.loads((story / "story.json").read_text())
    for entry in meta["images"][2:]:
        (story / entry["file"]).unlink()
    meta["images"] = meta["images"][:2]
    (story / "story.json").write_text(json.dumps(meta, indent=2))
    return story


def seed_data(dirs: dict[str, Path], work: Path) -> Path:
    """An example story (real photos from scikit-image) as the gate's eval set, and a few training pairs."""
    from vispod.devkit.mini_paper_data import DataProfile, build
    from vispod.evaluation.splits import load_split

    story = example_story(work)
    eval_set = dirs["vispod-models"] / "eval-set" / "story_example"
    if eval_set.exists():
        shutil.rmtree(eval_set)
    shutil.copytree(story, eval_set)
    # The gate's rule when the judge has no valid verdict (VISPOD_GATE_PLAN_FILE in values-cpu.yaml).
    shutil.copyfile(LOCAL / "gate-plan.yaml", dirs["vispod-models"] / "gate-plan.yaml")
    chown_tree(dirs["vispod-models"])
    build(dirs["trainer-data"] / "pairs", None, load_split(), DataProfile(chitchat_pairs=6, paper_pairs=0))
    chown_tree(dirs["trainer-data"])
    return story


# --- phases -------------------------------------------------------------------------------------------------
def ready_pods(c: Cluster) -> tuple[int, int]:
    pods = [p for p in c.pods() if p["metadata"].get("ownerReferences", [{}])[0].get("kind") != "Job"]
    return sum(1 for p in pods if ready(p)), len(pods)


def kafka_settings(c: Cluster):
    from vispod.common.settings import KafkaSettings

    return KafkaSettings(bootstrap=f"{c.pod_ip('kafka')}:9092", topic_prefix="vispod")


def submit_story(c: Cluster, story: Path, artifacts: Path, adapter: str = "", timeout: float = 600) -> Any:
    """Stages the story's photos on the artifacts volume, publishes an ImageSetSubmitted on the in-cluster broker
    and waits for its DialogueGenerated."""
    from vispod.common.bus import EventPublisher, EventReader
    from vispod.common.topics import Topic, dlq_topic
    from vispod.devkit.submit import image_set_event, image_set_from_folder
    from vispod.v1 import common_pb2, events_pb2

    set_id, refs = image_set_from_folder(story)
    inbox = artifacts / "inbox"
    inbox.mkdir(exist_ok=True)
    staged = []
    for ref in refs:
        src = Path(ref.uri.removeprefix("file://"))
        dest = inbox / f"{ref.sha256}{src.suffix.lower()}"
        shutil.copyfile(src, dest)
        os.chown(dest, UID, UID)
        moved = common_pb2.ImageRef()
        moved.CopyFrom(ref)
        moved.uri = f"file:///var/lib/vispod/artifacts/inbox/{dest.name}"
        staged.append(moved)
    chown_tree(inbox)
    args = argparse.Namespace(speaker=[], target_words=60, style="", language="en", adapter=adapter, seed=1)
    event = image_set_event(args, set_id, staged, tenant="k8s-e2e")
    kafka = kafka_settings(c)
    reader = EventReader(kafka, [Topic.DIALOGUE_GENERATED, dlq_topic("generator", "vispod")], from_beginning=False)
    try:
        publisher = EventPublisher(kafka, "k8s-e2e")
        publisher.publish(Topic.IMAGESET_SUBMITTED, event)
        publisher.close()
        deadline = time.monotonic() + timeout
        dialogue = None
        while dialogue is None and time.monotonic() < deadline:
            for env in reader.read(1, timeout=5.0):
                m = env.message
                if isinstance(m, events_pb2.DeadLetter) and event.correlation_id.encode() in m.payload:
                    raise Failed(f"generator dead-lettered the image set: {m.error}")
                if isinstance(m, events_pb2.DialogueGenerated) and m.correlation_id == event.correlation_id:
                    dialogue = m
    finally:
        reader.close()
    if dialogue is None:
        raise Failed(f"no DialogueGenerated within {timeout:.0f} s")
    if dialogue.status != common_pb2.STATUS_OK:
        raise Failed(f"dialogue failed: {dialogue.error}")
    return dialogue


def adapter_events(c: Cluster, timeout: float = 5.0) -> list[Any]:
    from vispod.common.bus import EventReader
    from vispod.common.topics import Topic

    with EventReader(kafka_settings(c), [Topic.ADAPTER_PUBLISHED, Topic.ADAPTER_LIFECYCLE]) as reader:
        return [env.message for env in reader.read(1000, timeout=timeout)]


def store_versions(c: Cluster, s3: dict[str, str]) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=f"http://{c.pod_ip('s3')}:9000", region_name="us-east-1",
                          aws_access_key_id=s3["access-key-id"], aws_secret_access_key=s3["secret-access-key"])
    res = client.list_objects_v2(Bucket="vispod-adapters", Prefix="vispod/")
    return sorted(o["Key"] for o in res.get("Contents", []))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--namespace", default="vispod-e2e")
    ap.add_argument("--values", type=Path, default=LOCAL / "values-cpu.yaml")
    ap.add_argument("--tgi-values", type=Path, default=LOCAL / "values-tgi-cpu.yaml")
    ap.add_argument("--keep", action="store_true", help="leave the release installed (debugging)")
    ap.add_argument("--node", default=os.environ.get("VISPOD_K8S_NODE_NAME", "vispod-node"))
    ap.add_argument("--only", default="", help="run one phase alone (debugging): gpu")
    ap.add_argument("--resume", action="store_true", help="go on from the trainer phase with a release left by --keep")
    args = ap.parse_args(argv)
    if args.only == "gpu":
        print(gpu_scheduling(args.node, args.values))
        return 0
    c = Cluster(args.namespace)
    summary: dict[str, str] = {}
    timings: dict[str, float] = {}
    started = time.monotonic()

    def phase(name: str) -> Callable[[], None]:
        t0 = time.monotonic()
        say(f"== {name}")
        return lambda: timings.__setitem__(name, round(time.monotonic() - t0, 1))

    work = Path(tempfile.mkdtemp(prefix="vispod-k8s-e2e-"))
    try:
        if args.resume:  # a release left by --keep: its volumes, its S3 credentials, a fresh copy of the story
            dirs = {claim: volume_dir(c.ns, claim) for claim in
                    ("vispod-artifacts", "vispod-models", "trainer-data", "trainer-work")}
            secret = c.json("get", "secret", "vispod-adapter-store")["data"]
            s3 = {k: base64.b64decode(v).decode() for k, v in secret.items()}
            story = example_story(work)
        else:
            done = phase("namespace, volumes, secrets, data")
            # Leftovers of an interrupted run: a training pod would take its 180 s grace period to go.
            run("kubectl", "-n", c.ns, "delete", "pods", "--all", "--grace-period=0", "--force", check=False)
            run("kubectl", "delete", "namespace", c.ns, "--ignore-not-found", "--wait=true", timeout=300)
            run("kubectl", "delete", "pv", "-l", f"vispod-e2e={c.ns}", "--ignore-not-found", timeout=120)
            shutil.rmtree(STATE / "volumes" / c.ns, ignore_errors=True)
            run("kubectl", "create", "namespace", c.ns)
            dirs = make_volumes(c)
            s3 = make_secrets(c, work)
            story = seed_data(dirs, work)
            done()

            done = phase("in-cluster Kafka and S3")
            c.apply((LOCAL / "infra.yaml").read_text())
            for app in ("kafka", "s3"):
                c.kubectl("rollout", "status", f"deployment/{app}", "--timeout=300s", timeout=320)
            done()

            done = phase("helm install --wait")
            c.helm("install", RELEASE, str(CHART), "-f", str(args.values), "--wait", "--timeout", "15m")
            n_ready, n_pods = ready_pods(c)
            if n_ready != n_pods:
                raise Failed(f"pods ready {n_ready}/{n_pods} after helm install --wait")
            summary["pods"] = f"pods ready {n_ready}/{n_pods}"
            say(summary["pods"])
            done()

            done = phase("dialogue through in-cluster Kafka")
            dialogue = submit_story(c, story, dirs["vispod-artifacts"])
            say(f"dialogue: {len(dialogue.dialogue.turns)} turns by {dialogue.model} ({dialogue.backend}), "
                f"adapter={dialogue.adapter_id or '(base)'}")
            summary["dialogue"] = "dialogue ok"
            done()
        done = phase("trainer Job publishes a signed adapter to S3")
        # The install-time Job is trainer-<hash of its spec>; helm install did not wait for it.
        c.kubectl("wait", "--for=condition=complete", "job", "-l", "app.kubernetes.io/name=trainer",
                  "--timeout=1200s", timeout=1230)
        keys = store_versions(c, s3)
        published = [m for m in adapter_events(c) if type(m).__name__ == "AdapterPublished"]
        if not published:
            raise Failed("the trainer Job completed but no AdapterPublished event is on the bus")
        adapter_id = published[-1].adapter_id
        name, _, version = adapter_id.partition("@")
        if f"vispod/adapters/{name}/{version}/signed.json" not in keys:
            raise Failed(f"no signed manifest in the store: {keys}")
        say(f"published {adapter_id}: {len(keys)} objects in s3://vispod-adapters/vispod/")
        done()

        done = phase("gate decides, generator serves")

        def lifecycle(actor: str) -> Any:
            states = [m for m in adapter_events(c) if type(m).__name__ == "AdapterLifecycleChanged"
                      and m.adapter_id == adapter_id and m.actor == actor]
            return states[-1] if states else None

        decision = wait(f"the gate's decision on {adapter_id}", lambda: lifecycle("gate"), 1500, every=10)
        # The gate alone decides (no admin command, no opened threshold): a rejection on the evidence fails the run.
        if decision.state != 3:  # ADAPTER_STATE_ACTIVE
            raise Failed(f"the gate did not promote {adapter_id} (state {decision.state}): {decision.reason}")
        say(f"the gate promoted {adapter_id}: {decision.reason}")
        summary["gate"] = f"the gate promoted it by itself ({decision.reason.split(';')[0]})"
        served = submit_story(c, story, dirs["vispod-artifacts"])
        if served.adapter_id != adapter_id:
            raise Failed(f"after promotion the generator served {served.adapter_id or '(base)'}, not {adapter_id}")
        summary["adapter"] = f"adapter {adapter_id} served"
        done()

        done = phase("helm upgrade with a changed value keeps it")
        # A changed generator value: its pods are replaced, and the new one must serve the promoted adapter.
        c.helm("upgrade", RELEASE, str(CHART), "-f", str(args.values), "--set",
               "generator.env.VISPOD_GENERATOR_MAX_NEW_TOKENS=170", "--wait", "--timeout", "10m")
        served = submit_story(c, story, dirs["vispod-artifacts"])
        if served.adapter_id != adapter_id:
            raise Failed(f"after helm upgrade the generator served {served.adapter_id or '(base)'}")
        done()

        done = phase("a deleted generator pod restores it")
        c.kubectl("delete", "pod", "-l", "app.kubernetes.io/name=generator", "--wait=true")
        c.kubectl("rollout", "status", "deployment/generator", "--timeout=600s", timeout=620)
        served = submit_story(c, story, dirs["vispod-artifacts"])
        if served.adapter_id != adapter_id:
            raise Failed(f"the new generator pod served {served.adapter_id or '(base)'}")
        summary["upgrade"] = "upgrade kept it"
        done()

        done = phase("TGI-style rollout")
        try:
            summary["rollout"] = tgi_rollout(c, args.node, [args.values, args.tgi_values], story,
                                             dirs["vispod-artifacts"], adapter_id)
        finally:
            advertise_gpus(args.node, False)
        done()

        done = phase("helm uninstall leaves nothing")
        c.helm("uninstall", RELEASE, "--wait", "--timeout", "5m")
        left = c.kubectl("get", "all,configmap,secret,pvc,role,rolebinding,serviceaccount,networkpolicy,pdb,hpa,"
                         "cronjob,job", "-l", f"app.kubernetes.io/instance={RELEASE}", "-o", "name").split()
        if left:
            raise Failed(f"helm uninstall left {left}")
        summary["uninstall"] = "uninstall clean"
        done()

        done = phase("GPU profile scheduling")
        summary["gpu"] = gpu_scheduling(args.node, args.values)
        done()
    except Failed as exc:
        say(f"FAILED: {exc}")
        say(f"timings: {json.dumps(timings)}")
        diagnose(c)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not args.keep:
            run("kubectl", "delete", "namespace", c.ns, "--ignore-not-found", "--wait=false", check=False)
            run("kubectl", "delete", "pv", "-l", f"vispod-e2e={c.ns}", "--ignore-not-found", check=False)
    say(f"timings: {json.dumps(timings)}, total {time.monotonic() - started:.0f} s")
    say(summary.get("gate", ""))
    print("k8s e2e: " + ", ".join(summary.get(k, f"{k} NOT RUN") for k in
                                  ("pods", "dialogue", "adapter", "upgrade", "rollout", "uninstall", "gpu")),
          flush=True)
    return 0


def advertise_gpus(node: str, on: bool) -> None:
    """The node's status says it has 4 nvidia.com/gpu (and carries the GPU pool's label), or no longer does."""
    op = [{"op": "add", "path": f"/status/{k}/nvidia.com~1gpu", "value": "4"} if on else
          {"op": "remove", "path": f"/status/{k}/nvidia.com~1gpu"} for k in ("capacity", "allocatable")]
    run("kubectl", "patch", "node", node, "--subresource=status", "--type=json", "-p", json.dumps(op), check=on)
    if on:
        run("kubectl", "label", "node", node, "nvidia.com/gpu.present=true", "--overwrite")
    else:
        run("kubectl", "label", "node", node, "nvidia.com/gpu.present-", check=False)


def tgi_rollout(c: Cluster, node: str, values: list[Path], story: Path, artifacts: Path, adapter_id: str) -> str:
    """serving.engine=tgi with a CPU engine that takes adapters only at start-up: the generator rolls the tgi
    Deployment (under the chart's Role) to serve the active adapter, and a later helm upgrade keeps the list."""
    advertise_gpus(node, True)
    files = [a for v in values for a in ("-f", str(v))]
    c.helm("upgrade", RELEASE, str(CHART), *files, "--wait", "--timeout", "10m")

    def lora_adapters() -> str:
        tgi = c.json("get", "deployment", "tgi")
        env = tgi["spec"]["template"]["spec"]["containers"][0].get("env", [])
        return next((e.get("value", "") for e in env if e["name"] == "LORA_ADAPTERS"), "")

    def rolled_out() -> bool:
        if adapter_id not in lora_adapters():
            return False
        status = c.json("get", "deployment", "tgi")["status"]
        return status.get("updatedReplicas") == status.get("replicas") == status.get("availableReplicas")

    wait(f"the generator to roll TGI out with {adapter_id}", rolled_out, 900, every=5)
    say(f"tgi Deployment rolled out by the generator: LORA_ADAPTERS={lora_adapters()}")
    served = submit_story(c, story, artifacts)
    if served.adapter_id != adapter_id or served.backend != "tgi":
        raise Failed(f"through TGI the generator served {served.adapter_id or '(base)'} on {served.backend}")
    say(f"dialogue through TGI: {len(served.dialogue.turns)} turns by {served.model} ({served.backend}), "
        f"adapter={served.adapter_id}")
    c.helm("upgrade", RELEASE, str(CHART), *files, "--set", "voice.env.VISPOD_VOICE_ENGINE=espeak", "--wait",
           "--timeout", "10m")
    if adapter_id not in lora_adapters():
        raise Failed(f"helm upgrade reset TGI's LORA_ADAPTERS to {lora_adapters()!r}")
    served = submit_story(c, story, artifacts)
    if served.adapter_id != adapter_id:
        raise Failed(f"after helm upgrade TGI served {served.adapter_id or '(base)'}")
    return "rollout ok"


def gpu_scheduling(node: str, values: Path) -> str:
    """The GPU profile on a node that advertises nvidia.com/gpu (capacity patched; the pods need not run): the
    trainer Job and the engine are scheduled where the chart says (GPU node selector, toleration, GPU limit)."""
    c = Cluster("vispod-e2e-gpu")
    advertise_gpus(node, True)
    try:
        run("kubectl", "delete", "namespace", c.ns, "--ignore-not-found", "--wait=true", timeout=300)
        run("kubectl", "create", "namespace", c.ns)
        run("kubectl", "delete", "pv", "-l", f"vispod-e2e={c.ns}", "--ignore-not-found", timeout=120)
        make_volumes(c)
        # Only the two GPU workloads matter here; the CUDA tags need not exist (nothing is pulled, nothing runs).
        # Placement is under test (GPU node selector, toleration, GPU limit), not size: TGI's GPU-node requests
        # (2 CPUs, 24 GiB) exceed this 2-core, 23 GiB node, so they are scaled down to fit beside the control plane.
        c.helm("install", "vispod", str(CHART), "-f", str(values), "-f", str(CHART / "ci" / "gpu-values.yaml"),
               "--set", "synth.enabled=false,judge.enabled=false,metrics.enabled=false,voice.enabled=false,"
               "gate.enabled=false,generator.enabled=false,trainer.cronJob.enabled=false,"
               "tgi.resources.requests.cpu=100m,tgi.resources.requests.memory=512Mi")

        def scheduled() -> dict[str, str]:
            placed = {}
            for pod in c.pods():
                app = pod["metadata"]["labels"].get("app.kubernetes.io/name", "")
                conds = {x["type"]: x["status"] for x in pod["status"].get("conditions", [])}
                if app in ("trainer", "tgi") and conds.get("PodScheduled") == "True":
                    limits = pod["spec"]["containers"][0]["resources"].get("limits", {})
                    if pod["spec"].get("nodeName") == node and limits.get("nvidia.com/gpu") == "1":
                        placed[app] = pod["metadata"]["name"]
            return placed if set(placed) == {"trainer", "tgi"} else {}

        placed = wait("the trainer Job and TGI on the GPU node", scheduled, 120)
        say(f"GPU profile: {placed} scheduled on {node} with nvidia.com/gpu: 1")
        c.helm("uninstall", "vispod", "--wait", "--timeout", "5m")
        return "gpu scheduling ok"
    finally:
        run("kubectl", "delete", "namespace", c.ns, "--ignore-not-found", "--wait=false", check=False)
        run("kubectl", "delete", "pv", "-l", f"vispod-e2e={c.ns}", "--ignore-not-found", check=False)
        advertise_gpus(node, False)


def diagnose(c: Cluster) -> None:
    print(c.kubectl("get", "pods,jobs", "-o", "wide", check=False), flush=True)
    for pod in c.pods():
        if not ready(pod) and pod["status"].get("phase") != "Succeeded":
            name = pod["metadata"]["name"]
            print(f"--- {name}", flush=True)
            print(c.kubectl("describe", "pod", name, check=False)[-2500:], flush=True)
            print(c.kubectl("logs", name, "--all-containers", "--tail=40", check=False), flush=True)


if __name__ == "__main__":
    sys.exit(main())

"""Effective settings of one MiniMaxDeployment, and the checks of its layout and storage.

Why: defaults that depend on the preset cannot live in the CRD, and the operator
never writes them back to spec (GitOps tools would see drift). Everything the
render layer needs is resolved here once, and every layout mistake that would only
show up hours later as a crashing vLLM pod is caught here, before any GPU or
byte of storage is requested.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass

from ..api.presets import PRESETS, Preset
from ..api.v1alpha1 import NAME_MAX, NAME_PATTERN, NAME_RULE_MESSAGE, MiniMaxDeploymentSpec, MiniMaxModelCacheSpec
from ..protocol import MODELS_MOUNT, legacy_folder
from . import layout as layouts
from .errors import LayoutError, PodSecurityRefused
from .layout import GB, GIB, Layout
from .model_cache import storage_size


def server_root(service: str, namespace: str) -> str:
    """The URL of a resource's server inside the cluster (its Service, port 8000)."""
    return f"http://{service}.{namespace}.svc.cluster.local:8000"


@dataclass(frozen=True)
class Resolved:
    """Effective settings of one MiniMaxDeployment."""

    name: str
    namespace: str
    spec: MiniMaxDeploymentSpec
    preset: Preset | None
    repo: str
    revision: str | None
    served_model_name: str
    tensor_parallel_size: int
    expert_parallel: bool
    image: str
    flags: tuple[str, ...]
    max_model_len: int | None
    startup_timeout_seconds: int
    storage_size: str
    claim_name: str
    model_dir: str
    #: Access mode of the weights claim: the spec's, or the existing claim's once observed.
    claim_access_mode: str | None = None
    #: The download settings of the weights served (the cache's), part of the weights' identity.
    allow_patterns: tuple[str, ...] = ()
    endpoint_url: str | None = None
    #: Other MiniMaxDeployments whose servers share this ReadWriteOnce claim (pinned to one node).
    claim_neighbours: tuple[str, ...] = ()
    #: The MiniMaxModelCache the weights come from.
    cache: str | None = None
    #: The Pod Security level the server's pods meet: the spec's, else what the namespace enforces.
    pod_security: str = "baseline"
    #: How one replica is laid out (tensor x pipeline over nodes); tensor_parallel_size is its tensor.
    layout: Layout = Layout(tensor=1)  # noqa: RUF009 (frozen: one shared default is safe)
    #: Where ChatOS sends requests when not to the Service: KEDA's HTTP add-on, for a model that parks.
    chatos_root: str | None = None

    @property
    def weights_path(self) -> str:
        """Folder of the weights, relative to the claim's root."""
        return self.model_dir.removeprefix(f"{MODELS_MOUNT}/")

    @property
    def model_label(self) -> str:
        return self.preset.name if self.preset else self.repo

    @property
    def service_name(self) -> str:
        return self.name

    @property
    def base_url(self) -> str:
        """Server root, as ChatOS wants it (it appends the OpenAI path itself)."""
        return server_root(self.service_name, self.namespace)

    @property
    def chatos_base_url(self) -> str:
        """The base_url of the model's ChatOS entry."""
        return self.chatos_root or self.base_url

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def weights_key(self) -> str:
        """Identity of the weights served (on the server's pod template: a change rolls it).

        A commit's folder names its bytes; the one folder of releases before model caches
        did not, so there the repo, revision and download settings stand in, exactly as
        those releases wrote it (an upgrade must not roll a server for nothing).
        """
        if self.weights_path.startswith("revisions/"):
            return hashlib.sha256(json.dumps([self.claim_name, self.model_dir]).encode()).hexdigest()[:10]
        blob = json.dumps(
            [
                self.repo,
                self.revision or "main",
                sorted(self.allow_patterns),
                self.endpoint_url,
                self.claim_name,
                self.model_dir,
            ]
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class WeightsSource:
    """Where a MiniMaxDeployment's weights come from, as its MiniMaxModelCache reports them."""

    cache: str
    spec: MiniMaxModelCacheSpec
    claim_name: str
    access_mode: str | None = None
    #: Folder of the verified commit, relative to the claim's root; None before one is verified.
    path: str | None = None


def resolve(
    name: str,
    namespace: str,
    spec: MiniMaxDeploymentSpec,
    vllm_images: dict[str, str] | None = None,
    weights: WeightsSource | None = None,
    enforced: str | None = None,
) -> Resolved:
    """Effective settings, or LayoutError naming the field to change.

    `weights`: the cache the resource serves from (its repo and claim win); without it (offline
    render, a resource whose cache is not known yet) the resource's own spec stands in.
    `enforced`: the Pod Security level the namespace enforces (its label), when known.
    """
    if len(name) > NAME_MAX or not re.match(NAME_PATTERN, name):
        raise LayoutError("metadata.name", NAME_RULE_MESSAGE.removeprefix("metadata.name "))
    model = spec.model or (weights.spec.model if weights and not spec.repo else None)
    preset = PRESETS.get(model) if model else None
    repo = spec.repo or (preset.repo if preset else "")
    if not repo and weights:
        repo = weights.spec.repo or ""
    if not repo:
        if spec.cacheRef:
            raise LayoutError("cacheRef", f"MiniMaxModelCache {spec.cacheRef.name} is not known yet")
        raise LayoutError("model", "set a preset in spec.model or a Hugging Face repo in spec.repo")
    if weights is not None:
        cache_repo = weights.spec.repo or (PRESETS[weights.spec.model].repo if weights.spec.model else "")
        if cache_repo != repo:
            raise LayoutError(
                "cacheRef",
                f"MiniMaxModelCache {weights.cache} holds {cache_repo}, but this resource serves {repo}: "
                "name a cache of the same repo",
            )
    lay = layouts.layout(spec, preset)
    tp = lay.tensor
    ep = spec.expertParallel if spec.expertParallel is not None else (preset.expert_parallel if preset else False)
    image = (
        spec.vllm.image
        or (vllm_images or {}).get(preset.name if preset else "", "")
        or (preset.vllm_image if preset else "")
    )
    if not image:
        raise LayoutError("vllm.image", "a custom repo needs an explicit vLLM image")
    served = spec.servedModelName or (preset.name if preset else repo.split("/", 1)[1])
    if weights is not None:
        source = weights.spec
        claim, mode, revision = weights.claim_name, weights.access_mode, source.revision
        size = ""
    else:
        source = MiniMaxModelCacheSpec(storage=spec.storage, download=spec.download, revision=spec.revision)
        claim = spec.storage.existingClaim or f"{name}-weights"
        mode = None if spec.storage.existingClaim else layouts.storage(spec, preset).accessMode
        revision = spec.revision
        size = "" if spec.cacheRef else storage_size(preset, spec)
    folder = weights.path if weights is not None and weights.path else legacy_folder(repo)
    resolved = Resolved(
        name=name,
        namespace=namespace,
        spec=spec,
        preset=preset,
        repo=repo,
        revision=revision,
        served_model_name=served,
        tensor_parallel_size=tp,
        expert_parallel=ep,
        image=image,
        flags=preset.flags if preset else (),
        max_model_len=spec.maxModelLen,
        startup_timeout_seconds=spec.vllm.startupTimeoutSeconds or (preset.startup_timeout_seconds if preset else 3600),
        storage_size=size,
        claim_name=claim,
        model_dir=f"{MODELS_MOUNT}/{folder}",
        claim_access_mode=mode,
        allow_patterns=tuple(source.download.allowPatterns),
        endpoint_url=source.download.endpoint,
        cache=weights.cache if weights is not None else None,
        pod_security=pod_security(spec, namespace, enforced),
        layout=lay,
    )
    check_layout(resolved)
    if mode:
        check_storage(resolved, [mode])
    return resolved


#: A replica over several nodes is a LeaderWorkerSet of this name (the server's Service keeps the
#: resource's name; LWS gives its own headless Service the LeaderWorkerSet's).
GROUP_SUFFIX = "-group"
#: LWS names StatefulSets NAME-GROUP and labels their pods with NAME-GROUP-<10-char hash>: 63 at most.
MULTI_NODE_NAME_MAX = 63 - len(GROUP_SUFFIX) - len("-99-") - 10

#: The namespace label Pod Security admission enforces.
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"


def pod_security(spec: MiniMaxDeploymentSpec, namespace: str, enforced: str | None) -> str:
    """The level the server's pods meet: the spec's, else restricted where the namespace enforces it.

    Raises PodSecurityRefused for a spec whose pods the namespace would refuse: they would be
    refused only after the weights are in (hundreds of GB, hours).
    """
    level = spec.vllm.podSecurity or ("restricted" if enforced == "restricted" else "baseline")
    if enforced == "restricted" and level != "restricted":
        raise PodSecurityRefused(
            "vllm.podSecurity",
            f"namespace {namespace} enforces Pod Security restricted ({ENFORCE_LABEL}), which refuses a baseline "
            "server (it runs as the image's user, root in the upstream images); set spec.vllm.podSecurity: "
            "restricted (or leave it out) with an image that runs as any user",
        )
    return level


def check_storage(r: Resolved, access_modes: list[str]) -> None:
    """Raise LayoutError when the claim's access modes cannot carry the replicas.

    What each mode allows (Kubernetes, with block storage such as EBS, PD, Ceph RBD):
    ReadWriteMany: any pods on any nodes. ReadWriteOnce: any pods, but on one node at a
    time; a pod on a second node never starts (Multi-Attach), so every replica must fit
    on one node (the operator pins them there). ReadWriteOncePod: one pod at all, so one
    replica, no download Job beside the server, no rolling update.
    """
    tp, per_node = r.layout.gpus, r.spec.gpu.perNode
    # With autoscaling, the most replicas KEDA may set must fit too: refused now, not at the peak.
    replicas = max(r.spec.replicas, r.spec.autoscaling.maxReplicas if r.spec.autoscaling else 0)
    field = "storage.existingClaim" if r.spec.storage.existingClaim else "storage.accessMode"
    if "ReadWriteMany" in access_modes:
        return
    if r.layout.multi_node and access_modes:
        raise LayoutError(
            field,
            f"a replica spans {r.layout.nodes} nodes (a LeaderWorkerSet group) and each of its pods mounts the "
            f"weights, but the claim is {', '.join(access_modes)}, which attaches to one node (or one pod); use a "
            "ReadWriteMany storage class and accessMode (one download then serves the whole group)",
        )
    if "ReadWriteOnce" in access_modes:
        if replicas * tp > per_node:
            raise LayoutError(
                field,
                f"a ReadWriteOnce claim attaches to one node, so all {replicas} replicas x {tp} GPUs must fit on "
                f"one node of {per_node} GPUs (spec.gpu.perNode); a replica on a second node would never start "
                f"(Multi-Attach). Use a ReadWriteMany storage class and accessMode, or at most "
                f"{per_node // tp} replicas",
            )
        return
    if "ReadWriteOncePod" in access_modes and r.spec.rollout.maxSurge:
        raise LayoutError(
            "rollout.maxSurge",
            "a ReadWriteOncePod claim allows one pod at a time, so no server can start beside the old one; "
            "use ReadWriteOnce or ReadWriteMany, or rollout.maxSurge 0",
        )
    if "ReadWriteOncePod" in access_modes and replicas > 1:
        raise LayoutError(
            field,
            f"a ReadWriteOncePod claim allows one pod at a time, so at most 1 replica (spec.replicas or "
            f"spec.autoscaling.maxReplicas is {replicas}); "
            "use ReadWriteOnce for replicas on one node or ReadWriteMany for replicas on several nodes",
        )
    if access_modes and not {"ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"} & set(access_modes):
        raise LayoutError(
            field, f"the claim's access modes {access_modes} do not allow the download Job to write the weights"
        )


def check_layout(r: Resolved) -> None:
    """Raise LayoutError for a layout vLLM cannot serve on the declared GPUs."""
    spec, p, tp, lay = r.spec, r.preset, r.tensor_parallel_size, r.layout
    gpus = spec.gpu.perNode
    per_pod = lay.gpus_per_pod
    if not per_pod:
        raise LayoutError(
            "nodes",
            f"tensorParallelSize x pipelineParallelSize x dataParallelSize = {lay.gpus} GPUs cannot be split "
            f"evenly over {lay.nodes} nodes (spec.nodes)",
        )
    if per_pod > gpus or gpus % per_pod:
        if lay.multi_node:
            raise LayoutError(
                "nodes",
                f"{lay.gpus} GPUs per replica over {lay.nodes} nodes is {per_pod} GPUs a node, which nodes with "
                f"{gpus} GPUs (spec.gpu.perNode) cannot hold; use more nodes",
            )
        raise LayoutError(
            "tensorParallelSize",
            f"{lay.gpus} GPUs per replica cannot be placed on nodes with {gpus} GPUs (spec.gpu.perNode); "
            f"use a tensorParallelSize that divides {gpus}, or spec.nodes (and pipelineParallelSize) for a "
            "replica over several nodes",
        )
    if lay.data > 1 and lay.multi_node:
        raise LayoutError(
            "dataParallelSize",
            "data parallelism runs on one node: over several nodes it is not offered; use spec.replicas for more "
            "copies of a replica over several nodes",
        )
    if lay.multi_node and len(r.name) > MULTI_NODE_NAME_MAX:
        raise LayoutError(
            "metadata.name",
            f"a replica over several nodes is a LeaderWorkerSet named {r.name}{GROUP_SUFFIX}, whose StatefulSets "
            f"and pods carry the name in 63-character labels: use a name of at most {MULTI_NODE_NAME_MAX} characters",
        )
    if p is None:
        return
    if p.moe_intermediate_size and p.fp8_block_size and not r.expert_parallel:
        shard = p.moe_intermediate_size / tp
        if shard % p.fp8_block_size:
            raise LayoutError(
                "tensorParallelSize",
                f"{p.name} cannot use plain tensorParallelSize {tp}: its expert width {p.moe_intermediate_size}/{tp} "
                f"is not a multiple of the FP8 block size {p.fp8_block_size}; use tensorParallelSize "
                f"{p.tensor_parallel_size} or set spec.expertParallel: true",
            )
    vram_gib = spec.gpu.memoryGiB * lay.gpus
    util = spec.gpuMemoryUtilization or 0.9
    need_gib = p.weights_vram_gb * GB / GIB
    if not layouts.fits(p, spec, lay.gpus):
        raise LayoutError(
            "tensorParallelSize",
            f"{p.name} needs about {math.ceil(need_gib)} GiB of GPU memory for its weights alone, but "
            f"{lay.gpus} x {spec.gpu.memoryGiB} GiB at {util:.0%} utilization gives {math.floor(vram_gib * util)} "
            "GiB; use more GPUs per replica (tensorParallelSize, pipelineParallelSize, spec.nodes, or leave them "
            "out for the operator to choose), larger GPUs (spec.gpu.memoryGiB) or a smaller checkpoint",
        )
    if spec.maxModelLen and spec.maxModelLen > p.max_model_len:
        raise LayoutError(
            "maxModelLen", f"{spec.maxModelLen} exceeds {p.name}'s context length of {p.max_model_len} tokens"
        )

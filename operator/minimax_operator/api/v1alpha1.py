"""The v1alpha1 API (MiniMaxDeployment, MiniMaxModelCache, MiniMaxPolicy): the single source of truth for the CRDs.

Field names are the ones users write in YAML (camelCase). Constraints that the
API server can check live here as schema keywords or CEL rules, so that
`kubectl apply` rejects a bad spec and names the field; manifests/crd.py turns these
models into the CRDs. Defaults that depend on the preset are resolved by the
operator (model/) and shown in status, never written back to spec.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.config import JsonDict

from . import flags
from .presets import PRESET_NAMES

#: A resource's name names its Service, Deployment and labels: a DNS-1035 label.
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_MAX = 63
NAME_RULE_MESSAGE = (
    "metadata.name must be a DNS-1035 label (at most 63 lowercase letters, digits and '-', starting with a letter "
    "and ending with a letter or digit), because it names the model's Service, Deployment and labels: "
    "write minimax-m2-5, not minimax-m2.5"
)
QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
#: A quantity greater than zero (a zero-sized claim or /dev/shm can only fail later).
POSITIVE_QUANTITY = r"^([0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
#: An environment variable's name, as the API server has long required it.
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def cel(rule: str, message: str, field_path: str | None = None) -> JsonDict:
    """One x-kubernetes-validations entry."""
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


#: CRD default for nested objects, so that their own field defaults apply when omitted.
_EMPTY: dict[str, Any] = {"default": {}}


class _Model(BaseModel):
    # Unknown fields are an error here as in the CRD (structural schema prunes them).
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


Quantity = Annotated[int | str, Field(json_schema_extra={"x-kubernetes-int-or-string": True})]
#: A Hugging Face repository, org/name.
#: By the Hub's rules (huggingface_hub's validate_repo_id): no '--' or '..', no '-' or '.' at either end.
Repo = Annotated[
    str, Field(max_length=200, pattern=r"^[A-Za-z0-9]([-.]?[A-Za-z0-9_])*/[A-Za-z0-9]([-.]?[A-Za-z0-9_])*$")
]
#: A commit sha, branch or tag.
Revision = Annotated[str, Field(max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")]


class SecretKeyRef(_Model):
    """A key of a Secret in the resource's namespace."""

    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN, description="Name of the Secret.")
    key: str = Field(default="token", max_length=253, description="Key in the Secret's data.")


class EnvVar(_Model):
    """An environment variable for the vLLM container, as in a Pod spec."""

    name: str = Field(min_length=1, max_length=256, pattern=ENV_NAME, description="Variable name.")
    value: str | None = Field(default=None, description="Literal value.")
    valueFrom: dict[str, Any] | None = Field(
        default=None,
        description="Source of the value (secretKeyRef, configMapKeyRef, fieldRef), as in a Pod spec.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True, "type": "object"},
    )


class Toleration(_Model):
    """A Pod toleration."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: int | None = None


class Resources(_Model):
    """Extra CPU and memory for the vLLM container. The GPU count is not set here:
    it always equals tensorParallelSize."""

    requests: dict[str, Quantity] = Field(default_factory=dict, max_length=16)
    limits: dict[str, Quantity] = Field(default_factory=dict, max_length=16)


class VLLMSpec(_Model):
    """How the vLLM server runs."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(flags.cel_rule(), flags.cel_message(), ".extraArgs"),
                cel(flags.env_cel_rule(), flags.env_cel_message(), ".env"),
                cel(
                    "!has(self.resources) || ("
                    "(!has(self.resources.limits) || !self.resources.limits.exists(k, k.endsWith('/gpu'))) && "
                    "(!has(self.resources.requests) || !self.resources.requests.exists(k, k.endsWith('/gpu'))))",
                    "resources must not set a GPU count: it always equals spec.tensorParallelSize",
                    ".resources",
                ),
            ]
        },
    )

    image: str | None = Field(
        default=None,
        max_length=512,
        description="vLLM image. Defaults to the preset's tested vllm/vllm-openai tag.",
    )
    extraArgs: list[Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=list,
        max_length=64,
        description="Extra `vllm serve` arguments, appended after the preset's flags.",
    )
    env: list[EnvVar] = Field(default_factory=list, max_length=64, description="Extra environment variables.")

    @field_validator("env")
    @classmethod
    def _no_owned_env(cls, env: list[EnvVar]) -> list[EnvVar]:
        """The CRD's rule, again: for render and for objects stored before the rule existed."""
        for e in env:
            if e.name in flags.OWNED_ENV:
                raise ValueError(f"env {e.name} is set by the operator ({flags.OWNED_ENV[e.name]})")
        return env

    @field_validator("extraArgs")
    @classmethod
    def _no_owned_flags(cls, args: list[str]) -> list[str]:
        """The CRD's rule, again: for render and for objects stored before the rule existed."""
        for arg in args:
            owned = flags.owned_flag(arg)
            if owned:
                raise ValueError(f"{arg!r} sets {owned}, which the operator owns ({flags.OWNED_LONG[owned]})")
        return args

    resources: Resources | None = Field(default=None, description="CPU and memory requests and limits.")
    nodeSelector: dict[str, str] = Field(default_factory=dict, description="Node labels the server pods need.")
    tolerations: list[Toleration] = Field(
        default_factory=list,
        description="Tolerations, added to the default toleration of the GPU resource's taint.",
    )
    podAnnotations: dict[str, str] = Field(default_factory=dict, description="Annotations on the server pods.")
    shmSize: str = Field(default="16Gi", pattern=POSITIVE_QUANTITY, description="Size of /dev/shm (memory-backed).")
    podSecurity: Literal["baseline", "restricted"] | None = Field(
        default=None,
        description="Pod Security level the server pods meet. baseline: the image's own user (root in the upstream "
        "vllm/vllm-openai images). restricted: uid 1000, no privilege escalation, no capabilities, RuntimeDefault "
        "seccomp, with HOME (vLLM's and Triton's caches) on an emptyDir; needs an image that runs as any user. "
        "Defaults to restricted in a namespace that enforces Pod Security restricted, else baseline; baseline in "
        "such a namespace is refused before anything is downloaded.",
    )
    startupTimeoutSeconds: int | None = Field(
        default=None,
        ge=60,
        le=6 * 3600,
        description="How long the server may take to load the weights before the startup probe "
        "restarts it. Defaults to the preset's (1 h for M2.x, 2 h for M1 and M3).",
    )


class StorageSpec(_Model):
    """Where the weights live."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!(has(self.existingClaim) && has(self.size))",
                    "size and existingClaim are exclusive: an existing claim keeps its own size",
                    ".existingClaim",
                ),
            ]
        },
    )

    size: str | None = Field(
        default=None,
        pattern=POSITIVE_QUANTITY,
        description="PVC size. Defaults to the checkpoint's size plus 20% headroom.",
    )
    storageClassName: str | None = Field(default=None, max_length=253, description="Storage class of the PVC.")
    accessMode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"] = Field(
        default="ReadWriteOnce",
        description="ReadWriteMany lets replicas on several nodes share one copy of the weights. Default "
        "ReadWriteOnce, or ReadWriteMany for a replica over several nodes (spec.nodes).",
        # Applied by the operator, not the API server, which would store it as if the user had set it.
        json_schema_extra={"x-minimax-no-crd-default": True},
    )
    existingClaim: str | None = Field(
        default=None, max_length=253, pattern=DNS_SUBDOMAIN, description="Use this PVC instead of creating one."
    )
    retainOnDelete: bool = Field(
        default=True,
        description="Keep the PVC (and its downloaded weights) when the MiniMaxModelCache that holds them is "
        "deleted. The cache outlives the MiniMaxDeployments that use it; false makes the claim the cache's, "
        "deleted with it.",
    )


#: A mirror at a link-local address is a cloud metadata service, never a Hub (and the token would be
#: sent there): 169.254.0.0/16, fe80::/10, and a host written as one number (2852039166 is
#: 169.254.169.254 to the resolver). A regular expression, the same in CEL (RE2) and here: the
#: CEL URL and IP libraries cost more than a CRD's budget allows.
LINK_LOCAL_URL = r"(?i)^https?://([^/@]*@)?(169\.254\.|\[fe[89ab][0-9a-f]:|(0x[0-9a-f]+|[0-9]+)(:[0-9]*)?(/|$))"

#: A mirror on loopback (127.0.0.0/8, ::1, ::, 0.0.0.0, localhost): from a download pod that is the
#: pod itself, and from a pod with the host's network the node's own services. A development cluster
#: may mean it (a Hub beside the node); a shared one never does, so a namespace bound to a MiniMaxPolicy
#: is refused it unless the policy says allowLoopbackMirrors (manifests/policy.py).
LOOPBACK_URL = (
    r"(?i)^https?://([^/@]*@)?(localhost\.?(:[0-9]*)?(/|$)|127\.|0\.0\.0\.0(:[0-9]*)?(/|$)|"
    r"\[[0:]*(:0*1)?\](:[0-9]*)?(/|$)|\[::ffff:(127\.|7f))"
)


class DownloadSpec(_Model):
    """How the weights are fetched."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"!has(self.endpoint) || !self.endpoint.matches('{LINK_LOCAL_URL.replace(chr(92), chr(92) * 2)}')",
                    "endpoint must not be a link-local address (169.254.0.0/16, fe80::/10, or a host written as "
                    "one number): that is a cloud metadata service, not a Hugging Face mirror",
                    ".endpoint",
                ),
            ]
        },
    )

    @field_validator("endpoint")
    @classmethod
    def _not_link_local(cls, endpoint: str | None) -> str | None:
        """The CRD's rule, again: for render and for objects stored before the rule existed."""
        if endpoint and re.match(LINK_LOCAL_URL, endpoint):
            raise ValueError(f"{endpoint} is a link-local address (a cloud metadata service), not a mirror")
        return endpoint

    endpoint: str | None = Field(
        default=None,
        max_length=512,
        pattern=r"^https?://[^\s]+$",
        description="Hugging Face Hub mirror (HF_ENDPOINT), for example https://hf-mirror.com.",
    )
    tokenSecretRef: SecretKeyRef | None = Field(
        default=None, description="Secret holding a Hugging Face token, for gated or private repositories."
    )
    allowPatterns: list[Annotated[str, Field(max_length=512)]] = Field(
        default_factory=list, max_length=64, description="Only files matching these globs are downloaded."
    )
    deadlineSeconds: int | None = Field(
        default=None,
        ge=60,
        description="Give a download pod this long in all; past it the pod ends with DeadlineExceeded and the "
        "Job's next pod resumes (the Job's retries bound the whole). Without it only a stall ends a pod: under "
        "16 KiB/s for 10 minutes, a mirror that trickles included.",
    )
    podAnnotations: dict[str, str] = Field(default_factory=dict, description="Annotations on the download pod.")


class ConfigMapRef(_Model):
    """A ConfigMap, in the resource's namespace unless the platform allows another."""

    name: str = Field(
        default="chatos-models", max_length=253, pattern=DNS_SUBDOMAIN, description="Name of the ConfigMap."
    )
    namespace: str | None = Field(
        default=None,
        max_length=63,
        pattern=DNS_LABEL,
        description="Namespace of a shared ChatOS ConfigMap; the operator must be started with "
        "--allow-chatos-namespace for it.",
    )


class ChatOSSpec(_Model):
    """Registration of the served model in ChatOS's models.json."""

    enabled: bool = Field(default=True, description="Register the model in ChatOS.")
    configMapRef: ConfigMapRef = Field(
        default_factory=ConfigMapRef, description="ChatOS's models ConfigMap.", json_schema_extra=_EMPTY
    )
    key: str = Field(
        default="models.json",
        max_length=253,
        # A ConfigMap key: these characters, and not '.', '..' or starting with '..' (the API's rule).
        pattern=r"^([-_a-zA-Z0-9][-._a-zA-Z0-9]*|\.[-_a-zA-Z0-9][-._a-zA-Z0-9]*)$",
        description="Key of the ConfigMap that holds models.json.",
    )
    displayName: str | None = Field(
        default=None, max_length=128, description="Name shown in ChatOS. Defaults to the served model name."
    )


class CacheRef(_Model):
    """A MiniMaxModelCache in the resource's namespace."""

    name: str = Field(max_length=63, pattern=NAME_PATTERN, description="Name of the MiniMaxModelCache.")


class GPUSpec(_Model):
    """The GPUs of the nodes the server runs on, for the layout checks."""

    resourceName: str = Field(default="nvidia.com/gpu", max_length=253, description="Extended resource of a GPU.")
    perNode: int = Field(default=8, ge=1, le=16, description="GPUs per node.")
    memoryGiB: int = Field(default=80, ge=8, le=1024, description="Memory of one GPU, in GiB.")


#: GPUs per replica and nodes, in CEL (as model/layout.py counts them).
_WORLD = (
    "(self.tensorParallelSize * (has(self.pipelineParallelSize) ? self.pipelineParallelSize : 1) * "
    "(has(self.dataParallelSize) ? self.dataParallelSize : 1))"
)
_NODES = "(has(self.nodes) ? self.nodes : 1)"


class RolloutSpec(_Model):
    """How a spec change replaces the servers."""

    maxSurge: int = Field(
        default=0,
        ge=0,
        le=16,
        description="Servers (or groups over several nodes) started beside the old ones during a rollout. 0 (the "
        "default): one old server stops before its new one starts, so a rollout never needs GPUs the replicas do "
        "not hold, and never waits on a full cluster. Above 0: the old servers keep serving until the new ones are "
        "ready, on spare GPUs.",
    )


class AutoscalingTarget(_Model):
    """vLLM's own signals, per replica, that add a replica when exceeded (KEDA's Prometheus triggers)."""

    waitingRequests: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="Requests waiting in vLLM's queue per replica (vllm:num_requests_waiting) above which a "
        "replica is added. Default 4 when kvCacheUsage is not set either.",
    )
    kvCacheUsage: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="KV-cache use per replica, 0 to 1 (vllm:kv_cache_usage_perc), above which a replica is added.",
    )


class AutoscalingSpec(_Model):
    """Replicas between minReplicas and maxReplicas, on vLLM's signals, by KEDA (a ScaledObject on this resource)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.minReplicas <= self.maxReplicas",
                    "spec.autoscaling.minReplicas must not exceed spec.autoscaling.maxReplicas",
                    ".minReplicas",
                ),
            ]
        },
    )

    minReplicas: int = Field(
        default=1,
        ge=0,
        le=64,
        description="Fewest replicas. 0 parks the model after idleSeconds without requests (GPUs freed, weights and "
        "the ChatOS entry kept); the next request wakes it, held by KEDA's HTTP add-on until a server is ready.",
    )
    maxReplicas: int = Field(
        ge=1,
        le=64,
        description="Most replicas; the namespace's GPU ResourceQuota can lower it (status.autoscaling says so).",
    )
    target: AutoscalingTarget = Field(
        default_factory=AutoscalingTarget, description="Per-replica targets.", json_schema_extra=_EMPTY
    )
    scaleDownDelaySeconds: int = Field(
        default=600,
        ge=0,
        le=86400,
        description="How long the signals must stay low before a replica is removed. A server takes minutes to "
        "start: removing one on a short lull costs a cold start on the next peak.",
    )
    idleSeconds: int = Field(
        default=1800,
        ge=60,
        le=604800,
        description="With minReplicas 0: how long without a request (none running, none waiting) before the model "
        "parks.",
    )
    wakeTimeoutSeconds: int = Field(
        default=900,
        ge=30,
        le=3600,
        description="With minReplicas 0: how long a request to a parked model is held while a server starts, before "
        "it is answered 502. Longer than the model's start (status.autoscaling.lastStartSeconds).",
    )

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingSpec:
        # The CRD's CEL rule, for offline render and tests.
        if self.minReplicas > self.maxReplicas:
            raise ValueError("spec.autoscaling.minReplicas must not exceed spec.autoscaling.maxReplicas")
        return self


class MetricsSpec(_Model):
    """How the servers' /metrics are scraped."""

    serviceMonitor: bool = Field(
        default=True,
        description="Create a ServiceMonitor (Prometheus operator) for the server's Service when its API exists. "
        "The Service carries prometheus.io/scrape annotations either way.",
    )


class MiniMaxDeploymentSpec(_Model):
    """A MiniMax model served by vLLM and registered in ChatOS."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.model) || has(self.repo) || has(self.cacheRef)",
                    "set spec.model to a preset ("
                    + ", ".join(PRESET_NAMES)
                    + "), spec.repo to a Hugging Face repo, or spec.cacheRef to a MiniMaxModelCache",
                    ".model",
                ),
                cel(
                    "!has(self.cacheRef) || !has(self.revision)",
                    "spec.revision cannot be set with spec.cacheRef: the cache's spec.revision decides the weights",
                    ".revision",
                ),
                cel(
                    "!has(self.cacheRef) || (!has(self.storage.size) && !has(self.storage.existingClaim) && "
                    "!has(self.storage.storageClassName))",
                    "spec.storage cannot set size, storageClassName or existingClaim with spec.cacheRef: "
                    "the cache's spec.storage decides where the weights live",
                    ".storage",
                ),
                cel(
                    "!has(self.cacheRef) || (!has(self.download.endpoint) && !has(self.download.tokenSecretRef) && "
                    "!has(self.download.deadlineSeconds) && "
                    "(!has(self.download.allowPatterns) || size(self.download.allowPatterns) == 0))",
                    "spec.download cannot be set with spec.cacheRef: the cache's spec.download decides how the "
                    "weights are fetched",
                    ".download",
                ),
                cel(
                    f"!has(self.tensorParallelSize) || ({_WORLD} % {_NODES} == 0 && "
                    f"self.gpu.perNode % ({_WORLD} / {_NODES}) == 0)",
                    "tensorParallelSize x pipelineParallelSize x dataParallelSize must split evenly over spec.nodes, "
                    "and each node's share must divide spec.gpu.perNode (GPUs per node)",
                    ".tensorParallelSize",
                ),
                cel(
                    "!has(self.dataParallelSize) || self.dataParallelSize == 1 || !has(self.nodes) || self.nodes == 1",
                    "dataParallelSize above 1 runs on one node: data parallelism over several nodes is not offered "
                    "(use replicas for more copies)",
                    ".dataParallelSize",
                ),
                cel(
                    "!has(self.nodes) || self.nodes == 1 || has(self.tensorParallelSize)",
                    "spec.nodes above 1 needs spec.tensorParallelSize (and spec.pipelineParallelSize) to say how the "
                    "replica is split; leave all three out and the operator chooses from the model's size",
                    ".nodes",
                ),
            ]
        },
    )

    model: Literal[PRESET_NAMES] | None = Field(  # type: ignore[valid-type]
        default=None, description="A MiniMax preset. Sets the repo, flags, layout and storage defaults."
    )
    repo: Repo | None = Field(
        default=None,
        description="Hugging Face repository (org/name). Overrides the preset's; required without a preset.",
    )
    revision: Revision | None = Field(
        default=None,
        description="Commit sha, branch or tag. Defaults to main; the resolved commit is shown in status.",
    )
    servedModelName: str | None = Field(
        default=None,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
        description="Name vLLM serves and ChatOS's model_id. Defaults to the preset name or the repo's name.",
    )
    tensorParallelSize: Literal[1, 2, 4, 8, 16] | None = Field(
        default=None, description="GPUs per replica (the pods' GPU limit). Defaults to the preset's."
    )
    expertParallel: bool | None = Field(
        default=None, description="Pass --enable-expert-parallel. Needed for TP8 on MiniMax-M2.x."
    )
    pipelineParallelSize: int | None = Field(
        default=None,
        ge=1,
        le=16,
        description="Pipeline stages of one replica (vLLM's --pipeline-parallel-size); GPUs per replica = "
        "tensorParallelSize x pipelineParallelSize. Default 1, or the operator's choice (see nodes).",
    )
    dataParallelSize: int | None = Field(
        default=None,
        ge=1,
        le=16,
        description="vLLM engines inside one replica (--data-parallel-size), on one node, behind one endpoint; "
        "GPUs per replica = tensorParallelSize x pipelineParallelSize x dataParallelSize. With expertParallel the "
        "experts are spread over all of them: vLLM's DP+EP recipe for MiniMax-M2.x is tensorParallelSize 1, "
        "dataParallelSize 8, expertParallel true.",
    )
    nodes: int | None = Field(
        default=None,
        ge=1,
        le=16,
        description="Nodes one replica spans, as a LeaderWorkerSet group (vLLM's multi-node mode, without Ray); "
        "each pod gets GPUs per replica / nodes. Leave tensorParallelSize, pipelineParallelSize and nodes out "
        "and the operator chooses: the preset's layout when its weights fit one node (spec.gpu), else "
        "TP = spec.gpu.perNode and PP = nodes, as vLLM's recipes do.",
    )
    replicas: int = Field(default=1, ge=0, le=64, description="Server replicas; 0 parks the model (weights kept).")
    rollout: RolloutSpec = Field(default_factory=RolloutSpec, description="How a spec change replaces the servers.")
    autoscaling: AutoscalingSpec | None = Field(
        default=None,
        description="Scale replicas on vLLM's signals between minReplicas and maxReplicas (KEDA 2.x must be "
        "installed; minReplicas 0 also needs KEDA's HTTP add-on). spec.replicas is then written by KEDA: leave it "
        "out of what you apply (docs/gitops.md).",
    )
    metrics: MetricsSpec = Field(
        default_factory=MetricsSpec, description="Scraping of the servers' metrics.", json_schema_extra=_EMPTY
    )
    maxModelLen: int | None = Field(default=None, ge=256, le=1048576, description="Context length (--max-model-len).")
    gpuMemoryUtilization: float | None = Field(
        default=None, gt=0.1, le=0.99, description="Fraction of GPU memory vLLM may use."
    )
    gpu: GPUSpec = Field(default_factory=GPUSpec, description="GPU type of the target nodes.", json_schema_extra=_EMPTY)
    vllm: VLLMSpec = Field(default_factory=VLLMSpec, description="vLLM server settings.", json_schema_extra=_EMPTY)
    storage: StorageSpec = Field(default_factory=StorageSpec, description="Weights storage.", json_schema_extra=_EMPTY)
    download: DownloadSpec = Field(
        default_factory=DownloadSpec, description="Weights download.", json_schema_extra=_EMPTY
    )
    chatos: ChatOSSpec = Field(default_factory=ChatOSSpec, description="ChatOS registration.", json_schema_extra=_EMPTY)
    cacheRef: CacheRef | None = Field(
        default=None,
        description="Serve the weights of this MiniMaxModelCache. Without it, the operator creates (or re-uses) "
        "the cache of this resource's repo and revision in its namespace, from spec.storage and spec.download.",
    )


# ---- status -------------------------------------------------------------------------------

Phase = Literal["Pending", "Downloading", "Starting", "Ready", "Stopped", "Parked", "Waking", "Failed"]
CONDITION_TYPES = ("WeightsReady", "ServerReady", "Registered", "Ready")
#: Only on a resource with spec.autoscaling, after Ready (it does not make the resource unready: a model whose
#: autoscaler is missing still serves its replicas).
AUTOSCALING_CONDITION = "Autoscaling"


class Condition(_Model):
    """A standard Kubernetes condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    observedGeneration: int | None = None
    lastTransitionTime: str | None = None


class DownloadStatus(_Model):
    """Progress of the weight download, as reported by the download pod."""

    jobName: str | None = None
    attempt: int = 0
    revision: str | None = Field(default=None, description="Resolved commit of the downloaded weights.")
    path: str | None = Field(default=None, description="Folder of that commit, relative to the claim's root.")
    bytesDone: int | None = None
    bytesTotal: int | None = None
    filesDone: int | None = None
    filesTotal: int | None = None
    filesSizeOnly: int | None = Field(
        default=None,
        description="Files checked by their size alone: the Hub or mirror listed no hash for them.",
    )
    bytesPerSecond: int | None = None
    etaSeconds: int | None = None
    progress: str | None = Field(default=None, description="Percentage done, for kubectl get.")
    lastFailureTime: str | None = None


class RegistrationStatus(_Model):
    """Where the model is registered in ChatOS, so that it can be removed again."""

    configMap: str
    namespace: str
    key: str
    modelId: str


class AutoscalingStatus(_Model):
    """What the autoscaler may do, and how long a start takes (the wait a parked model's first request sees)."""

    scaledObject: str | None = Field(default=None, description="The KEDA ScaledObject that scales this resource.")
    minReplicas: int | None = None
    maxReplicas: int | None = Field(
        default=None, description="The most replicas the autoscaler may set: spec's, or lower where a quota caps it."
    )
    limitedBy: str | None = Field(default=None, description="What lowers maxReplicas below the spec's, when it does.")
    wakeEndpoint: str | None = Field(
        default=None, description="Where requests go while the model may be parked (KEDA's HTTP add-on interceptor)."
    )
    startedAt: str | None = Field(default=None, description="When the current start (from 0 replicas) began.")
    expectedReadyAt: str | None = Field(
        default=None, description="When that start should be Ready, from the last start's duration."
    )
    lastStartSeconds: int | None = Field(
        default=None, description="Seconds the last start from 0 replicas took to Ready (weights verified)."
    )


class MiniMaxDeploymentStatus(_Model):
    """Observed state, written by the operator only."""

    phase: Phase = "Pending"
    observedGeneration: int | None = None
    model: str | None = Field(default=None, description="Preset or repo being served.")
    servedModelName: str | None = None
    tensorParallelSize: int | None = None
    layout: str | None = Field(default=None, description="How one replica is laid out: TP8, TP8xPP2 2 nodes.")
    nodes: int | None = Field(default=None, description="Nodes one replica spans.")
    replicas: int | None = Field(
        default=None, description="Server replicas that exist (the scale subresource's status replicas)."
    )
    selector: str | None = Field(
        default=None,
        description="Label selector of the servers' pods (of each group's leader over several nodes), for the "
        "scale subresource: what a HorizontalPodAutoscaler reads metrics of.",
    )
    endpoint: str | None = Field(default=None, description="OpenAI-compatible base URL inside the cluster.")
    autoscaling: AutoscalingStatus | None = Field(default=None, description="With spec.autoscaling.")
    conditions: list[Condition] = Field(default_factory=list)
    cache: str | None = Field(default=None, description="The MiniMaxModelCache whose weights are served.")
    commit: str | None = Field(default=None, description="Commit of the weights the server loads.")
    download: DownloadStatus | None = Field(default=None, description="The cache's download, as seen from here.")
    registration: RegistrationStatus | None = None


class MiniMaxDeployment(_Model):
    """For validating whole objects offline (render)."""

    model_config = ConfigDict(extra="ignore")
    apiVersion: Literal["minimax.chatos.io/v1alpha1"]
    kind: Literal["MiniMaxDeployment"]
    metadata: dict[str, Any]
    spec: MiniMaxDeploymentSpec
    status: MiniMaxDeploymentStatus | None = None


# ---- the model cache ---------------------------------------------------------------------


class MiniMaxModelCacheSpec(_Model):
    """The weights of one Hugging Face repo at one revision, downloaded once into one claim,
    shared by every MiniMaxDeployment of the namespace that serves them."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.model) || has(self.repo)",
                    "set spec.model to a preset (" + ", ".join(PRESET_NAMES) + ") or spec.repo to a Hugging Face repo",
                    ".model",
                ),
            ]
        },
    )

    model: Literal[PRESET_NAMES] | None = Field(  # type: ignore[valid-type]
        default=None, description="A MiniMax preset: sets the repo and the default storage size."
    )
    repo: Repo | None = Field(
        default=None,
        description="Hugging Face repository (org/name). Overrides the preset's; required without a preset.",
    )
    revision: Revision | None = Field(
        default=None,
        description="Commit sha, branch or tag (default main). A change downloads the new commit into its own "
        "folder beside the old one; servers move to it once it is verified.",
    )
    storage: StorageSpec = Field(default_factory=StorageSpec, description="Weights storage.", json_schema_extra=_EMPTY)
    download: DownloadSpec = Field(
        default_factory=DownloadSpec, description="Weights download.", json_schema_extra=_EMPTY
    )


CachePhase = Literal["Pending", "Downloading", "Ready", "Failed"]


class CommitStatus(_Model):
    """One verified commit in the claim."""

    commit: str | None = None
    path: str = Field(description="Folder of the commit, relative to the claim's root.")
    bytes: int | None = None
    files: int | None = None
    verifiedAt: str | None = None


class MiniMaxModelCacheStatus(_Model):
    """Observed state, written by the operator only."""

    phase: CachePhase = "Pending"
    observedGeneration: int | None = None
    repo: str | None = None
    revision: str | None = Field(default=None, description="Revision asked for (spec.revision, or main).")
    commit: str | None = Field(default=None, description="Verified commit servers load: the revision's, once done.")
    path: str | None = Field(default=None, description="Folder of that commit, relative to the claim's root.")
    claimName: str | None = None
    accessMode: str | None = None
    size: str | None = Field(default=None, description="Size of the claim.")
    download: DownloadStatus | None = None
    commits: list[CommitStatus] = Field(default_factory=list, description="Verified commits kept in the claim.")
    compileFolders: list[str] = Field(
        default_factory=list,
        description="Servers' compile-cache folders on the claim (per vLLM image and layout); one no server mounts "
        "any more is removed by the prune Job.",
    )
    users: list[str] = Field(default_factory=list, description="MiniMaxDeployments that serve these weights.")
    userCount: int = 0
    conditions: list[Condition] = Field(default_factory=list)


class MiniMaxModelCache(_Model):
    """For validating whole objects offline (render)."""

    model_config = ConfigDict(extra="ignore")
    apiVersion: Literal["minimax.chatos.io/v1alpha1"]
    kind: Literal["MiniMaxModelCache"]
    metadata: dict[str, Any]
    spec: MiniMaxModelCacheSpec
    status: MiniMaxModelCacheStatus | None = None


# ---- tenancy policy parameters ----------------------------------------------------------


class MiniMaxPolicySpec(_Model):
    """What the namespaces bound to this policy may run (enforced at `kubectl apply` by the
    ValidatingAdmissionPolicy minimax-operator-tenancy). An absent field allows everything it would limit."""

    allowedModels: list[Literal[PRESET_NAMES]] | None = Field(  # type: ignore[valid-type]
        default=None, description="Presets that spec.model may name."
    )
    allowCustomRepos: bool = Field(default=False, description="Whether spec.repo may name any Hugging Face repo.")
    allowMirrors: bool = Field(default=False, description="Whether spec.download.endpoint may name a mirror.")
    allowLoopbackMirrors: bool = Field(
        default=False,
        description="Whether that mirror may be on loopback (localhost, 127.0.0.0/8, ::1): only a development "
        "cluster means it. Link-local addresses (cloud metadata) are refused by the CRD whatever the policy.",
    )
    maxGPUsPerReplica: int | None = Field(
        default=None, ge=1, le=16, description="Most GPUs per replica (tensorParallelSize, or the preset's default)."
    )
    maxGPUsPerResource: int | None = Field(
        default=None, ge=1, description="Most GPUs per resource (GPUs per replica x replicas)."
    )
    allowedChatOSConfigMaps: list[Annotated[str, Field(max_length=317)]] | None = Field(
        default=None,
        description="ChatOS ConfigMaps a resource may register in: NAMESPACE/NAME, or NAME for one in the "
        "resource's own namespace.",
    )

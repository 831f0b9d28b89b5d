"""The vLLM server of a MiniMaxDeployment: its Deployment and Service.

Every object carries the same labels, so that users can select everything of one
model with `-l app.kubernetes.io/instance=NAME`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..api.names import (
    APP_NAME,
    COMPONENT_LABEL,
    COMPONENT_SERVER,
    INSTANCE_LABEL,
    LWS_API_VERSION,
    LWS_KIND,
    LWS_WORKER_INDEX_LABEL,
    MANAGED_BY_LABEL,
    MANAGER,
    NAME_LABEL,
    OWNER_LABEL,
    SERVER_PORT,
    SERVES_ANNOTATION,
    WEIGHTS_KEY_ANNOTATION,
)
from ..model.deployment import GROUP_SUFFIX, Resolved
from ..protocol import COMPILE_FOLDER, MODELS_MOUNT
from .meta import Owner, owner_reference, stamp

Obj = dict[str, Any]
SERVER_HOME = "/home/vllm"
#: Where the server's compile and kernel caches live (torch.compile, Triton, DeepGEMM, FlashInfer).
COMPILE_DIR = "/var/cache/minimax"


def labels(r: Resolved, component: str | None = None) -> dict[str, str]:
    out = {
        NAME_LABEL: APP_NAME,
        INSTANCE_LABEL: r.name,
        MANAGED_BY_LABEL: MANAGER,
        OWNER_LABEL: r.name,
    }
    if component:
        out[COMPONENT_LABEL] = component
    return out


def selector(r: Resolved, component: str) -> dict[str, str]:
    return {INSTANCE_LABEL: r.name, COMPONENT_LABEL: component}


def _meta(r: Resolved, name: str, owner: Owner | None, component: str | None) -> Obj:
    meta: Obj = {"name": name, "namespace": r.namespace, "labels": labels(r, component)}
    if owner:
        meta["ownerReferences"] = [owner_reference(owner)]
    return meta


def compile_subpath(r: Resolved) -> str | None:
    """The server's compile-cache folder on the claim, or None where the claim cannot be written (ReadOnlyMany).

    Per image and per layout: vLLM's compiled kernels hold the device and rank they were built for
    (a worker started on a cache a single-node TP 2 run filled died with `invalid device ordinal`,
    hack/gpu-check), so servers of different layouts never share a folder. The preset's own layout
    on one node (its tensor parallelism, no expert parallelism; TP 1 for a model without a preset)
    keeps the folder of releases before layouts: a new name would roll every such server on upgrade.
    """
    if r.claim_access_mode == "ReadOnlyMany":
        return None
    lay = r.layout
    if lay.pipeline == 1 and lay.data == 1 and not lay.multi_node:
        default_tp = r.preset.tensor_parallel_size if r.preset else 1
        if lay.tensor == default_tp and not r.expert_parallel:
            return compile_folder(r.image)
        return f"{compile_folder(r.image)}@tp{lay.tensor}{'-ep' if r.expert_parallel else ''}"
    data = f"-dp{lay.data}" if lay.data > 1 else ""
    return f"{compile_folder(r.image)}@tp{lay.tensor}-pp{lay.pipeline}{data}-nodes{lay.nodes}"


#: The user a restricted server runs as (its pod's securityContext).
RESTRICTED_UID = 1000


def compile_cache_dir(r: Resolved) -> str:
    """Where in the container the caches go: the mounted folder, or for a restricted server a folder
    of its own user inside it.

    Why: the folder is shared by every server of the image (and layout) on the claim, and folders a
    root server made there are 0755 root; a restricted server (uid 1000) started after one crashed
    with `PermissionError` (hack/gpu-check). The mounted folder is world-writable and sticky (the
    download Job prepares it), so the restricted server makes `uid1000/` itself and owns all below
    it. A default server keeps the folder of earlier releases (no roll on upgrade).
    """
    if r.pod_security == "restricted":
        return f"{COMPILE_DIR}/uid{RESTRICTED_UID}"
    return COMPILE_DIR


def compile_folder(image: str) -> str:
    """Folder of one vLLM image's compile and kernel caches, relative to the claim's root.

    A restart reuses them; a new vLLM image starts afresh.
    """
    return f"{COMPILE_FOLDER}/{re.sub(r'[^A-Za-z0-9._-]+', '_', image)[:200]}"


def _same_node_as_servers(r: Resolved) -> Obj:
    """Required pod affinity to the servers on this claim: a ReadWriteOnce claim is on one node only.

    With no neighbours, exactly the term releases before model caches wrote (a different
    term would roll every server on upgrade).
    """
    selector_: Obj = {"matchLabels": selector(r, COMPONENT_SERVER)}
    if r.claim_neighbours:
        selector_ = {
            "matchLabels": {COMPONENT_LABEL: COMPONENT_SERVER, MANAGED_BY_LABEL: MANAGER},
            "matchExpressions": [
                {
                    "key": INSTANCE_LABEL,
                    "operator": "In",
                    "values": sorted({r.name, *r.claim_neighbours}),
                }
            ],
        }
    term = {"labelSelector": selector_, "topologyKey": "kubernetes.io/hostname"}
    return {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}


def vllm_args(r: Resolved) -> list[str]:
    """`vllm serve` arguments: operator-owned flags first, then the preset's, then the user's."""
    args = [
        r.model_dir,
        "--served-model-name",
        r.served_model_name,
        "--tensor-parallel-size",
        str(r.tensor_parallel_size),
        *(["--pipeline-parallel-size", str(r.layout.pipeline)] if r.layout.pipeline > 1 else []),
        *(["--data-parallel-size", str(r.layout.data)] if r.layout.data > 1 else []),
        "--host",
        "0.0.0.0",
        "--port",
        str(SERVER_PORT),
    ]
    if r.expert_parallel and "--enable-expert-parallel" not in r.flags:
        args.append("--enable-expert-parallel")
    args += list(r.flags)
    if r.max_model_len:
        args += ["--max-model-len", str(r.max_model_len)]
    if r.spec.gpuMemoryUtilization:
        args += ["--gpu-memory-utilization", str(r.spec.gpuMemoryUtilization)]
    args += list(r.spec.vllm.extraArgs)
    return args


def rolling_update(r: Resolved) -> Obj:
    """maxSurge 0 / maxUnavailable 1 by default (never more GPUs than the replicas hold); with
    spec.rollout.maxSurge, new servers start beside the old, which serve until the new are ready."""
    surge = r.spec.rollout.maxSurge
    return {"maxSurge": surge, "maxUnavailable": 0} if surge else {"maxSurge": 0, "maxUnavailable": 1}


def server_tolerations(r: Resolved) -> list[Obj]:
    """The GPU resource's usual taint (as GKE and the GPU operator set it), plus the user's."""
    tolerations: list[Obj] = [{"key": r.spec.gpu.resourceName, "operator": "Exists", "effect": "NoSchedule"}]
    return tolerations + [t.model_dump(exclude_none=True) for t in r.spec.vllm.tolerations]


def deployment(r: Resolved, owner: Owner | None, replicas: int | None = None) -> Obj:
    """The vLLM server. GPU limit = the layout's GPUs per pod; probes that let a huge checkpoint load.

    `replicas` overrides the spec's (0 while a ReadWriteOncePod claim is being downloaded into).
    """
    v = r.spec.vllm
    gpu = r.spec.gpu.resourceName
    tp = str(r.layout.gpus_per_pod)  # tensorParallelSize on one node (as releases before layouts had it)
    resources: Obj = {
        "requests": {**(v.resources.requests if v.resources else {}), gpu: tp},
        "limits": {**(v.resources.limits if v.resources else {}), gpu: tp},
    }
    env: list[Obj] = [
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "VLLM_ENGINE_READY_TIMEOUT_S", "value": str(r.startup_timeout_seconds)},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
    ]
    if r.pod_security == "restricted":
        env.append({"name": "HOME", "value": SERVER_HOME})  # before the user's env, which may override it
    # Compile and kernel caches (minutes of DeepGEMM and torch.compile warm-up) outlive the pod.
    cache = compile_cache_dir(r)
    env += [
        {"name": "XDG_CACHE_HOME", "value": cache},  # vLLM's cache root: torch.compile, DeepGEMM
        {"name": "TRITON_CACHE_DIR", "value": f"{cache}/triton"},
        {"name": "FLASHINFER_WORKSPACE_BASE", "value": cache},
    ]
    env += [e.model_dump(exclude_none=True) for e in v.env]
    compile_path = compile_subpath(r)
    period = 10
    http = {"path": "/health", "port": "http"}
    container: Obj = {
        "name": "vllm",
        "image": r.image,
        "command": ["vllm", "serve"],
        "args": vllm_args(r),
        "ports": [{"name": "http", "containerPort": SERVER_PORT, "protocol": "TCP"}],
        "env": env,
        "resources": resources,
        "volumeMounts": [
            {"name": "weights", "mountPath": MODELS_MOUNT, "readOnly": True},
            (
                {"name": "weights", "mountPath": COMPILE_DIR, "subPath": compile_path}
                if compile_path
                else {"name": "server-cache", "mountPath": COMPILE_DIR}
            ),
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
        # Loading 200-900 GB takes long; the startup probe must not kill a loading server.
        "startupProbe": {
            "httpGet": http,
            "periodSeconds": period,
            "timeoutSeconds": 5,
            "failureThreshold": max(1, r.startup_timeout_seconds // period),
        },
        "readinessProbe": {"httpGet": http, "periodSeconds": period, "timeoutSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"httpGet": http, "periodSeconds": 30, "timeoutSeconds": 10, "failureThreshold": 5},
    }
    if r.pod_security == "restricted":
        # Pod Security "restricted": vLLM runs as uid 1000; its home (compile and kernel caches) must be writable.
        container["securityContext"] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
        container["volumeMounts"].append({"name": "home", "mountPath": SERVER_HOME})
    pod_spec: Obj = {
        "containers": [container],
        "tolerations": server_tolerations(r),
        "terminationGracePeriodSeconds": 60,
        "volumes": [
            # Writable only through the compile cache's subPath mount; the weights' mount is read-only.
            # (readOnly: false is what the API server omits: never write it, or drift never settles.)
            {
                "name": "weights",
                "persistentVolumeClaim": {
                    "claimName": r.claim_name,
                    **({"readOnly": True} if compile_path is None else {}),
                },
            },
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": v.shmSize}},
        ],
    }
    if compile_path is None:
        pod_spec["volumes"].append({"name": "server-cache", "emptyDir": {}})
    if r.pod_security == "restricted":
        pod_spec["securityContext"] = {
            "runAsNonRoot": True,
            "runAsUser": RESTRICTED_UID,
            "runAsGroup": RESTRICTED_UID,
            "fsGroup": RESTRICTED_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        pod_spec["volumes"].append({"name": "home", "emptyDir": {}})
    if v.nodeSelector:
        pod_spec["nodeSelector"] = dict(v.nodeSelector)
    mode = r.claim_access_mode
    # With autoscaling, by the most replicas KEDA may set, not the current count: a pod template that changed
    # with the count would restart the serving replica on every scale between 1 and 2.
    most = max(r.spec.replicas, r.spec.autoscaling.maxReplicas if r.spec.autoscaling else 0)
    if mode == "ReadWriteOnce" and (most > 1 or r.claim_neighbours):
        pod_spec["affinity"] = _same_node_as_servers(r)  # check_storage made sure they fit on one node
    # Never ask for more GPUs than the replicas hold: replace pods one at a time. A
    # ReadWriteOncePod claim admits one pod at all, so the old pod must be gone first.
    strategy: Obj = (
        {"type": "Recreate"}
        if mode == "ReadWriteOncePod"
        else {"type": "RollingUpdate", "rollingUpdate": rolling_update(r)}
    )
    pod_annotations = {WEIGHTS_KEY_ANNOTATION: r.weights_key, **v.podAnnotations}
    meta = _meta(r, r.name, owner, COMPONENT_SERVER)
    if r.cache:
        serves = {"cache": r.cache, "claim": r.claim_name, "path": r.weights_path}
        meta["annotations"] = {SERVES_ANNOTATION: json.dumps(serves, sort_keys=True, separators=(",", ":"))}
    return stamp(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": r.spec.replicas if replicas is None else replicas,
                "selector": {"matchLabels": selector(r, COMPONENT_SERVER)},
                "strategy": strategy,
                "template": {
                    "metadata": {"labels": labels(r, COMPONENT_SERVER), "annotations": pod_annotations},
                    "spec": pod_spec,
                },
            },
        }
    )


#: The entry of every pod of a group: vLLM's multi-node mode (no Ray) with LWS's own variables. vLLM
#: hands the master address to ZMQ and torch.distributed, which take an address, not a name, so the
#: leader's name is resolved first (its record exists once its pod does: LWS's headless Service
#: publishes pods before they are ready).
MULTI_NODE_ENTRY = """set -eu
leader="${LWS_LEADER_ADDRESS:?LWS_LEADER_ADDRESS is set by LeaderWorkerSet}"
until addr=$(python3 -c 'import socket, sys; print(socket.gethostbyname(sys.argv[1]))' "$leader" 2>/dev/null); do
  echo "waiting for the leader $leader to resolve"; sleep 2
done
exec vllm serve "$@" --nnodes "$LWS_GROUP_SIZE" --node-rank "$LWS_WORKER_INDEX" --master-addr "$addr"
"""


def group_name(r: Resolved) -> str:
    """The LeaderWorkerSet of a replica over several nodes (LWS names its headless Service after it,
    so it cannot share the resource's name with the server's Service)."""
    return f"{r.name}{GROUP_SUFFIX}"


def leader_worker_set(r: Resolved, owner: Owner | None, replicas: int | None = None) -> Obj:
    """A replica over several nodes: one LeaderWorkerSet group of `nodes` pods, each with the layout's
    GPUs per pod. The leader (rank 0) serves HTTP and has the probes; the workers run headless. A pod
    lost restarts its whole group (vLLM cannot take a rank back)."""
    dep = deployment(r, owner, replicas)
    template = dep["spec"]["template"]
    leader = json.loads(json.dumps(template))
    worker = json.loads(json.dumps(template))
    for pod, headless in ((leader, False), (worker, True)):
        c = pod["spec"]["containers"][0]
        c["command"] = ["/bin/sh", "-c", MULTI_NODE_ENTRY, "vllm-multi-node"]
        if headless:
            c["args"] = [*c["args"], "--headless"]
            for key in ("ports", "startupProbe", "readinessProbe", "livenessProbe"):
                c.pop(key, None)
    meta = dep["metadata"]
    meta["name"] = group_name(r)
    return stamp(
        {
            "apiVersion": LWS_API_VERSION,
            "kind": LWS_KIND,
            "metadata": meta,
            "spec": {
                "replicas": dep["spec"]["replicas"],
                "startupPolicy": "LeaderCreated",
                # By default never ask for more GPUs than the replicas hold: one group at a time, none extra.
                "rolloutStrategy": {"type": "RollingUpdate", "rollingUpdateConfiguration": rolling_update(r)},
                "leaderWorkerTemplate": {
                    "size": r.layout.nodes,
                    "restartPolicy": "RecreateGroupOnPodRestart",
                    "leaderTemplate": leader,
                    "workerTemplate": worker,
                },
            },
        }
    )


def server(r: Resolved, owner: Owner | None, replicas: int | None = None) -> Obj:
    """The server's workload: a Deployment on one node, a LeaderWorkerSet over several."""
    return leader_worker_set(r, owner, replicas) if r.layout.multi_node else deployment(r, owner, replicas)


def serving_pods(r: Resolved) -> dict[str, str]:
    """The pods that serve HTTP: every server pod on one node, each group's leader over several."""
    out = selector(r, COMPONENT_SERVER)
    if r.layout.multi_node:
        out[LWS_WORKER_INDEX_LABEL] = "0"  # the workers run headless
    return out


def pod_selector(r: Resolved) -> str:
    """`serving_pods` as a label selector string (status.selector, for the scale subresource)."""
    return ",".join(f"{k}={v}" for k, v in sorted(serving_pods(r).items()))


def service(r: Resolved, owner: Owner | None) -> Obj:
    selector_ = serving_pods(r)
    meta = _meta(r, r.service_name, owner, COMPONENT_SERVER)
    # For the Prometheus scrape configurations that read annotations (kubernetes_sd, role endpoints); on the
    # Service, not the pods: a new annotation on the pod template would restart every GPU server.
    meta["annotations"] = {
        **meta.get("annotations", {}),
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(SERVER_PORT),
        "prometheus.io/path": "/metrics",
    }
    return stamp(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "type": "ClusterIP",
                "selector": selector_,
                "ports": [{"name": "http", "port": SERVER_PORT, "targetPort": "http", "protocol": "TCP"}],
            },
        }
    )


def render_server(r: Resolved, owner: Owner | None) -> list[Obj]:
    """The server's objects, in the order the operator creates them (for `render`)."""
    return [server(r, owner), service(r, owner)]

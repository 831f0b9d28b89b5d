"""Autoscaling and scraping of a MiniMaxDeployment's servers: KEDA, its HTTP add-on, the Prometheus operator.

Why KEDA and not an autoscaler of our own: KEDA reads Prometheus, scales any resource with a scale
subresource (this one: the operator stays the single writer of the server's replicas), drives a
HorizontalPodAutoscaler for 1 to N and does 0 to 1 itself; Kaito, the vLLM production-stack, llm-d
and KServe scale vLLM the same way, on the same metric names. Why its HTTP add-on to wake a parked
model: a request must reach something while no server exists. The add-on's interceptor holds it
(bounded by `wakeTimeoutSeconds`) until a server is ready, then forwards it, and tells KEDA that
requests wait; answering 503 at once would need a component of our own in the data path, and
ChatOS, like most OpenAI clients, gives up after a couple of retries of a 503 while a server takes
minutes to start.

Pure functions: the controller decides the numbers (autoscale.plan), these shape the objects.
"""

from __future__ import annotations

from typing import Any

from ..api.names import (
    API_VERSION,
    COMPONENT_SERVER,
    COMPONENT_WAKE,
    HTTP_SCALED_OBJECT_KIND,
    KEDA_API_VERSION,
    KEDA_HTTP_API_VERSION,
    KEDA_HTTP_SKIP_SCALED_OBJECT,
    KIND,
    MONITORING_API_VERSION,
    SCALED_OBJECT_KIND,
    SERVER_PORT,
    SERVICE_MONITOR_KIND,
    WAKE_SUFFIX,
)
from ..api.v1alpha1 import AutoscalingSpec
from ..model.deployment import Resolved
from .meta import OperatorSettings, Owner, stamp
from .server import _meta, selector

Obj = dict[str, Any]

#: Per-replica waiting requests that add a replica when the spec names no target at all.
DEFAULT_WAITING_REQUESTS = 4
#: The interceptor's count of in-flight requests never drives scale-up (vLLM's queue does); a target this
#: high makes it count for one replica, so it only wakes the model and keeps it awake while requests run.
_ACTIVITY_TARGET = 1000000
#: How long vLLM may take to send response headers through the interceptor: a non-streamed answer of
#: thousands of tokens sends nothing before it is complete.
RESPONSE_HEADER_TIMEOUT_SECONDS = 3600
#: How often KEDA reads the metrics (its default is 30 s).
POLLING_SECONDS = 15
#: Replicas added per minute at most: a server takes minutes to start, and while it starts the queue stays
#: long, so an HPA left alone would add a replica every 15 s for the same load.
SCALE_UP_PER_MINUTE = 1


def _matcher(r: Resolved) -> str:
    # vLLM labels its metrics with model_name (--served-model-name); every scrape adds the namespace.
    return f'namespace="{r.namespace}",model_name="{r.served_model_name}"'


def queries(r: Resolved) -> dict[str, str]:
    """The PromQL of each signal, summed over the resource's servers (0 while none exists)."""
    m = _matcher(r)
    return {
        "waiting": f"sum(vllm:num_requests_waiting{{{m}}}) or vector(0)",
        "kv-cache": f"sum(vllm:kv_cache_usage_perc{{{m}}}) or vector(0)",
        "activity": f"sum(vllm:num_requests_running{{{m}}}) + sum(vllm:num_requests_waiting{{{m}}}) or vector(0)",
    }


def wake_service_name(r: Resolved) -> str:
    return f"{r.name}{WAKE_SUFFIX}"


def wake_host(r: Resolved) -> str:
    return f"{wake_service_name(r)}.{r.namespace}.svc.cluster.local"


def wake_root(r: Resolved, settings: OperatorSettings) -> str:
    """Where ChatOS sends a model that may be parked: the interceptor, under this model's own host name."""
    port = settings.keda_http_interceptor.rpartition(":")[2]
    return f"http://{wake_host(r)}:{port}"


def scaled_object(
    r: Resolved, owner: Owner, settings: OperatorSettings, a: AutoscalingSpec, min_replicas: int, max_replicas: int
) -> Obj:
    """KEDA's ScaledObject on this resource (its scale subresource), on vLLM's queue and KV-cache use.

    `min_replicas` 0 adds the HTTP add-on's trigger: requests held by its interceptor wake the model.
    """
    q = queries(r)
    triggers: list[Obj] = []

    def prometheus(name: str, query: str, threshold: float) -> Obj:
        return {
            "type": "prometheus",
            "name": name,
            "metricType": "AverageValue",  # the sum over servers / threshold = replicas wanted
            "metadata": {"serverAddress": settings.prometheus_url, "query": query, "threshold": f"{threshold:g}"},
        }

    waiting, kv = a.target.waitingRequests, a.target.kvCacheUsage
    if waiting is None and kv is None:
        waiting = DEFAULT_WAITING_REQUESTS
    if waiting is not None:
        triggers.append(prometheus("waiting", q["waiting"], waiting))
    if kv is not None:
        triggers.append(prometheus("kv-cache", q["kv-cache"], kv))
    if min_replicas == 0:
        # Idle means no request running or waiting in vLLM and none held by the interceptor.
        triggers.append(prometheus("activity", q["activity"], _ACTIVITY_TARGET))
        triggers.append(
            {
                "type": "external-push",
                "name": "held-requests",
                "metadata": {"scalerAddress": settings.keda_http_scaler, "httpScaledObject": r.name},
            }
        )
    spec: Obj = {
        "scaleTargetRef": {"apiVersion": API_VERSION, "kind": KIND, "name": r.name},
        "minReplicaCount": min_replicas,
        "maxReplicaCount": max_replicas,
        "pollingInterval": POLLING_SECONDS,
        "advanced": {
            "horizontalPodAutoscalerConfig": {
                "name": f"{r.name}",
                "behavior": {
                    "scaleUp": {
                        "stabilizationWindowSeconds": 0,
                        "policies": [{"type": "Pods", "value": SCALE_UP_PER_MINUTE, "periodSeconds": 60}],
                    },
                    "scaleDown": {
                        "stabilizationWindowSeconds": a.scaleDownDelaySeconds,
                        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                    },
                },
            }
        },
        "triggers": triggers,
    }
    if min_replicas == 0:
        spec["cooldownPeriod"] = a.idleSeconds  # idle this long: park
        # Not parked before anyone could use it: KEDA would park a model that was never active at once.
        spec["initialCooldownPeriod"] = a.idleSeconds
    return stamp(
        {
            "apiVersion": KEDA_API_VERSION,
            "kind": SCALED_OBJECT_KIND,
            "metadata": _meta(r, r.name, owner, COMPONENT_SERVER),
            "spec": spec,
        }
    )


def http_scaled_object(r: Resolved, owner: Owner, a: AutoscalingSpec, max_replicas: int) -> Obj:
    """The HTTP add-on's route to this model: the interceptor holds its requests while it is parked.

    The add-on makes no ScaledObject of its own (ours carries its trigger beside vLLM's signals).
    """
    meta = _meta(r, r.name, owner, COMPONENT_SERVER)
    meta.setdefault("annotations", {})[KEDA_HTTP_SKIP_SCALED_OBJECT] = "true"
    return stamp(
        {
            "apiVersion": KEDA_HTTP_API_VERSION,
            "kind": HTTP_SCALED_OBJECT_KIND,
            "metadata": meta,
            "spec": {
                "hosts": [wake_host(r)],
                "scaleTargetRef": {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": r.name,
                    "service": r.service_name,
                    "port": SERVER_PORT,
                },
                "replicas": {"min": 0, "max": max_replicas},
                "scalingMetric": {"concurrency": {"targetValue": _ACTIVITY_TARGET}},
                "timeouts": {
                    "conditionWait": f"{a.wakeTimeoutSeconds}s",
                    "responseHeader": f"{RESPONSE_HEADER_TIMEOUT_SECONDS}s",
                },
            },
        }
    )


def wake_service(r: Resolved, owner: Owner, settings: OperatorSettings) -> Obj:
    """A name for the interceptor in this namespace, so that requests reach it with this model's host name."""
    host = settings.keda_http_interceptor.rpartition(":")[0]
    if "." in host and not host.endswith(".svc.cluster.local"):
        host = f"{host}.svc.cluster.local"
    return stamp(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(r, wake_service_name(r), owner, COMPONENT_WAKE),
            "spec": {"type": "ExternalName", "externalName": host},
        }
    )


def service_monitor(r: Resolved, owner: Owner) -> Obj:
    """The Prometheus operator's ServiceMonitor of the server's Service (its ready endpoints: serving pods)."""
    return stamp(
        {
            "apiVersion": MONITORING_API_VERSION,
            "kind": SERVICE_MONITOR_KIND,
            "metadata": _meta(r, r.name, owner, COMPONENT_SERVER),
            "spec": {
                "selector": {"matchLabels": selector(r, COMPONENT_SERVER)},
                "namespaceSelector": {"matchNames": [r.namespace]},
                "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
            },
        }
    )

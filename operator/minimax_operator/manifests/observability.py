"""The Grafana dashboard and the Prometheus alert rules the chart ships, from one list of queries.

Why generated: every panel's query is run by a test against a Prometheus that scrapes the stand-in
vLLM servers and the operator (tests/realnode/test_autoscaling.py), so a renamed metric breaks a test,
not a dashboard nobody looks at until an incident. Metric names are vLLM's (the same in the pinned
0.10.2, 0.20.2 and 0.24.0: vllm/v1/metrics/loggers.py) and the operator's (controllers/gauges.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
BY = "namespace, model_name"


@dataclass(frozen=True)
class Panel:
    title: str
    query: str
    unit: str
    legend: str = "{{namespace}}/{{model_name}}"


PANELS = (
    Panel("Requests waiting (vLLM queue)", f"sum by ({BY}) (vllm:num_requests_waiting)", "short"),
    Panel("Requests running", f"sum by ({BY}) (vllm:num_requests_running)", "short"),
    Panel("KV-cache use", f"avg by ({BY}) (vllm:kv_cache_usage_perc)", "percentunit"),
    Panel(
        "Time to first token (p95)",
        f"histogram_quantile(0.95, sum by ({BY}, le) (rate(vllm:time_to_first_token_seconds_bucket[5m])))",
        "s",
    ),
    Panel(
        "Time per output token (p95)",
        f"histogram_quantile(0.95, sum by ({BY}, le) (rate(vllm:inter_token_latency_seconds_bucket[5m])))",
        "s",
    ),
    Panel("Output tokens per second", f"sum by ({BY}) (rate(vllm:generation_tokens_total[5m]))", "short"),
    Panel("Prompt tokens per second", f"sum by ({BY}) (rate(vllm:prompt_tokens_total[5m]))", "short"),
    Panel("Replicas", f"max by ({BY}) (minimax_deployment_replicas)", "short"),
    Panel("Replicas at most (autoscaling bound)", f"max by ({BY}) (minimax_deployment_max_replicas)", "short"),
    Panel("Parked", f"max by ({BY}) (minimax_deployment_parked)", "short"),
)


def dashboard() -> Obj:
    panels = []
    for i, p in enumerate(PANELS):
        panels.append(
            {
                "id": i + 1,
                "type": "timeseries",
                "title": p.title,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
                "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
                "targets": [{"refId": "A", "expr": p.query, "legendFormat": p.legend}],
            }
        )
    return {
        "uid": "minimax-models",
        "title": "MiniMax models",
        "tags": ["minimax", "vllm"],
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]
        },
        "panels": panels,
    }


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    duration: str
    severity: str
    summary: str


ALERTS = (
    Alert(
        "MiniMaxQueueGrowingAtMaxReplicas",
        f"sum by ({BY}) (vllm:num_requests_waiting) > 0"
        f" and on ({BY}) sum by ({BY}) (deriv(vllm:num_requests_waiting[10m])) > 0"
        f" and on ({BY}) max by ({BY}) (minimax_deployment_replicas >= minimax_deployment_max_replicas)",
        "10m",
        "warning",
        "{{ $labels.namespace }}/{{ $labels.model_name }}: requests queue up and the model runs its most replicas "
        "(raise spec.autoscaling.maxReplicas or the GPU quota)",
    ),
    Alert(
        "MiniMaxServerRestarting",
        'increase(kube_pod_container_status_restarts_total{container="vllm"}[30m]) > 2',
        "0m",
        "warning",
        "{{ $labels.namespace }}/{{ $labels.pod }}: the vLLM server restarted more than twice in 30 minutes "
        "(kubectl describe mmd; its ServerReady condition names the cause)",
    ),
    Alert(
        "MiniMaxWeightsDownloadFailing",
        "max by (namespace, name) (minimax_cache_download_failing) == 1",
        "15m",
        "warning",
        "{{ $labels.namespace }}/{{ $labels.name }}: the weights download keeps failing (kubectl describe mmc)",
    ),
)


def alert_rules() -> Obj:
    """The `groups` of a PrometheusRule (or a rule file)."""
    rules = [
        {
            "alert": a.name,
            "expr": a.expr,
            **({"for": a.duration} if a.duration != "0m" else {}),
            "labels": {"severity": a.severity},
            "annotations": {"summary": a.summary},
        }
        for a in ALERTS
    ]
    return {"groups": [{"name": "minimax-operator", "rules": rules}]}


def dashboard_json() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"

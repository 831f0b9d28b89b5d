"""Decide a MiniMaxDeployment's autoscaling: the replica bounds KEDA gets, and what its status says.

Pure functions over what the reconciler observed (which add-on APIs exist, the namespace's quotas,
the ScaledObject's status, the last phase), unit-tested without a cluster. The reconciler applies
the objects (render/autoscaling.py) and writes the status.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..api.names import KEDA_HTTP_API_VERSION, KEDA_HTTP_TESTED_VERSION, KEDA_TESTED_VERSION
from ..api.v1alpha1 import AUTOSCALING_CONDITION, AutoscalingSpec
from ..model import quota
from ..render import status as st

Obj = dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """What KEDA may do for one resource."""

    #: Whether a ScaledObject is wanted (KEDA is installed).
    scale: bool
    min_replicas: int
    max_replicas: int
    #: Whether the model may park: its requests go through the HTTP add-on, which wakes it.
    wake: bool
    limited_by: str | None
    condition: st.Cond


def _describe(a: AutoscalingSpec, lo: int, hi: int) -> str:
    signals = []
    if a.target.waitingRequests is not None or a.target.kvCacheUsage is None:
        signals.append(f"more than {a.target.waitingRequests or 4} requests waiting per replica")
    if a.target.kvCacheUsage is not None:
        signals.append(f"KV-cache use above {a.target.kvCacheUsage:g} per replica")
    return f"KEDA scales between {lo} and {hi} replicas on {' or '.join(signals)}"


def quota_cap(quotas: list[Obj], gpu_resource: str, gpus_per_replica: int, replicas_now: int) -> tuple[int, str] | None:
    """The most replicas the namespace's GPU quotas leave room for (counting the ones running), and why."""
    best: tuple[int, str] | None = None
    mine = Decimal(gpus_per_replica * replicas_now)
    for name, hard, used in quota.gpu_room(quotas, gpu_resource):
        room = hard - max(used - mine, Decimal(0))
        cap = int(room // gpus_per_replica) if gpus_per_replica else 0
        why = (
            f"ResourceQuota {name}: {hard.normalize()} {gpu_resource}, {max(used - mine, Decimal(0)).normalize()} "
            f"used by others, room for {cap} replicas of {gpus_per_replica} GPUs"
        )
        if best is None or cap < best[0]:
            best = (max(cap, 0), why)
    return best


def plan(
    a: AutoscalingSpec,
    keda: bool,
    http_addon: bool,
    cap: tuple[int, str] | None,
    replicas: int,
) -> Plan:
    """The bounds and the Autoscaling condition.

    - KEDA missing: nothing to apply; the model keeps spec.replicas, and the condition says what to install.
    - minReplicas 0 without the HTTP add-on: nothing could wake a parked model, so KEDA keeps at least one.
    - A GPU quota tighter than maxReplicas lowers it: KEDA never asks for a replica the quota would refuse
      (its pods would wait unschedulable, holding nothing but the rollout).
    """
    if not keda:
        return Plan(
            False,
            a.minReplicas,
            a.maxReplicas,
            False,
            None,
            st.false(
                AUTOSCALING_CONDITION,
                "KEDANotInstalled",
                "spec.autoscaling needs KEDA (the keda.sh/v1alpha1 ScaledObject API is not served): install KEDA "
                f"{KEDA_TESTED_VERSION} or later (https://keda.sh); until then the model runs spec.replicas "
                f"({replicas})",
            ),
        )
    lo, hi = a.minReplicas, a.maxReplicas
    limited_by = None
    if cap is not None and cap[0] < hi:
        hi, limited_by = max(cap[0], 1), cap[1]
    lo = min(lo, hi)
    notes = []
    wake = lo == 0 and http_addon
    if lo == 0 and not http_addon:
        lo = 1
        notes.append(
            f"minReplicas 0 needs KEDA's HTTP add-on {KEDA_HTTP_TESTED_VERSION} or later ({KEDA_HTTP_API_VERSION} "
            "is not served) to wake the model on a request; until then it keeps 1 replica"
        )
    if limited_by:
        notes.append(f"maxReplicas {a.maxReplicas} lowered to {hi} by {limited_by}")
    message = "; ".join([_describe(a, lo, hi), *notes])
    if lo == 1 and a.minReplicas == 0 and not http_addon:
        cond = st.false(AUTOSCALING_CONDITION, "WakeUnavailable", message)
    elif limited_by:
        cond = st.true(AUTOSCALING_CONDITION, "LimitedByQuota", message)
    else:
        cond = st.true(AUTOSCALING_CONDITION, "Active", message)
    return Plan(True, lo, hi, wake, limited_by, cond)


def scaler_condition(p: Plan, scaled_object: Obj | None) -> st.Cond:
    """KEDA's own verdict on the ScaledObject (Prometheus unreachable, a query refused) overrides 'Active'."""
    if not p.scale or scaled_object is None or p.condition.status != "True":
        return p.condition
    conds = (scaled_object.get("status") or {}).get("conditions") or []
    ready = next((c for c in conds if c.get("type") == "Ready"), None)
    if ready is not None and ready.get("status") == "False":
        msg = ready.get("message") or ready.get("reason") or "not ready"
        return st.false(AUTOSCALING_CONDITION, "ScalerNotReady", f"KEDA: {msg}; {p.condition.message}")
    return p.condition


@dataclass(frozen=True)
class StartTimes:
    started_at: str | None
    expected_ready_at: str | None
    last_start_seconds: int | None


def start_times(old: Obj, phase: str, now: dt.datetime) -> StartTimes:
    """When a start from zero replicas began, when it should be Ready, and how long the last one took.

    A start is timed from the reconcile that first saw replicas above zero after Parked, to the one that
    sees the server Ready: the wait a parked model's first request sees, give or take a reconcile.
    """
    prev = (old.get("autoscaling") or {}) if isinstance(old.get("autoscaling"), dict) else {}
    last = prev.get("lastStartSeconds")
    started = prev.get("startedAt")
    was = old.get("phase")
    if phase == "Waking":
        if was != "Waking" or not started:
            started = st.iso(now)
        expected = None
        if last is not None:
            expected = st.iso(st.parse_time(started) + dt.timedelta(seconds=int(last)))
        return StartTimes(started, expected, last)
    if phase == "Ready" and was == "Waking" and started:
        took = int((now - st.parse_time(started)).total_seconds())
        return StartTimes(None, None, max(took, 0))
    return StartTimes(None, None, last)

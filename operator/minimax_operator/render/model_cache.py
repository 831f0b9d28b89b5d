"""A MiniMaxModelCache's objects: its claim, download Jobs and prune Jobs.

The claim holds one folder per verified commit (`revisions/ORG/NAME/COMMIT`, see
protocol.py), so a new revision downloads beside the one servers load.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from ..api.names import (
    APP_NAME,
    CACHE_KIND,
    CACHE_LABEL,
    COMPONENT_CLAIM,
    COMPONENT_DOWNLOAD,
    COMPONENT_LABEL,
    COMPONENT_PRUNE,
    COMPONENT_SERVER,
    INSTANCE_LABEL,
    MANAGED_BY_LABEL,
    MANAGER,
    MODEL_LABEL,
    NAME_LABEL,
    WEIGHTS_KEY_ANNOTATION,
)
from ..model.model_cache import ResolvedCache
from ..protocol import HF_HOME_FOLDER, MODELS_MOUNT, legacy_folder
from .meta import OperatorSettings, Owner, model_label, owner_reference, stamp

Obj = dict[str, Any]


def cache_owner(name: str, uid: str) -> Owner:
    return Owner(name=name, uid=uid, kind=CACHE_KIND)


def labels(rc: ResolvedCache, component: str | None = None) -> dict[str, str]:
    out = {
        NAME_LABEL: APP_NAME,
        INSTANCE_LABEL: rc.name,
        MANAGED_BY_LABEL: MANAGER,
        CACHE_LABEL: rc.name,
    }
    if component:
        out[COMPONENT_LABEL] = component
    return out


def selector(rc: ResolvedCache, component: str) -> dict[str, str]:
    return {INSTANCE_LABEL: rc.name, CACHE_LABEL: rc.name, COMPONENT_LABEL: component}


def _meta(rc: ResolvedCache, name: str, owner: Owner | None, component: str) -> Obj:
    meta: Obj = {"name": name, "namespace": rc.namespace, "labels": labels(rc, component)}
    if owner:
        meta["ownerReferences"] = [owner_reference(owner)]
    return meta


def claim(rc: ResolvedCache, owner: Owner | None) -> Obj | None:
    """The cache's PVC, or None when the cache uses an existing claim.

    Owned by the cache (so collected with it) only when retainOnDelete is false: days of
    downloading survive a `kubectl delete mmc` by default, and a cache of the same name and
    repo adopts the claim again, verified weights and all.
    """
    st = rc.spec.storage
    if st.existingClaim:
        return None
    spec: Obj = {"accessModes": [st.accessMode], "resources": {"requests": {"storage": rc.storage_size}}}
    if st.storageClassName:
        spec["storageClassName"] = st.storageClassName
    meta = _meta(rc, rc.claim_name, None if st.retainOnDelete else owner, COMPONENT_CLAIM)
    meta["labels"][MODEL_LABEL] = model_label(rc.repo)
    return stamp({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec})


def download_job_name(rc: ResolvedCache, attempt: int) -> str:
    base = f"{rc.name[:40]}-download-{rc.key[:8]}"
    return base if attempt == 0 else f"{base}-r{attempt}"


def _pod_spec(rc: ResolvedCache, container: Obj, beside: tuple[str, ...]) -> Obj:
    """A restricted pod on the claim; `beside`: servers already on a ReadWriteOnce claim, whose node it must share."""
    pod: Obj = {
        "restartPolicy": "Never",
        # Meets Pod Security "restricted": non-root, no escalation, no capabilities, seccomp.
        "securityContext": {
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "weights", "persistentVolumeClaim": {"claimName": rc.claim_name}}],
    }
    if beside and rc.access_mode == "ReadWriteOnce":
        term = {
            "labelSelector": {
                "matchLabels": {COMPONENT_LABEL: COMPONENT_SERVER, MANAGED_BY_LABEL: MANAGER},
                "matchExpressions": [{"key": INSTANCE_LABEL, "operator": "In", "values": sorted(beside)}],
            },
            "topologyKey": "kubernetes.io/hostname",
        }
        pod["affinity"] = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
        # The servers' node is a (tainted) GPU node; the affinity keeps the pod to that one node.
        pod["tolerations"] = [{"operator": "Exists", "effect": "NoSchedule"}]
    return pod


def _container(settings: OperatorSettings, args: list[str], env: list[Obj]) -> Obj:
    return {
        "name": "download",
        "image": settings.download_image,
        "command": ["minimax-operator"],
        "args": args,
        "env": env,
        "volumeMounts": [{"name": "weights", "mountPath": MODELS_MOUNT}],
        # Streaming to disk and hashing: half a core and little memory (peak RSS measured on the
        # real node: see docs/development.md). Two whole cores never fit a small CPU node.
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
    }


def download_job(
    rc: ResolvedCache,
    owner: Owner | None,
    settings: OperatorSettings,
    attempt: int = 0,
    beside: tuple[str, ...] = (),
    compile_folders: tuple[str, ...] = (),
) -> Obj:
    """The Job that downloads the revision into its commit's folder (`minimax-operator download`).

    `compile_folders`: the vLLM images' compile-cache folders to prepare (writable by any user).
    """
    d = rc.spec.download
    args = ["download", "--repo", rc.repo, "--root", MODELS_MOUNT, "--legacy-dir", legacy_folder(rc.repo)]
    args += ["--revision", rc.revision]
    for pattern in d.allowPatterns:
        args += ["--allow-pattern", pattern]
    for folder in compile_folders:
        args += ["--server-cache", f"{MODELS_MOUNT}/{folder}"]
    if d.deadlineSeconds:
        args += ["--deadline-seconds", str(d.deadlineSeconds)]
    env: list[Obj] = [
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
        {"name": "HF_XET_HIGH_PERFORMANCE", "value": "1"},
        # hf_xet's chunk cache on the PVC: a restarted pod resumes Xet files from it.
        {"name": "HF_HOME", "value": f"{MODELS_MOUNT}/{HF_HOME_FOLDER}"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    if d.endpoint:
        env.append({"name": "HF_ENDPOINT", "value": d.endpoint})
    if d.tokenSecretRef:
        # Through the environment only: never on a command line, in logs or in status.
        ref = {"name": d.tokenSecretRef.name, "key": d.tokenSecretRef.key}
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": ref}})
    pod_annotations = {WEIGHTS_KEY_ANNOTATION: rc.key, **d.podAnnotations}
    job: Obj = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(rc, download_job_name(rc, attempt), owner, COMPONENT_DOWNLOAD),
        "spec": {
            "backoffLimit": settings.download_backoff_limit,
            "template": {
                "metadata": {"labels": labels(rc, COMPONENT_DOWNLOAD), "annotations": pod_annotations},
                "spec": _pod_spec(rc, _container(settings, args, env), beside),
            },
        },
    }
    job["metadata"]["annotations"] = {WEIGHTS_KEY_ANNOTATION: rc.key}
    return stamp(job)


def prune_job_name(rc: ResolvedCache, paths: list[str], compile_folders: Sequence[str] = ()) -> str:
    what = sorted(paths) + [f"compile:{f}" for f in sorted(compile_folders)] if compile_folders else sorted(paths)
    digest = hashlib.sha256(json.dumps(what).encode()).hexdigest()[:8]
    return f"{rc.name[:40]}-prune-{digest}"


def prune_job(
    rc: ResolvedCache,
    owner: Owner | None,
    settings: OperatorSettings,
    paths: list[str],
    beside: tuple[str, ...] = (),
    compile_folders: Sequence[str] = (),
) -> Obj:
    """The Job that removes commit folders and compile-cache folders no server uses any more
    (`minimax-operator prune`)."""
    args = ["prune", "--root", MODELS_MOUNT]
    for path in sorted(paths):
        args += ["--path", path]
    for folder in sorted(compile_folders):
        args += ["--compile-folder", folder]
    container = _container(settings, args, [])
    container["resources"] = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
    job: Obj = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(rc, prune_job_name(rc, paths, compile_folders), owner, COMPONENT_PRUNE),
        "spec": {
            "backoffLimit": 3,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": labels(rc, COMPONENT_PRUNE), "annotations": {WEIGHTS_KEY_ANNOTATION: rc.key}},
                "spec": _pod_spec(rc, container, beside),
            },
        },
    }
    return stamp(job)


def render_cache(rc: ResolvedCache, owner: Owner | None, settings: OperatorSettings) -> list[Obj]:
    """The cache's objects, in the order the operator creates them (for `render`)."""
    objs = [claim(rc, owner), download_job(rc, owner, settings)]
    return [o for o in objs if o is not None]

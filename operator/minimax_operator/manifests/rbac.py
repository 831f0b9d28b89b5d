"""The RBAC rules the operator needs: one list, rendered into the Helm chart.

Each rule names the calls that need it (runtime.client.Kube and kopf's watches). The end-to-end
tests run the operator under exactly these rules, so a missing one fails a test; no
wildcard, and no Secrets: the download pod reads the Hugging Face token itself.
"""

from __future__ import annotations

from typing import Any

from ..api.names import CACHE_PLURAL, GROUP, PLURAL

Rule = dict[str, Any]

#: ChatOS: watched by name; read-modify-write with resourceVersion; create only with
#: --create-chatos-configmap. Also in each --allow-chatos-namespace (a shared ChatOS).
CHATOS_RULES: list[Rule] = [
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch", "create", "update"]},
]

#: Rules in every watched namespace (a Role each, or one ClusterRole for all namespaces).
NAMESPACED_RULES: list[Rule] = [
    # kopf watches the resources, patches finalizers; the reconciler reads them.
    {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["get", "patch"]},
    # Model caches: watched like the resources; created for resources without spec.cacheRef.
    {"apiGroups": [GROUP], "resources": [CACHE_PLURAL], "verbs": ["get", "list", "watch", "create", "patch"]},
    {"apiGroups": [GROUP], "resources": [f"{CACHE_PLURAL}/status"], "verbs": ["get", "patch"]},
    # Server-side apply of the PVC and Service (create on first apply); watched (the informers);
    # a claim an older release made for a resource is handed to its cache (owner reference, patch).
    {
        "apiGroups": [""],
        "resources": ["persistentvolumeclaims", "services"],
        "verbs": ["get", "list", "watch", "create", "patch"],
    },
    *CHATOS_RULES,
    # Download and server pods (watched): state, termination messages, and download progress from the log.
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    # Events: posted on the resources; FailedCreate read for Jobs whose pods are refused (quota, Pod Security).
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "list"]},
    # Quotas are read before anything is created, so that a model that can never fit costs no download.
    {"apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["list", "watch"]},
    # Watched (the informers); stale download Jobs are deleted.
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
    # Servers on one node; deleted (ours only) when a resource's layout moves to several nodes.
    {
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    # Servers over several nodes, where LeaderWorkerSet is installed (api.names.LWS_API_VERSION); deleted
    # (ours only) when a resource's layout moves back to one node.
    {
        "apiGroups": ["leaderworkerset.x-k8s.io"],
        "resources": ["leaderworkersets"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    # Autoscaling, where KEDA (and its HTTP add-on) is installed; scraping, where the Prometheus operator is.
    {
        "apiGroups": ["keda.sh"],
        "resources": ["scaledobjects"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    {
        "apiGroups": ["http.keda.sh"],
        "resources": ["httpscaledobjects"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    {
        "apiGroups": ["monitoring.coreos.com"],
        "resources": ["servicemonitors"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
]

#: Cluster-scoped, read-only, in every install mode: kopf watches namespaces (to match
#: --namespace globs such as team-*) and CRDs (to notice its resource appear or change).
CLUSTER_RULES: list[Rule] = [
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["get", "list", "watch"],
    },
]

#: In the operator's own namespace: the leader-election Lease (one replica reconciles at a time).
LEADER_ELECTION_RULES: list[Rule] = [
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
]

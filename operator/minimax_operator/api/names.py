"""Every name the operator writes on objects or reads back: kinds, labels, annotations, finalizer.

Why one module: these strings are API. They are on live objects (an upgrade must find
what the previous release wrote), in users' selectors and in Argo CD's health checks;
each is defined once here and imported everywhere else.
"""

from __future__ import annotations

GROUP = "minimax.chatos.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

KIND = "MiniMaxDeployment"
PLURAL = "minimaxdeployments"
SINGULAR = "minimaxdeployment"
SHORT_NAMES = ["mmd", "minimax"]
CATEGORIES = ["ai"]

CACHE_KIND = "MiniMaxModelCache"
CACHE_PLURAL = "minimaxmodelcaches"
CACHE_SINGULAR = "minimaxmodelcache"
CACHE_SHORT_NAMES = ["mmc"]

POLICY_KIND = "MiniMaxPolicy"
POLICY_PLURAL = "minimaxpolicies"

#: The field manager of every apply, and the value of app.kubernetes.io/managed-by.
MANAGER = "minimax-operator"
#: Holds a resource until its cleanup is done (kopf's finalizer has the same name).
FINALIZER = f"{GROUP}/finalizer"

# ---- well-known labels (Kubernetes' recommended set) ------------------------------------
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
#: app.kubernetes.io/name of every object the operator makes.
APP_NAME = "minimax"

# ---- the operator's labels ------------------------------------------------------------
#: On a MiniMaxDeployment's objects: its name.
OWNER_LABEL = f"{GROUP}/deployment"
#: On a cache's objects (claim, download and prune Jobs): the MiniMaxModelCache's name.
CACHE_LABEL = f"{GROUP}/cache"
#: On the weights claim: which repo it holds, so that a retained claim is re-used only for that model.
MODEL_LABEL = f"{GROUP}/model"
#: On a cache the operator created for resources without spec.cacheRef.
IMPLICIT_LABEL = f"{GROUP}/implicit-cache"

# ---- the operator's annotations -------------------------------------------------------
#: A hash of the desired object, so an unchanged object is never applied again.
HASH_ANNOTATION = f"{GROUP}/applied-hash"
#: On server pod templates and download Jobs: the identity of the weights (a change rolls the server).
WEIGHTS_KEY_ANNOTATION = f"{GROUP}/weights-key"
#: On the server Deployment (not its pods): the cache, claim and folder it serves, for the cache's
#: collection of unused commits. Not on the pod template: that would roll servers for nothing.
SERVES_ANNOTATION = f"{GROUP}/serves"
#: On an implicit cache: the resource it was first made for (for people reading it).
CREATED_FOR_ANNOTATION = f"{GROUP}/created-for"
#: On a ChatOS ConfigMap: model_id -> namespace/name of the entries the operator wrote.
OWNERS_ANNOTATION = f"{GROUP}/owners"

# ---- components (app.kubernetes.io/component) -----------------------------------------
COMPONENT_SERVER = "server"
COMPONENT_DOWNLOAD = "weights-download"
COMPONENT_PRUNE = "weights-prune"
COMPONENT_CLAIM = "weights"
#: The Service that sends a parked model's requests to KEDA's HTTP add-on.
COMPONENT_WAKE = "wake"

#: The vLLM server's port (Service, probes, ChatOS's base_url).
SERVER_PORT = 8000

# ---- LeaderWorkerSet (an add-on: a replica over several nodes) ---------------------------------

LWS_KIND = "LeaderWorkerSet"
LWS_API_VERSION = "leaderworkerset.x-k8s.io/v1"
LWS_PLURAL = "leaderworkersets"
#: The release the operator is tested with (hack/tools.env), named in MultiNodeUnavailable.
LWS_TESTED_VERSION = "v0.9.0"
#: Labels LWS puts on the pods of a group: the pod's place in it (0 is the leader).
LWS_WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"
LWS_GROUP_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/group-index"

# ---- KEDA (an add-on: autoscaling) and its HTTP add-on (waking a parked model) -------------------

SCALED_OBJECT_KIND = "ScaledObject"
KEDA_API_VERSION = "keda.sh/v1alpha1"
#: The release the operator is tested with (hack/tools.env), named when KEDA is missing.
KEDA_TESTED_VERSION = "v2.21.0"
HTTP_SCALED_OBJECT_KIND = "HTTPScaledObject"
KEDA_HTTP_API_VERSION = "http.keda.sh/v1alpha1"
KEDA_HTTP_TESTED_VERSION = "v0.12.0"
#: On an HTTPScaledObject: the add-on must not make a ScaledObject of its own (ours has its trigger).
KEDA_HTTP_SKIP_SCALED_OBJECT = "httpscaledobject.keda.sh/skip-scaledobject-creation"
#: The Service in front of a model that may be parked: its name is the resource's plus this.
WAKE_SUFFIX = "-wake"

# ---- Prometheus operator (an add-on: scraping the servers) --------------------------------------

SERVICE_MONITOR_KIND = "ServiceMonitor"
MONITORING_API_VERSION = "monitoring.coreos.com/v1"

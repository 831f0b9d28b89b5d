"""Command line: `run` the operator, `render` a resource offline, print the `crd`, `download` weights."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml

from .. import __version__
from ..api.names import API_VERSION, CACHE_KIND
from ..api.presets import PRESETS
from ..api.v1alpha1 import MiniMaxDeployment, MiniMaxModelCache, MiniMaxModelCacheSpec
from ..manifests import crd
from ..model.deployment import WeightsSource, resolve
from ..model.errors import LayoutError
from ..model.model_cache import implicit_cache, resolve_cache
from ..protocol import commit_folder
from ..render import chatos
from ..render import model_cache as render_model_cache
from ..render import server as render_server
from ..render.meta import OperatorSettings, Owner, implicit_cache_labels

DEFAULT_DOWNLOAD_IMAGE = f"ghcr.io/chatos/minimax-operator:{__version__}"


def _vllm_images(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        preset, sep, image = pair.partition("=")
        if not sep or preset not in PRESETS:
            raise SystemExit(f"--vllm-image wants PRESET=IMAGE with a preset of {', '.join(PRESETS)}; got {pair!r}")
        out[preset] = image
    return out


def cmd_render(args: argparse.Namespace) -> int:
    """Print the objects resources reconcile into, like `helm template`.

    A MiniMaxDeployment without spec.cacheRef also shows the MiniMaxModelCache it would
    create or share; one with spec.cacheRef needs that cache in the same input.
    """
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    docs = [d for d in yaml.safe_load_all(text) if d]
    out: list[dict[str, Any]] = []
    notes: list[str] = []
    settings = OperatorSettings(download_image=args.download_image)
    caches: dict[tuple[str, str], MiniMaxModelCacheSpec] = {}
    rendered: set[tuple[str, str]] = set()

    def render_cache(name: str, namespace: str, spec: MiniMaxModelCacheSpec, uid: str | None) -> None:
        if (namespace, name) in rendered:
            return
        rendered.add((namespace, name))
        rc = resolve_cache(name, namespace, spec)
        owner = render_model_cache.cache_owner(name, uid) if uid else None
        out.extend(render_model_cache.render_cache(rc, owner, settings))

    try:
        for doc in docs:
            if doc.get("kind") == CACHE_KIND:
                mmc = MiniMaxModelCache.model_validate(doc)
                namespace = mmc.metadata.get("namespace") or args.namespace
                caches[(namespace, mmc.metadata["name"])] = mmc.spec
                render_cache(mmc.metadata["name"], namespace, mmc.spec, mmc.metadata.get("uid"))
        for doc in docs:
            if doc.get("kind") == CACHE_KIND:
                continue
            mmd = MiniMaxDeployment.model_validate(doc)
            meta = mmd.metadata
            namespace = meta.get("namespace") or args.namespace
            if mmd.spec.cacheRef:
                cache_name = mmd.spec.cacheRef.name
                cache_spec = caches.get((namespace, cache_name))
                if cache_spec is None:
                    raise LayoutError("cacheRef", f"MiniMaxModelCache {cache_name} is not in {args.file}")
            else:
                cache_name, cache_spec = implicit_cache(mmd.spec)
                out.append(
                    {
                        "apiVersion": API_VERSION,
                        "kind": CACHE_KIND,
                        "metadata": {"name": cache_name, "namespace": namespace, "labels": implicit_cache_labels()},
                        "spec": cache_spec.model_dump(exclude_defaults=True),
                    }
                )
                render_cache(cache_name, namespace, cache_spec, None)
            rc = resolve_cache(cache_name, namespace, cache_spec)
            revision = rc.revision if re.fullmatch(r"[0-9a-f]{40}", rc.revision) else "COMMIT"
            w = WeightsSource(
                cache=cache_name,
                spec=cache_spec,
                claim_name=rc.claim_name,
                access_mode=rc.access_mode,
                path=commit_folder(rc.repo, revision),
            )
            r = resolve(meta["name"], namespace, mmd.spec, _vllm_images(args.vllm_image), w)
            owner = Owner(meta["name"], meta["uid"]) if meta.get("uid") else None
            out += render_server.render_server(r, owner)
            if revision == "COMMIT":
                notes.append(
                    f"# {meta['name']}: COMMIT is the commit {rc.revision} resolves to when the cache downloads it\n"
                )
            if mmd.spec.chatos.enabled:
                ref = mmd.spec.chatos.configMapRef
                notes.append(
                    f"# ChatOS: once {meta['name']} is ready, this entry is upserted into ConfigMap "
                    f"{ref.namespace or namespace}/{ref.name}, key {mmd.spec.chatos.key}:\n"
                    f"#   {json.dumps(chatos.chatos_entry(r))}\n"
                )
    except ValueError as e:  # pydantic's ValidationError and LayoutError
        print(f"error: {args.file}: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(out, sort_keys=False, width=120))
    sys.stdout.write("".join(notes))
    return 0


def cmd_crd(_: argparse.Namespace) -> int:
    sys.stdout.write(crd.crd_yaml())
    return 0


def cmd_manifests(args: argparse.Namespace) -> int:
    from ..manifests.generate import write

    for rel in write(Path(args.root)):
        print(f"wrote {rel}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import kopf
    from prometheus_client import start_http_server

    from ..controllers.settings import Settings
    from ..runtime.client import load_client
    from ..runtime.health import serve_health
    from ..runtime.leader import Elector, LeaseNamespaceMissing, default_namespace
    from .kopf_handlers import register
    from .operator import build

    kopf.configure(
        verbose=args.log_level == "debug",
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.PLAIN,
    )
    logging.getLogger().setLevel(args.log_level.upper())
    if args.log_level != "debug":  # kopf logs every handled event at INFO; keep the operator's own lines
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("leaderelection").setLevel(logging.WARNING)  # a line per Lease renewal otherwise
    settings = Settings(
        operator=OperatorSettings(
            download_image=args.download_image,
            download_backoff_limit=args.download_backoff_limit,
            prometheus_url=args.prometheus_url,
            keda_http_scaler=args.keda_http_scaler,
            keda_http_interceptor=args.keda_http_interceptor,
        ),
        vllm_images=_vllm_images(args.vllm_image),
        allow_chatos_namespaces=frozenset(args.allow_chatos_namespace),
        create_chatos_configmap=args.create_chatos_configmap,
        retry_base_seconds=args.retry_base_seconds,
    )
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig  # for kopf's own connection too
    client = load_client(args.kubeconfig)
    namespaces = args.namespace or []
    operator = build(client, settings, namespaces, workers=args.workers, resync_seconds=args.resync_seconds)
    registry = kopf.OperatorRegistry()
    register(registry, operator)
    # Metrics and health on every replica, leader or not.
    if args.metrics_port:
        start_http_server(args.metrics_port)
    elector = None
    if args.leader_elect:
        identity = f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
        elector = Elector(args.leader_election_id, args.leader_election_namespace or default_namespace(), identity)
    if args.health_port:
        serve_health(args.health_port, lambda: "leader" if elector is None or elector.leading.is_set() else "follower")
    if elector:
        try:
            elector.check()
        except LeaseNamespaceMissing as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        elector.start()
        waited = 0
        while not elector.leading.wait(1.0):  # a follower only waits; SIGTERM ends it as it is
            waited += 1
            if waited % 30 == 0:
                logging.getLogger(__name__).warning("not leading after %d s: %s", waited, elector.describe())
    try:
        operator.loop.start()  # fills the stores before the first reconcile
        kopf.run(registry=registry, clusterwide=not namespaces, namespaces=namespaces, standalone=True)
    finally:
        operator.loop.stop()
        if elector:
            elector.release()
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from ..download.job import main as download_main

    return download_main(args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="minimax-operator", description=__doc__)
    p.add_argument("--version", action="version", version=__version__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator")
    run.add_argument("--namespace", action="append", help="watch this namespace (repeat; globs allowed); default all")
    run.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then $KUBECONFIG)")
    run.add_argument(
        "--resync-seconds",
        type=float,
        default=600.0,
        help="how often every resource is re-checked from the caches besides its watch events (a safety net)",
    )
    run.add_argument("--workers", type=int, default=8, help="resources reconciled at once")
    run.add_argument("--metrics-port", type=int, default=8080, help="Prometheus metrics port (0: off)")
    run.add_argument("--health-port", type=int, default=8081, help="liveness endpoint /healthz port (0: off)")
    run.add_argument("--download-image", default=DEFAULT_DOWNLOAD_IMAGE, help="image of the download Jobs")
    run.add_argument("--vllm-image", action="append", default=[], metavar="PRESET=IMAGE", help="preset's vLLM image")
    run.add_argument("--allow-chatos-namespace", action="append", default=[], help="namespace of a shared ChatOS")
    run.add_argument("--create-chatos-configmap", action="store_true", help="create a missing ChatOS ConfigMap")
    run.add_argument("--retry-base-seconds", type=int, default=60, help="first wait before a failed download retries")
    run.add_argument("--download-backoff-limit", type=int, default=4, help="pod retries inside one download Job")
    defaults = OperatorSettings()
    run.add_argument(
        "--prometheus-url",
        default=defaults.prometheus_url,
        help="the Prometheus that scrapes the vLLM servers, as KEDA reaches it (spec.autoscaling)",
    )
    run.add_argument(
        "--keda-http-scaler",
        default=defaults.keda_http_scaler,
        help="host:port of KEDA's HTTP add-on external scaler (models with spec.autoscaling.minReplicas 0)",
    )
    run.add_argument(
        "--keda-http-interceptor",
        default=defaults.keda_http_interceptor,
        help="SERVICE.NAMESPACE:PORT of KEDA's HTTP add-on interceptor proxy, where ChatOS sends a model that parks",
    )
    run.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reconcile only while holding a Lease, so that several replicas can run (default on)",
    )
    run.add_argument("--leader-election-id", default="minimax-operator", help="name of the Lease")
    run.add_argument("--leader-election-namespace", help="namespace of the Lease (default: the operator pod's)")
    run.add_argument("--log-format", choices=["json", "plain"], default="json")
    run.add_argument("--log-level", choices=["debug", "info", "warning"], default="info")
    run.set_defaults(func=cmd_run)

    render = sub.add_parser(
        "render", help="print the objects MiniMaxDeployments and MiniMaxModelCaches become, offline"
    )
    render.add_argument(
        "-f", "--file", required=True, help="YAML file with MiniMaxDeployment and MiniMaxModelCache documents, or -"
    )
    render.add_argument("-n", "--namespace", default="default")
    render.add_argument("--download-image", default=DEFAULT_DOWNLOAD_IMAGE)
    render.add_argument("--vllm-image", action="append", default=[], metavar="PRESET=IMAGE")
    render.set_defaults(func=cmd_render)

    c = sub.add_parser("crd", help="print the CustomResourceDefinition")
    c.set_defaults(func=cmd_crd)

    m = sub.add_parser("manifests", help="write the CRD and the chart's RBAC rules from their sources")
    m.add_argument("--root", default=".", help="repository root")
    m.set_defaults(func=cmd_manifests)

    from ..download.job import add_arguments

    d = sub.add_parser("download", help="fill a model folder from the Hugging Face Hub (the download Job runs this)")
    add_arguments(d)
    d.set_defaults(func=cmd_download)

    from ..download.prune import add_prune_arguments, prune_main

    pr = sub.add_parser("prune", help="remove commit folders no server uses (the cache's prune Job runs this)")
    add_prune_arguments(pr)
    pr.set_defaults(func=prune_main)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    raise SystemExit(args.func(args))

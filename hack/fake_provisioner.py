"""Bind the local cluster's PVCs to hostPath PVs: a stand-in for a CSI provisioner.

kwok simulates kubelets but not storage; without a bound volume the scheduler
never places a pod that mounts a claim. This watches PVCs of the `standard`
StorageClass (the default) and creates a PV of the requested size, pre-bound to
the claim, as an external provisioner would. PVs of deleted claims are removed.
"""

from __future__ import annotations

import argparse
import logging

import kubernetes
from kubernetes.client.rest import ApiException

CLASS = "standard"


def pv_for(pvc: kubernetes.client.V1PersistentVolumeClaim) -> dict:
    meta = pvc.metadata
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": f"pvc-{meta.uid}",
            "annotations": {"pv.kubernetes.io/provisioned-by": "local.minimax.chatos.io/fake"},
        },
        "spec": {
            "capacity": {"storage": pvc.spec.resources.requests["storage"]},
            "accessModes": pvc.spec.access_modes,
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": CLASS,
            "hostPath": {"path": f"/tmp/minimax-fake-pv/{meta.uid}"},
            "claimRef": {"namespace": meta.namespace, "name": meta.name, "uid": meta.uid},
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    kubernetes.config.load_kube_config(config_file=args.kubeconfig)
    core = kubernetes.client.CoreV1Api()
    while True:
        w = kubernetes.watch.Watch()
        try:
            for ev in w.stream(core.list_persistent_volume_claim_for_all_namespaces, timeout_seconds=300):
                pvc = ev["object"]
                if (pvc.spec.storage_class_name or CLASS) != CLASS:
                    continue
                name = f"pvc-{pvc.metadata.uid}"
                if ev["type"] == "DELETED":
                    try:
                        core.delete_persistent_volume(name)
                        logging.info("deleted %s", name)
                    except ApiException as e:
                        if e.status != 404:
                            raise
                elif ev["type"] in ("ADDED", "MODIFIED") and not pvc.spec.volume_name and pvc.status.phase == "Pending":
                    try:
                        core.create_persistent_volume(pv_for(pvc))
                        logging.info("provisioned %s for %s/%s", name, pvc.metadata.namespace, pvc.metadata.name)
                    except ApiException as e:
                        if e.status != 409:
                            raise
        except (ApiException, OSError) as e:  # the API server restarted: watch again
            logging.warning("watch ended: %s", e)
            import time

            time.sleep(1)


if __name__ == "__main__":
    main()

"""Quota arithmetic and the reasons for refused pods."""

from __future__ import annotations

from minimax_operator.model import quota
from minimax_operator.render.status import creation_failure


def q(hard: dict[str, str], used: dict[str, str] | None = None, scopes: list[str] | None = None) -> dict:
    spec: dict = {"hard": hard}
    if scopes:
        spec["scopes"] = scopes
    return {"metadata": {"name": "team"}, "spec": spec, "status": {"hard": hard, "used": used or {}}}


def test_a_need_above_the_hard_limit_never_fits() -> None:
    need = quota.needs("nvidia.com/gpu", gpus=8, pods=1, storage="260Gi", storage_class=None)
    short = quota.shortfalls([q({"requests.nvidia.com/gpu": "4"})], need)
    assert [s.never_fits for s in short] == [True]
    assert str(short[0]) == "ResourceQuota team: requests.nvidia.com/gpu needs 8, 0 of 4 already used"


def test_used_quota_is_full_for_now_not_never() -> None:
    need = quota.needs("nvidia.com/gpu", gpus=2, pods=1, storage=None, storage_class=None)
    short = quota.shortfalls([q({"requests.nvidia.com/gpu": "4"}, {"requests.nvidia.com/gpu": "3"})], need)
    assert len(short) == 1 and not short[0].never_fits
    assert quota.shortfalls([q({"requests.nvidia.com/gpu": "4"}, {"requests.nvidia.com/gpu": "2"})], need) == []


def test_storage_quantities_and_storage_classes_are_compared_as_quantities() -> None:
    need = quota.needs("nvidia.com/gpu", gpus=0, pods=1, storage="260Gi", storage_class="fast")
    hard = {"requests.storage": "1Ti", "fast.storageclass.storage.k8s.io/requests.storage": "200Gi"}
    short = quota.shortfalls([q(hard)], need)
    assert [s.resource for s in short] == ["fast.storageclass.storage.k8s.io/requests.storage"]


def test_scoped_quotas_are_left_to_the_api_server() -> None:
    need = quota.needs("nvidia.com/gpu", gpus=8, pods=1, storage=None, storage_class=None)
    assert quota.shortfalls([q({"requests.nvidia.com/gpu": "0"}, scopes=["BestEffort"])], need) == []


def test_refusals_get_reasons_users_can_act_on() -> None:
    assert creation_failure("Error creating: pods x is forbidden: exceeded quota: team")[0] == "QuotaExceeded"
    assert (
        creation_failure('pods x is forbidden: violates PodSecurity "restricted:latest"')[0] == "PodSecurityViolation"
    )
    msg = "pods x is forbidden: maximum memory usage per Container is 1Gi, but limit is 8Gi"
    assert creation_failure(msg) == ("LimitRangeViolation", msg)
    assert creation_failure('admission webhook "x" denied the request')[0] == "AdmissionWebhookDenied"
    assert creation_failure("something else")[0] == "PodCreationFailed"

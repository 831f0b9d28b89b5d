"""How this operator instance behaves: its command-line flags, as the reconcilers read them."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..render.meta import OperatorSettings


@dataclass(frozen=True)
class Settings:
    operator: OperatorSettings = field(default_factory=OperatorSettings)
    vllm_images: dict[str, str] = field(default_factory=dict)
    allow_chatos_namespaces: frozenset[str] = frozenset()
    create_chatos_configmap: bool = False
    #: Waits before a failed download Job is tried again: base * 2^attempt, capped.
    retry_base_seconds: int = 60
    retry_max_seconds: int = 1800
    #: While a download runs: how often its progress is read from the pod's log (one request).
    progress_seconds: float = 10.0

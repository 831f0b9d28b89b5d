"""Effective settings of a MiniMaxModelCache, and the cache a resource without spec.cacheRef shares.

Defaults that depend on the preset (the repo, the claim's size) are resolved here,
never written back to spec.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass

from ..api.presets import PRESETS, Preset
from ..api.v1alpha1 import NAME_MAX, NAME_PATTERN, MiniMaxDeploymentSpec, MiniMaxModelCacheSpec
from . import layout
from .errors import LayoutError
from .layout import GB, GIB


def storage_size(preset: Preset | None, spec: MiniMaxDeploymentSpec | MiniMaxModelCacheSpec) -> str:
    if spec.storage.existingClaim:
        return ""  # the claim keeps its own size (the CRD refuses size with existingClaim)
    if spec.storage.size:
        return spec.storage.size
    if preset is None:
        raise LayoutError("storage.size", "a custom repo has no known size: set spec.storage.size (for example 500Gi)")
    # Checkpoint plus 20% for the Hub's metadata, partial files while resuming and a later revision.
    gib = math.ceil(preset.disk_gb * GB * 1.2 / GIB / 10) * 10
    return f"{gib}Gi"


@dataclass(frozen=True)
class ResolvedCache:
    """Effective settings of one MiniMaxModelCache."""

    name: str
    namespace: str
    spec: MiniMaxModelCacheSpec
    repo: str
    storage_size: str
    claim_name: str
    #: The spec's access mode, or the existing claim's once observed.
    access_mode: str | None
    #: The MiniMaxDeployment an implicit cache was made for (its annotation), if any.
    created_for: str | None = None

    @property
    def revision(self) -> str:
        return self.spec.revision or "main"

    @property
    def key(self) -> str:
        """Identity of what is downloaded: a change starts a new download Job."""
        d = self.spec.download
        blob = json.dumps([self.repo, self.revision, sorted(d.allowPatterns), d.endpoint, self.claim_name])
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


CACHE_NAME_MAX = NAME_MAX - 8  # room for "-weights" in the claim's name


def resolve_cache(name: str, namespace: str, spec: MiniMaxModelCacheSpec) -> ResolvedCache:
    """Effective settings of a cache, or LayoutError naming the field to change."""
    if len(name) > CACHE_NAME_MAX or not re.match(NAME_PATTERN, name):
        raise LayoutError("metadata.name", f"must be a DNS-1035 label of at most {CACHE_NAME_MAX} characters")
    preset = PRESETS.get(spec.model) if spec.model else None
    repo = spec.repo or (preset.repo if preset else "")
    if not repo:
        raise LayoutError("model", "set a preset in spec.model or a Hugging Face repo in spec.repo")
    return ResolvedCache(
        name=name,
        namespace=namespace,
        spec=spec,
        repo=repo,
        storage_size=storage_size(preset, spec),
        claim_name=spec.storage.existingClaim or f"{name}-weights",
        access_mode=None if spec.storage.existingClaim else spec.storage.accessMode,
    )


def implicit_cache(spec: MiniMaxDeploymentSpec, legacy_claim: str | None = None) -> tuple[str, MiniMaxModelCacheSpec]:
    """The cache a resource without spec.cacheRef shares with every resource of the same weights.

    Its name is derived from what decides the bytes and where they live (repo, revision,
    mirror, patterns, storage), so that two resources of one model find the same cache and a
    resource that wants other weights or storage gets its own. `legacy_claim`: the claim an
    older operator filled for this very resource, adopted as the cache's existing claim.
    """
    preset = PRESETS.get(spec.model) if spec.model else None
    storage = (
        spec.storage.model_copy(update={"existingClaim": legacy_claim, "size": None})
        if legacy_claim
        else layout.storage(spec, preset)
    )
    cache = MiniMaxModelCacheSpec(
        model=spec.model, repo=spec.repo, revision=spec.revision, storage=storage, download=spec.download
    )
    repo = spec.repo or (preset.repo if preset else "")
    identity = json.dumps(
        [
            repo,
            spec.revision or "main",
            spec.download.endpoint,
            sorted(spec.download.allowPatterns),
            storage.size,
            storage.storageClassName,
            storage.accessMode,
            storage.existingClaim,
        ]
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9]+", "-", repo.split("/", 1)[-1].lower()).strip("-") or "model"
    if not slug[0].isalpha():
        slug = "m-" + slug
    return f"{slug[: CACHE_NAME_MAX - 9].rstrip('-')}-{digest}", cache

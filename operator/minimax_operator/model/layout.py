"""How one replica is laid out over GPUs and nodes: the spec's choice, or the operator's.

Why a module of its own: the layout decides the pods' GPU limit, whether a replica is one
Deployment pod or a LeaderWorkerSet group, the claim's access mode and the compile cache's
folder; the resource, its implicit cache and the checks all read it, so it is computed once,
here, from the spec and the preset.

vLLM lays a replica out as tensor x pipeline ranks; with `--nnodes N` (no Ray) it puts
`tensor x pipeline / N` consecutive ranks on each node. vLLM's recipes for models bigger than
a node use TP = the GPUs of a node and PP = the nodes: tensor parallelism stays on NVLink and
only the pipeline's activations cross the network. That is what the operator chooses when a
preset's weights do not fit one node and the spec names no layout.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..api.presets import Preset
from ..api.v1alpha1 import MiniMaxDeploymentSpec, StorageSpec

GB, GIB = 10**9, 2**30
#: Weights plus a little (CUDA context, activations): below this, vLLM has no room for a KV cache.
WEIGHTS_HEADROOM = 1.05
#: Most nodes one replica spans (vLLM's recipes stop at 4; LWS groups of 16 still schedule).
MAX_NODES = 16


@dataclass(frozen=True)
class Layout:
    tensor: int
    pipeline: int = 1
    nodes: int = 1
    #: Engine copies inside the replica (vLLM's --data-parallel-size), on its one node.
    data: int = 1
    #: True when the spec named none and the operator chose it from the preset's size.
    chosen: bool = False

    @property
    def gpus(self) -> int:
        """GPUs of one replica (vLLM's world size times its data-parallel engines)."""
        return self.tensor * self.pipeline * self.data

    @property
    def gpus_per_pod(self) -> int:
        """The GPU limit of each pod: a node's share of the replica."""
        return self.gpus // self.nodes if self.gpus % self.nodes == 0 else 0

    @property
    def multi_node(self) -> bool:
        return self.nodes > 1

    def describe(self) -> str:
        """As `kubectl get` shows it: `TP8`, `TP8xPP2 2 nodes`."""
        text = f"TP{self.tensor}" + (f"xPP{self.pipeline}" if self.pipeline > 1 else "")
        text += f"xDP{self.data}" if self.data > 1 else ""
        return text + (f" {self.nodes} nodes" if self.multi_node else "")


def fits(preset: Preset, spec: MiniMaxDeploymentSpec, gpus: int) -> bool:
    """Whether `gpus` GPUs of the spec's size hold the preset's weights, with room to serve."""
    util = spec.gpuMemoryUtilization or 0.9
    return needed_with_headroom(preset) <= gpus * spec.gpu.memoryGiB * util


def needed_with_headroom(preset: Preset) -> float:
    """GiB the weights need with headroom: what `fits` compares (the tenancy policy's CEL repeats it)."""
    return round(preset.weights_vram_gb * GB / GIB * WEIGHTS_HEADROOM, 3)


def layout(spec: MiniMaxDeploymentSpec, preset: Preset | None) -> Layout:
    """The spec's layout; where it names none and the preset's weights exceed one node, the nodes
    vLLM's recipe would use (TP = GPUs per node, PP = nodes)."""
    tp = spec.tensorParallelSize or (preset.tensor_parallel_size if preset else 1)
    named = spec.tensorParallelSize or spec.pipelineParallelSize or spec.nodes or spec.dataParallelSize
    if preset is not None and not named and not fits(preset, spec, tp):
        per_node = spec.gpu.perNode
        for n in range(1, MAX_NODES + 1):
            if fits(preset, spec, per_node * n):
                return Layout(tensor=per_node, pipeline=n, nodes=n, chosen=True)
    return Layout(
        tensor=tp, pipeline=spec.pipelineParallelSize or 1, nodes=spec.nodes or 1, data=spec.dataParallelSize or 1
    )


def storage(spec: MiniMaxDeploymentSpec, preset: Preset | None) -> StorageSpec:
    """The spec's storage; a replica over several nodes mounts the claim on each, so there an access
    mode left out means ReadWriteMany (a ReadWriteOnce claim attaches to one node)."""
    if "accessMode" in spec.storage.model_fields_set or spec.storage.existingClaim:
        return spec.storage
    if layout(spec, preset).multi_node:
        return spec.storage.model_copy(update={"accessMode": "ReadWriteMany"})
    return spec.storage

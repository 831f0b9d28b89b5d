"""The `vllm serve` flags the operator owns, in every spelling vLLM accepts.

Why a module of its own: the operator derives these settings from the spec (the
served name is ChatOS's model_id, the parallel sizes are the pods' GPU limit, the
port and host are what the probes and the Service use). If `extraArgs` could set
them, the server would disagree with the resource. One list here feeds both the
CRD's CEL rule (so `kubectl apply` refuses) and the Python check (for `render` and
for objects written before the rule existed).

What vLLM accepts, read from `vllm/utils/argparse_utils.py` (FlexibleArgumentParser)
and `vllm/engine/arg_utils.py` at the pinned versions 0.10.2, 0.11.2, 0.20.0 and 0.24.0:
- `--flag value` and `--flag=value`;
- underscores for dashes in a long flag's name (`--tensor_parallel_size`);
- argparse's abbreviations, since vLLM keeps `allow_abbrev` on: any unambiguous
  prefix (`--tensor-par 8`, and for short aliases `-t 8` for `-tp`);
- short aliases (`-tp`, `-pp`, `-dp`, `-dpl`, `-pcp`, `-ep`, `-n`, `-r`);
- `--config FILE`, a YAML file of arguments that could set any of the above;
- `--model` (moved to the positional model by `vllm serve`).
So an argument is refused when its name (the part before `=`, underscores read as
dashes) is a prefix of an owned long flag, or of an owned short alias.
"""

from __future__ import annotations

#: Owned long flags and why each is owned (the field that sets it instead).
OWNED_LONG: dict[str, str] = {
    "--model": "the model path comes from the weights",
    "--served-model-name": "spec.servedModelName",
    "--tensor-parallel-size": "spec.tensorParallelSize",
    "--pipeline-parallel-size": "multi-node serving is not supported in v1alpha1",
    "--data-parallel-size": "spec.replicas",
    "--data-parallel-size-local": "spec.replicas",
    "--prefill-context-parallel-size": "spec.tensorParallelSize",
    "--enable-expert-parallel": "spec.expertParallel",
    "--no-enable-expert-parallel": "spec.expertParallel",
    "--nnodes": "multi-node serving is not supported in v1alpha1",
    "--node-rank": "multi-node serving is not supported in v1alpha1",
    "--headless": "the server must serve HTTP",
    "--host": "the Service and probes use 0.0.0.0:8000",
    "--port": "the Service and probes use 0.0.0.0:8000",
    "--uds": "the Service and probes use 0.0.0.0:8000",
    "--config": "a config file could set any owned flag",
}

#: Owned short aliases, by the long flag they stand for.
OWNED_SHORT: dict[str, str] = {
    "-tp": "--tensor-parallel-size",
    "-pp": "--pipeline-parallel-size",
    "-dp": "--data-parallel-size",
    "-dpl": "--data-parallel-size-local",
    "-pcp": "--prefill-context-parallel-size",
    "-ep": "--enable-expert-parallel",
    "-n": "--nnodes",
    "-r": "--node-rank",
}


#: Environment variables of the vLLM container the operator owns, and why: a user's entry of the
#: same name would come later in the list, and the last one wins.
OWNED_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "the server loads only the verified weights on the claim, never from the Hub",
    "VLLM_ENGINE_READY_TIMEOUT_S": "spec.vllm.startupTimeoutSeconds",
    "VLLM_NO_USAGE_STATS": "no usage reports leave the cluster",
    "XDG_CACHE_HOME": "the compile cache lives on the claim, per vLLM image",
    "TRITON_CACHE_DIR": "the compile cache lives on the claim, per vLLM image",
    "FLASHINFER_WORKSPACE_BASE": "the compile cache lives on the claim, per vLLM image",
}


def env_cel_rule() -> str:
    names = "[" + ", ".join(f"'{n}'" for n in OWNED_ENV) + "]"
    return f"!has(self.env) || self.env.all(e, !(e.name in {names}))"


def env_cel_message() -> str:
    return "env must not set a variable the operator owns: " + ", ".join(OWNED_ENV)


def owned_flag(arg: str) -> str | None:
    """The owned long flag that `arg` would set in vLLM, or None."""
    if not arg.startswith("-") or len(arg) < 2 or arg[1].isdigit():
        return None  # a value (including negative numbers), not an option
    key = arg.split("=", 1)[0].split(" ", 1)[0]
    if key.startswith("--"):
        if len(key) <= 2:
            return None
        name = key.replace("_", "-")
        matches = [f for f in OWNED_LONG if f.startswith(name)]
        return matches[0] if matches else None
    matches = [long for short, long in OWNED_SHORT.items() if short.startswith(key)]
    return matches[0] if matches else None


def cel_rule() -> str:
    """The same test in CEL, for the CRD (the strings extension: split, replace)."""
    longs = "[" + ", ".join(f"'{f}'" for f in OWNED_LONG) + "]"
    shorts = "[" + ", ".join(f"'{f}'" for f in OWNED_SHORT) + "]"
    key = "a.split('=')[0].split(' ')[0]"
    is_long = f"a.startsWith('--') && size({key}) > 2 && {longs}.exists(f, f.startsWith({key}.replace('_', '-')))"
    is_short = (
        "!a.startsWith('--') && a.startsWith('-') && size(a) > 1 && !a.matches('^-[0-9]') && "
        f"{shorts}.exists(s, s.startsWith({key}))"
    )
    return f"!has(self.extraArgs) || self.extraArgs.all(a, !(({is_long}) || ({is_short})))"


def cel_message() -> str:
    return (
        "extraArgs must not set a flag the operator owns, in any spelling vLLM accepts (abbreviations, "
        "underscores, =value, short aliases): "
        + ", ".join([*OWNED_LONG, *OWNED_SHORT])
        + ". Use spec.servedModelName, spec.tensorParallelSize, spec.expertParallel and spec.replicas instead"
    )

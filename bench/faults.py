"""The operator under faults, with any seed: SIGKILLed at random points and the API server restarted
once while resources download, serve and are deleted (the scenario of tests/harness/faults.py).

Usage: .venv/bin/python -m bench.faults [--seed 1] [--resources 30] [--kills 20]
Ends with one key=value line: the seed, the faults, seconds to settle after the last fault, problems.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from pathlib import Path

from tests.harness import faults
from tests.harness.cluster import Cluster, local_cluster, operator_identity_kubeconfig


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--resources", type=int, default=30)
    p.add_argument("--kills", type=int, default=20)
    args = p.parse_args()
    name = f"mmfault-{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory() as tmp, local_cluster(None, "mmfault", name=name) as kubeconfig:
        cluster = Cluster(kubeconfig, audit_log=None)
        faults.prepare(cluster)
        identity = operator_identity_kubeconfig(cluster, Path(tmp) / "operator-kubeconfig")
        report = faults.run(cluster, name, identity, Path(tmp), args.seed, args.resources, args.kills)
    for problem in report.problems:
        print(f"problem: {problem}", file=sys.stderr)
    print(report.line())
    return 1 if report.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())

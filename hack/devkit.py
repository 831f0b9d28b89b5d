"""What the local cluster's add-on runners share (hack/lws.py, hack/autoscaling.py): the pinned tools,
kubectl against a kubeconfig, a free port, and a CA with one serving certificate.

Why a module of its own: both runners start controllers as processes on this machine and serve
webhooks or APIs to the API server over TLS; each had its own copy of these helpers.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


def tools(flag: str | None = None) -> Path:
    """The folder of the tools hack/tools.sh builds and pins (`--lws`, `--autoscaling`: those add-ons')."""
    out = subprocess.run(
        [str(HERE / "tools.sh"), *([flag] if flag else [])], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip())


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None, check: bool = True) -> str:
    """The pinned kubectl's output; a RuntimeError naming the command when it fails (unless check=False)."""
    out = subprocess.run(
        [str(tools() / "kubectl"), "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, input=stdin
    )
    if out.returncode and check:
        raise RuntimeError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def certificates(folder: Path, ca_name: str, name: str, sans: list[str]) -> bytes:
    """A CA and one serving certificate (ca.crt, tls.crt, tls.key, as controller-runtime and KEDA read them).

    Made once per folder: a restarted runner keeps the CA the API server already trusts.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ca, key = folder / "ca.crt", folder / "ca.key"
    if not (folder / "tls.crt").exists():

        def run(*a: str) -> None:
            subprocess.run(["openssl", *a], check=True, capture_output=True)

        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", f"/CN={ca_name}",
            "-keyout", str(key), "-out", str(ca))  # fmt: skip
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", str(folder / "tls.key"), "-out", str(folder / "tls.csr"))  # fmt: skip
        (folder / "san.cnf").write_text(f"subjectAltName={','.join(sans)}\n")
        run("x509", "-req", "-in", str(folder / "tls.csr"), "-CA", str(ca), "-CAkey", str(key), "-CAcreateserial",
            "-days", "3650", "-extfile", str(folder / "san.cnf"), "-out", str(folder / "tls.crt"))  # fmt: skip
    return ca.read_bytes()

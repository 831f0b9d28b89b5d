"""Benchmark the weight downloader against a Hub on loopback.

Serves a repository of about 2 GB in shards (tests/harness/fakehub.py) and times, in one run:
  - `minimax-operator download` (fetch + sha256 verification + marker),
  - `hf download` (the CLI that replaced the seed guide's huggingface-cli),
  - plain `curl` of the same files (8 in parallel, no verification),
then kills our downloader at 50 % and measures the bytes the resumed run fetches beyond
the repository's size. Ends with one line:
  download_vs_curl=<ratio> hf_cli_vs_curl=<ratio> resume_extra=<fraction>
(ratio = seconds / curl's seconds; 1.0 is as fast as curl).

Usage: .venv/bin/python -m bench.download [--gb 2] [--shards 8] [--runs 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.harness.fakehub import FakeHub, make_files

REPO = "MiniMaxAI/Bench"


def env(work: Path, hub: FakeHub) -> dict[str, str]:
    return {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(work / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "MINIMAX_TERMINATION_LOG": str(work / "termination"),
    }


def ours(hub: FakeHub, dest: Path, work: Path) -> list[str]:
    return [sys.executable, "-m", "minimax_operator", "download", "--repo", REPO, "--dest", str(dest)]


def timed(args: list[str], environment: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, env=environment, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def curl_args(hub: FakeHub, dest: Path, names: list[str]) -> list[str]:
    args = ["curl", "-sSf", "--parallel", "--parallel-max", "8", "--create-dirs"]
    repo = hub.repos[REPO]
    for name in names:
        args += ["-o", str(dest / name), f"{hub.url}/{REPO}/resolve/{repo.commit}/{name}"]
    return args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gb", type=float, default=2.0)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--runs", type=int, default=2, help="runs per tool; the best is kept")
    args = parser.parse_args()
    hf = shutil.which("hf", path=str(Path(sys.executable).parent)) or "hf"
    with tempfile.TemporaryDirectory(prefix="minimax-bench-") as tmp:
        work = Path(tmp)
        files = make_files(work / "src", args.shards, int(args.gb * 1e9 / args.shards))
        total = sum(p.stat().st_size for p in files.values())
        with FakeHub() as hub:
            hub.add_repo(REPO, files)
            e = env(work, hub)
            times: dict[str, float] = {}
            for tool in ("curl", "hf", "minimax"):
                best = float("inf")
                for run in range(args.runs):
                    dest = work / f"{tool}-{run}"
                    if tool == "curl":
                        cmd = curl_args(hub, dest, list(files))
                    elif tool == "hf":
                        cmd = [hf, "download", REPO, "--local-dir", str(dest), "--max-workers", "8"]
                    else:
                        cmd = ours(hub, dest, work)
                    best = min(best, timed(cmd, e))
                    shutil.rmtree(dest)
                    shutil.rmtree(work / "hf-home", ignore_errors=True)
                times[tool] = best
                print(f"{tool:8s} {best:6.2f} s  {total / best / 1e6:7.0f} MB/s", flush=True)

            # Resume: kill at 50 % of the bytes served, then run again.
            dest = work / "resume"
            served0 = hub.total_served()
            proc = subprocess.Popen(ours(hub, dest, work), env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while hub.total_served() - served0 < total / 2 and proc.poll() is None:
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed_at = hub.total_served() - served0
            subprocess.run(ours(hub, dest, work), env=e, check=True, stdout=subprocess.DEVNULL)
            fetched = hub.total_served() - served0
            resume_extra = (fetched - total) / total
            print(
                f"resume: killed after {killed_at / 1e9:.2f} GB; "
                f"{fetched / 1e9:.3f} GB fetched for {total / 1e9:.3f} GB"
            )
    print(
        f"download_vs_curl={times['minimax'] / times['curl']:.2f} "
        f"hf_cli_vs_curl={times['hf'] / times['curl']:.2f} resume_extra={resume_extra:.4f}"
    )


if __name__ == "__main__":
    main()

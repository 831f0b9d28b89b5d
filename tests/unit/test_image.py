"""The operator image: its Dockerfile lints clean and the wheel it installs builds with the CLI."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dockerfile_lints_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    out = subprocess.run(
        [str(hadolint), "--failure-threshold", "info", str(ROOT / "images" / "operator" / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_wheel_has_the_package_and_the_command(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("minimax_operator-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "minimax_operator/download/job.py" in names and "minimax_operator/app/cli.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "minimax-operator = minimax_operator.app.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert not any(n.startswith("tests/") for n in names)

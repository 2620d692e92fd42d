"""The project as a wheel, installed (not editable) in a fresh environment: the smoke search and
the export run from an unrelated directory, write there, and write nothing where the project is
installed. The environment borrows the dependencies of this one (a line in a .pth file) so no
download is needed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _files(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*") if p.is_file()}


def _source_copy(destination: Path) -> Path:
    """The checkout's files (not the ignored ones), so building leaves nothing in it."""
    listed = subprocess.check_output(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, text=True
    )
    for name in listed.splitlines():
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    return destination


def test_a_wheel_install_runs_the_smoke_search_and_the_export_from_anywhere(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(_source_copy(tmp_path / "src")),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("spherical_bn-*.whl")
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    # This environment's packages (torch, optuna, ray, ...) but not its editable checkout: the
    # .pth files of a directory added this way are not read.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--prefix",
            str(env_dir),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    installed = _files(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*args: str) -> str:
        proc = subprocess.run(
            [python, *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    where = run("-c", "import search, studies; print(search.__file__, studies.__file__)")
    assert all(path.startswith(str(site)) for path in where.split()), where
    out = run("-m", "run_search", "--smoke-test", "--no-ray")
    assert "optuna-dashboard sqlite:///studies/smoke.db" in out
    assert (elsewhere / "studies" / "smoke.db").is_file()
    out = run(
        str(env_dir / "bin" / "spherical-export"),
        "--storage",
        "sqlite:///studies/smoke.db",
        "--report",
        "report",
    )
    assert "wrote best_hyper_parameters.py" in out
    assert (elsewhere / "report" / "digits-resnet20.md").is_file()
    changed = {p for p, t in _files(site).items() if installed.get(p) != t}
    assert not changed, f"written under site-packages: {sorted(changed)[:5]}"

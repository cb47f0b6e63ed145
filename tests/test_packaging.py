"""Packaging: a wheel built from the project holds every subpackage and runs a job without ``-e``.

``make`` installs the project in editable mode, which hides a subpackage missing from the
wheel (``nmbrl_brian.parts`` once was). This test builds the wheel from the working tree,
installs it (without its dependencies, which the test's environment already has) into a
fresh folder outside the repository, and runs ``nmbrl run`` from that folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = {
    path.parent.relative_to(ROOT).as_posix()
    for path in (ROOT / "nmbrl_brian").rglob("__init__.py")
    if "__pycache__" not in path.parts
}


@pytest.mark.slow
def test_wheel_installs_without_editable_mode_and_runs_a_job(tmp_path):
    wheels, site, out = tmp_path / "wheels", tmp_path / "site", tmp_path / "out"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, f"pip wheel failed:\n{build.stderr[-2000:]}"
    (wheel,) = wheels.glob("nmbrl_brian-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    folders = {name.rsplit("/", 1)[0] for name in names if name.endswith("/__init__.py")}
    assert SUBPACKAGES <= folders, f"the wheel lacks {sorted(SUBPACKAGES - folders)}"
    assert "nmbrl_brian/configs/cartpole_dense.toml" in names, "the wheel lacks the shipped configs"
    assert "nmbrl_brian/energy_profiles.toml" in names, "the wheel lacks the energy profiles"

    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, f"pip install failed:\n{install.stderr[-2000:]}"

    # Outside the repository, with the installed folder first on the path: the wheel's code runs.
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = (
        "import nmbrl_brian, nmbrl_brian.loop, nmbrl_brian.parts, nmbrl_brian.equations.cartpole;"
        "print(nmbrl_brian.__file__)"
    )
    where = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert where.returncode == 0, f"the installed package does not import:\n{where.stderr[-2000:]}"
    assert Path(where.stdout.strip()).is_relative_to(site), f"imported {where.stdout.strip()}, not the wheel"

    config = site / "nmbrl_brian" / "configs" / "cartpole_dense.toml"
    job = subprocess.run(
        [sys.executable, "-m", "nmbrl_brian", "run", "--config", str(config), "--set", "total_env_steps=1000",
         "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert job.returncode == 0, f"nmbrl run from the wheel failed:\n{job.stderr[-2000:]}"
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    assert (run_dir / "metrics.csv").is_file(), "the job wrote no metrics.csv"

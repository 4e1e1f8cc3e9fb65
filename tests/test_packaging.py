"""The wheel and the sdist: what a user gets from ``pip install`` runs from any folder.

The slow test builds the sdist, builds the wheel from it (as pip does for an sdist), installs
the wheel into a fresh virtual environment and runs the commands from an unrelated folder. The
fresh environment borrows the dependencies (torch, numba, ...) of the one running the tests
through a ``.pth`` line, which adds their folder without running its ``.pth`` files, so the
editable install of the checkout is not visible there: unfoldgen comes from the wheel alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["unfoldgen/py.typed", "unfoldgen/templates/model.py.j2", "unfoldgen/templates/kernel.py.j2",
           "unfoldgen/templates/prox/soft_threshold.py.j2", "unfoldgen/operators/prox/norm1.py",
           "unfoldgen/specs/lista.yaml", "unfoldgen/specs/lista_small.yaml"]


def test_package_list_names_every_package_folder() -> None:
    """pyproject lists the packages explicitly (two of them are mapped from top-level folders):
    a new subpackage missing from the list would be missing from the wheel."""
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "unfoldgen").rglob("__init__.py")}
    assert set(config["packages"]) == folders | set(config["package-dir"])
    assert config["package-dir"] == {"unfoldgen.templates": "templates", "unfoldgen.specs": "specs"}


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_wheel_installs_and_runs_from_another_folder(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    env = {key: value for key, value in os.environ.items() if not key.startswith("UNFOLDGEN_")}
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)], tmp_path, env)
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    with tarfile.open(sdist) as archive:
        sdist_names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"templates/model.py.j2", "specs/lista.yaml", "unfoldgen/py.typed"} <= sdist_names
    with zipfile.ZipFile(wheel) as archive:
        assert set(SHIPPED) <= set(archive.namelist())

    environment = tmp_path / "env"
    venv.create(environment, with_pip=False)
    python = environment / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp_path, env).strip())
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
          str(wheel)], tmp_path, env)

    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "small.yaml").write_text((ROOT / "specs" / "lista_small.yaml").read_text())
    located = _run([str(python), "-c", "import unfoldgen; print(unfoldgen.__file__)"], work, env)
    assert Path(located.strip()).is_relative_to(environment), located
    unfoldgen = str(environment / "bin" / "unfoldgen")
    built = _run([unfoldgen, "build", "small.yaml", "-o", "out"], work, env)
    assert (work / "out" / "lista_small" / "model.py").is_file(), built
    short = ["--steps", "4", "--validate-every", "2", "--validation-samples", "16", "--batch-size", "8"]
    stopped = _run([unfoldgen, "train", "small.yaml", "--out", "run", "--stop-after", "2", *short], work, env)
    assert "stopped after step 2" in stopped
    _run([unfoldgen, "train", "small.yaml", "--out", "run", "--resume", *short], work, env)
    _run([unfoldgen, "export", "small.yaml", "--weights", "run/weights.pt", "-o", "exported"], work, env)
    assert (work / "exported" / "kernel.py").is_file()
    demo = _run([str(python), "-m", "unfoldgen.demo"], work, env, timeout=600)
    assert "torch vs numba" in demo
    assert sorted(path.name for path in work.iterdir()) == ["exported", "out", "run", "small.yaml"]

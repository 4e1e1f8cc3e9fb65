"""Test 5: rebuilding gives byte-identical files, and generated/ is a fresh build of specs/."""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SPECS, write_spec

from unfoldgen.compiler import STAGING_PREFIX, build


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_generated_is_fresh_and_deterministic(tmp_path, path):
    first = build(path, tmp_path / "a")
    second = build(path, tmp_path / "b")
    committed = ROOT / "generated" / first.program.name
    for name in first.files:
        assert (first.directory / name).read_bytes() == (second.directory / name).read_bytes()
        assert filecmp.cmp(first.directory / name, committed / name, shallow=False), (
            f"generated/{first.program.name}/{name} is stale: run `make generated`"
        )


def test_generated_files_name_version_and_spec_hash(tmp_path):
    result = build(SPECS[0], tmp_path)
    for name, text in result.files.items():
        assert "unfoldgen 0.1.0" in text.splitlines()[0], name
        assert result.program.spec_hash[:16] in text.splitlines()[0], name


def test_rebuild_replaces_previous_output(tmp_path):
    build(SPECS[0], tmp_path)
    result = build(SPECS[0], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [result.program.name]


# A child process that builds a spec and stops for good after writing its second file: the
# parent kills it there with SIGKILL, mid-build.
STALLED_BUILD = """
import os, sys, time
from unfoldgen.compiler import build
real_fsync, written = os.fsync, []
def stalling_fsync(fd):
    real_fsync(fd)
    written.append(fd)
    if len(written) == 2:
        print("STAGED", flush=True)
        time.sleep(600)
os.fsync = stalling_fsync
build(sys.argv[1], sys.argv[2])
"""


def kill_midway(spec: Path, outdir: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", STALLED_BUILD, str(spec), str(outdir)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "STAGED"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_build_killed_midway_leaves_the_previous_output_intact(tmp_path):
    spec = yaml.safe_load((ROOT / "specs" / "nnls.yaml").read_text())
    first = write_spec(tmp_path, {**spec, "algorithm": {**spec["algorithm"], "layers": 3}})
    outdir = tmp_path / "out"
    before = snapshot(build(first, outdir).directory)
    second = write_spec(tmp_path, {**spec, "algorithm": {**spec["algorithm"], "layers": 4}})
    kill_midway(second, outdir)
    assert snapshot(outdir / "nnls") == before
    assert [p.name for p in outdir.iterdir() if p.name.startswith(STAGING_PREFIX)]  # what the kill left
    result = build(second, outdir)
    assert snapshot(result.directory) != before and "LAYERS = 4" in (result.directory / "model.py").read_text()
    assert [p.name for p in outdir.iterdir()] == ["nnls"]  # the next build removed the leftovers


def test_first_build_killed_midway_leaves_no_output(tmp_path):
    outdir = tmp_path / "out"
    kill_midway(ROOT / "specs" / "nnls.yaml", outdir)
    assert not (outdir / "nnls").exists()


def test_build_is_byte_identical_across_processes(tmp_path):
    """Separate interpreters with different hash seeds: no ordering leaks from sets or dicts."""
    spec = ROOT / "specs" / "rpca.yaml"
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-m", "unfoldgen", "build", str(spec), "-o", str(tmp_path / seed)],
                       check=True, env=env, capture_output=True)
    assert snapshot(tmp_path / "1" / "rpca") == snapshot(tmp_path / "2" / "rpca")


def without_first_comment(block: str) -> str:
    first, rest = block.split("\n", 1)
    return first.split("  #")[0] + "\n" + rest


def test_readme_shows_the_code_that_is_generated():
    """The layer loops quoted in README.md are the committed output, verbatim."""
    readme = (ROOT / "README.md").read_text()
    quoted = [block.split("```")[0] for block in readme.split("```python\n")[1:]]
    loops = [without_first_comment(block) for block in quoted if block.startswith(("for k in", "k = 0"))]
    generated = "".join((ROOT / "generated" / "lista" / name).read_text() for name in ("model.py", "kernel.py"))
    unindented = "\n".join(line.strip() for line in generated.splitlines())
    assert len(loops) == 2
    for loop in loops:
        assert "\n".join(line.strip() for line in loop.splitlines()) in unindented

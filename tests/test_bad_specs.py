"""The hostile and malformed spec corpus in ``tests/bad_specs/``: every file is refused with exit
code 2, a message naming the file, the key path, the YAML line and a hint, no traceback, nothing
written, and in bounded time.

Each file says what it expects in its first comment lines: ``# expect: <fragment>``,
``# key: <key path>`` (when the problem sits at a key) and ``# line: none`` (when YAML gives no
line, e.g. an empty file).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from unfoldgen.cli import main
from unfoldgen.spec.yaml_source import MAX_SPEC_BYTES

CORPUS = Path(__file__).parent / "bad_specs"
SPECS = sorted(CORPUS.glob("*.yaml"))


def expectations(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(": ")
        found[key] = value
    return found


def test_the_corpus_is_large_enough():
    assert len(SPECS) >= 40


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_bad_spec_is_refused_cleanly(tmp_path, monkeypatch, spec):
    monkeypatch.chdir(tmp_path)  # an injected command would write here
    expected = expectations(spec)
    outdir = tmp_path / "out"
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["build", str(spec), "-o", str(outdir)])
    elapsed = time.perf_counter() - started
    message = result.output
    assert result.exit_code == 2, message
    assert str(spec) in message
    assert expected["expect"] in message
    if "key" in expected:
        assert f"{expected['key']} (line" in message
    if expected.get("line") != "none":
        assert "line " in message
    assert "hint:" in message
    assert "Traceback" not in message
    assert not outdir.exists() and list(tmp_path.iterdir()) == []
    assert elapsed < 10


def test_a_100_megabyte_spec_is_refused_before_it_is_read(tmp_path):
    spec = tmp_path / "huge.yaml"
    with spec.open("wb") as file:
        file.truncate(100 * 1024 * 1024)  # sparse: no 100 MB written to disk
    result = CliRunner().invoke(main, ["check", str(spec)])
    assert result.exit_code == 2
    assert f"larger than {MAX_SPEC_BYTES // 1000} kB" in result.output and "hint:" in result.output


# The whole corpus in a fresh interpreter in which every way to start a process is replaced by
# a recorder; peak memory is read before and after.
CORPUS_IN_A_PROCESS = """
import json, os, resource, subprocess, sys, tempfile
from pathlib import Path
from unfoldgen.compiler import build
from unfoldgen.errors import SpecError

spawned = []
def recorder(name):
    def record(*args, **kwargs):
        spawned.append(name)
        raise RuntimeError(name + " called")
    return record
for name in ("system", "popen", "fork", "forkpty", "execv", "execve", "execvp", "spawnv", "posix_spawn"):
    if hasattr(os, name):
        setattr(os, name, recorder(name))
subprocess.Popen.__init__ = recorder("Popen")

baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
refused = 0
with tempfile.TemporaryDirectory() as folder:
    for spec in sys.argv[1:]:
        try:
            build(spec, folder)
        except SpecError:
            refused += 1
growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024
print(json.dumps({"refused": refused, "spawned": spawned, "growth_mb": growth_mb}))
"""


def test_the_corpus_spawns_no_process_and_stays_within_bounded_memory():
    result = subprocess.run([sys.executable, "-c", CORPUS_IN_A_PROCESS, *map(str, SPECS)],
                            check=True, capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["refused"] == len(SPECS)
    assert report["spawned"] == []
    assert report["growth_mb"] < 300, report

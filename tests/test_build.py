"""Test 5: rebuilding gives byte-identical files, and generated/ is a fresh build of specs/."""

from __future__ import annotations

import filecmp

import pytest
from conftest import ROOT, SPECS

from unfoldgen.build import build


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

"""Packaging files agree with the lock: the light layer's pins and the quant image's inputs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _locked_versions() -> dict[str, str]:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    return {p["name"]: p["version"] for p in lock["package"] if "version" in p}


def test_light_layer_pins_equal_the_lock() -> None:
    locked = _locked_versions()
    pins = {}
    for line in (REPO_ROOT / "layers" / "light" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]+\])?==([^\s;]+)", line)
            assert match, f"pin every light-layer requirement exactly: {line!r}"
            pins[match[1].lower().replace("_", "-")] = match[3]
    assert {"aws-lambda-powertools", "pydantic", "requests"} <= set(pins)
    assert {name: locked.get(name) for name in pins} == pins, "update layers/light/requirements.txt to uv.lock"


def test_quant_image_installs_the_locked_dependencies_and_copies_the_handlers() -> None:
    dockerfile = (REPO_ROOT / "layers" / "quant-image" / "Dockerfile").read_text()
    instructions = [line for line in dockerfile.splitlines() if line and not line.startswith("#")]
    froms = [line for line in instructions if line.startswith("FROM ")]
    assert len(froms) == 1
    assert re.search(r"python:3\.11", dockerfile), "the image runs the Python of the lock and the tests (3.11)"
    assert "uv export --frozen" in dockerfile and "--require-hashes" in dockerfile
    for source in ("pyproject.toml uv.lock README.md", "shared ./shared", "functions ./functions"):
        assert any(line.startswith(f"COPY {source}") for line in instructions), source
    assert 'ENTRYPOINT ["python", "-m", "awslambdaric"]' in instructions

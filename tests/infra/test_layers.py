"""Packaging files agree with the lock: the light layer's pins (and that they cover the zip functions' imports)
and the quant image's inputs."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

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
    assert {"aws-lambda-powertools", "boto3", "pydantic", "pydantic-settings", "requests"} <= set(pins)
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


def _light_pins() -> dict[str, set[str]]:
    """Each light-layer requirement's distribution name -> the extras it asks for."""
    pins: dict[str, set[str]] = {}
    for line in (REPO_ROOT / "layers" / "light" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[([^\]]+)\])?==\S+", line)
            assert match, line
            pins[_normal(match[1])] = {e.strip() for e in (match[2] or "").split(",") if e.strip()}
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_by(pins: dict[str, set[str]]) -> set[str]:
    """Every distribution installing ``pins`` brings, following uv.lock's dependencies (and the extras asked)."""
    packages = {p["name"]: p for p in tomllib.loads((REPO_ROOT / "uv.lock").read_text())["package"]}
    todo = [(name, extras) for name, extras in pins.items()]
    seen: set[tuple[str, str]] = set()
    installed: set[str] = set()
    while todo:
        name, extras = todo.pop()
        installed.add(name)
        package = packages[name]
        for extra in {"", *extras}:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            deps = package.get("dependencies", []) if not extra else package.get("optional-dependencies", {})[extra]
            todo += [(_normal(d["name"]), set(d.get("extra", []))) for d in deps]
    return installed


#: Third-party packages each zip function is known to import: the scan must find at least these.
EXPECTED_IMPORTS = {
    "notify_slack": {"boto3", "requests", "pydantic", "pydantic_settings", "aws_lambda_powertools"},
    "api_authorizer": {"jwt", "pynamodb", "pydantic", "pydantic_settings", "aws_lambda_powertools"},
}


def test_light_layer_provides_every_third_party_import_of_the_zip_functions() -> None:
    # Given each zip function of the committed configuration and the files it ships (handler + library modules)
    pytest.importorskip("aws_cdk", reason="aws-cdk-lib is not installed: uv sync --extra cdk")
    from spe_infra.app import committed_context
    from spe_infra.config import EngineConfig
    from spe_infra.constructs.zip_function import library_modules, runtime_imports

    context = committed_context()
    config = EngineConfig.from_context(context["spe"], stage=context.get("stage"))
    zipped = [name for name, settings in config.functions.items() if settings.packaging == "zip"]
    assert set(zipped) == set(EXPECTED_IMPORTS), "a new zip function: add what it imports to EXPECTED_IMPORTS"
    installed = _installed_by(_light_pins())
    distributions = {
        _normal(k): {_normal(d) for d in v} for k, v in importlib.metadata.packages_distributions().items()
    }
    for name in zipped:
        handler = REPO_ROOT / "functions" / name / "app.py"
        # When every import statement that can run is collected
        top_level = set()
        for path in (handler, *library_modules(handler)):
            for node in runtime_imports(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level:
                    continue
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                top_level |= {m.split(".")[0] for m in modules}
        third_party = top_level - set(sys.stdlib_module_names) - {"portfolio_engine", "functions", "__future__"}
        # Then each comes from a distribution the layer installs (its pins and what they depend on in the lock)
        missing = {m: distributions.get(_normal(m), {"?"}) for m in third_party}
        missing = {m: d for m, d in missing.items() if not d & installed}
        assert not missing, f"{name} imports {missing}, which layers/light/requirements.txt does not install"
        # (and the scan found the imports each handler is known to make)
        assert EXPECTED_IMPORTS.get(name, set()) <= third_party, name

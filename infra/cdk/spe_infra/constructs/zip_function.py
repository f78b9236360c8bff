"""Zip packaging for the light functions: the handler plus the library modules it imports, and the light layer.

A function whose imports reach neither numpy nor pandas (the Slack notifier) ships as a zip on Lambda's
python3.11 runtime instead of the 1 GB quant image: a faster cold start and a smaller blast radius.

* **Its code** is ``functions/<name>/app.py`` and the modules of ``portfolio_engine`` it imports, found by
  reading the source (the import statements of the handler, then of each library module reached, those under
  ``if TYPE_CHECKING:`` excepted), never by importing it. Names resolved at run time through
  ``importlib`` (the lazy re-exports of ``portfolio_engine._lazy``) are not followed: import the defining
  module directly in code a zip function runs. They are staged at synth into a temporary folder that
  CDK copies into the cloud assembly; the handler keeps the image's module path
  (``functions.<name>.app.lambda_handler``).
* **Its dependencies** are the light layer, ``layers/light/requirements.txt`` installed with uv, the lock as
  constraints, wheels for manylinux2014 x86_64 and CPython 3.11 (what the runtime runs). It is built when the
  app is synthesized (CDK asset bundling): locally with uv (``.tools/bin/uv`` or ``uv`` on the PATH; the
  first build downloads the wheels, uv caches them), or in the SAM build image with Docker when there is no
  uv. Synthesizing offline without a warm uv cache: skip bundling with ``-c aws:cdk:bundling-stacks=[]``
  (the tests do; the template is the same, the layer asset is not built). The asset hash is that of the
  requirements, the lock and this recipe, so the layer changes exactly when one of them does.
"""

from __future__ import annotations

import ast
import atexit
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from spe_infra.config import REPO_ROOT

LIBRARY = "portfolio_engine"
LIBRARY_ROOT = REPO_ROOT / "shared"
LIGHT_LAYER_DIR = REPO_ROOT / "layers" / "light"
RUNTIME = lambda_.Runtime.PYTHON_3_11
ARCHITECTURE = lambda_.Architecture.X86_64
#: Wheels Lambda's python3.11 (Amazon Linux 2, glibc 2.26, x86_64) can load.
PYTHON_PLATFORM = "x86_64-manylinux2014"
PYTHON_VERSION = "3.11"


def _uv_version() -> str:
    """The uv the Makefile installs (``UV_VERSION := x.y.z``): the Docker fallback installs the same."""
    match = re.search(r"^UV_VERSION\s*:?=\s*(\S+)", (REPO_ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
    if not match:
        raise ValueError("Makefile sets no UV_VERSION; the light layer's Docker build pins uv with it")
    return match[1]


def layer_commands(repo: str, output: str, scratch: str, uv: str = "uv") -> list[list[str]]:
    """The light layer's build: export the lock as constraints, install the requirements for the runtime."""
    constraints = f"{scratch}/constraints.txt"
    return [
        [uv, "export", "--frozen", "--no-emit-project", "--no-hashes", "--no-header", "--format",
         "requirements-txt", "--project", repo, "--output-file", constraints],
        [uv, "pip", "install", "--target", f"{output}/python", "--python-platform", PYTHON_PLATFORM,
         "--python-version", PYTHON_VERSION, "--only-binary", ":all:",
         "--requirement", f"{repo}/layers/light/requirements.txt", "--constraint", constraints],
    ]  # fmt: skip


def layer_hash() -> str:
    """What the layer is built from: its requirements, the lock and the recipe (not the files uv downloads)."""
    digest = hashlib.sha256()
    for part in (
        (LIGHT_LAYER_DIR / "requirements.txt").read_bytes(),
        (REPO_ROOT / "uv.lock").read_bytes(),
        repr(layer_commands("<repo>", "<out>", "<tmp>")).encode(),
    ):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def _find_uv() -> str | None:
    tools = REPO_ROOT / ".tools" / "bin" / "uv"
    return str(tools) if tools.is_file() else shutil.which("uv")


@jsii.implements(cdk.ILocalBundling)
class _UvBundling:
    """Build the layer on this machine with uv; without uv, CDK falls back to the Docker image."""

    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **_options: Any) -> bool:
        uv = _find_uv()
        if uv is None:
            return False
        # Bytecode would be compiled by this machine's Python, maybe not the runtime's: leave it to Lambda.
        env = {k: v for k, v in os.environ.items() if k != "UV_COMPILE_BYTECODE"}
        with tempfile.TemporaryDirectory(prefix="spe-light-layer-") as scratch:
            for command in layer_commands(str(REPO_ROOT), output_dir, scratch, uv=uv):
                done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
                if done.returncode != 0:
                    raise RuntimeError(
                        f"Building the light layer failed ({' '.join(command[:3])}...): {done.stderr.strip()[-2000:]}\n"
                        "It needs the network once (uv then caches the wheels). To synthesize offline without "
                        "building it, skip bundling: -c aws:cdk:bundling-stacks=[] (or SPE_SKIP_BUNDLING=1 "
                        "with `python infra/cdk/app.py`)."
                    )
        return True


class LightLayer(Construct):
    """The dependencies of the zip functions (``layers/light/requirements.txt``) as a Lambda layer."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        recipe = " && ".join(" ".join(command) for command in layer_commands("/repo", "/asset-output", "/tmp", uv="uv"))
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            description="Stochastic Portfolio Engine: light dependencies (layers/light/requirements.txt)",
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            code=lambda_.Code.from_asset(
                str(LIGHT_LAYER_DIR),
                asset_hash=layer_hash(),
                asset_hash_type=cdk.AssetHashType.CUSTOM,
                exclude=["build"],
                bundling=cdk.BundlingOptions(
                    image=RUNTIME.bundling_image,
                    volumes=[cdk.DockerVolume(host_path=str(REPO_ROOT), container_path="/repo")],
                    command=["bash", "-c", f"pip install --quiet uv=={_uv_version()} && {recipe}"],
                    local=_UvBundling(),
                ),
            ),
        )


# --- the function's own code ---------------------------------------------------------------------


def runtime_imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under ``node`` that can run: all but those under ``if TYPE_CHECKING:``."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
        return
    typing_only = isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
    children = node.orelse if isinstance(node, ast.If) and typing_only else ast.iter_child_nodes(node)
    for child in children:
        yield from runtime_imports(child)


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _files_of(module: str, root: Path) -> list[Path]:
    """The files importing ``module`` executes: each enclosing package's ``__init__.py``, then the module."""
    parts = module.split(".")
    files = []
    for depth in range(1, len(parts) + 1):
        base = root.joinpath(*parts[:depth])
        if (base / "__init__.py").is_file():
            files.append(base / "__init__.py")
        elif depth == len(parts) and base.with_suffix(".py").is_file():
            files.append(base.with_suffix(".py"))
    return files


def library_modules(entry: Path, *, package: str = LIBRARY, root: Path = LIBRARY_ROOT) -> list[Path]:
    """The files of ``package`` (under ``root``) that ``entry`` imports, directly or through each other.

    Returns
    -------
    list of Path
        Sorted; each package's ``__init__.py`` on the way is included.
    """
    found: set[Path] = set()
    todo = [entry]
    while todo:
        path = todo.pop()
        this = _module_name(path, root) if path.is_relative_to(root) else ""
        is_package = path.name == "__init__.py"
        for node in runtime_imports(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names: Iterable[str] = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    anchor = this.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            for name in names:
                if name == package or name.startswith(f"{package}."):
                    for file in _files_of(name, root):
                        if file not in found:
                            found.add(file)
                            todo.append(file)
    return sorted(found)


def stage_function_code(name: str) -> Path:
    """Copy ``functions/<name>/app.py`` and the library modules it imports into a new temporary folder.

    CDK copies the folder into the cloud assembly (named by the hash of its contents), so it is removed
    when the process exits.
    """
    handler = REPO_ROOT / "functions" / name / "app.py"
    if not handler.is_file():
        raise ValueError(f"{handler} is missing: spe.functions.{name} names no handler folder")
    staging = Path(tempfile.mkdtemp(prefix=f"spe-{name}-zip-"))
    atexit.register(shutil.rmtree, staging, ignore_errors=True)
    for source, target in [
        (handler, Path("functions", name, "app.py")),
        *((module, module.relative_to(LIBRARY_ROOT)) for module in library_modules(handler)),
    ]:
        (staging / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, staging / target)
    return staging


def zip_code(name: str) -> lambda_.Code:
    """Function ``name``'s zip: its handler and the library modules it imports (see :func:`library_modules`)."""
    return lambda_.Code.from_asset(str(stage_function_code(name)))

"""A SageMaker-style training job run on this machine: the script in a child process, SageMaker's layout.

The job gets the directories and variables a SageMaker training container gets (``SM_CHANNEL_<NAME>``,
``SM_MODEL_DIR``, ``SM_OUTPUT_DATA_DIR``, ``SM_OUTPUT_DIR``, ``SM_HPS``, ``SM_INPUT_CONFIG_DIR`` with
``hyperparameters.json``), under a temporary ``/opt/ml``-like folder. On AWS the retrain state machine
starts the same script as a real training job.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from portfolio_engine.exceptions import PortfolioEngineError, error_type

#: The regime training script (a module, so the job needs only the installed package).
REGIME_TRAINING_MODULE = "portfolio_engine.entrypoints.train_regime"


class TrainingJobFailed(PortfolioEngineError):
    """A training job exited without a typed error (a crash): its log tail is in the message."""

    default_hint = "Run the script by hand with the same SM_* variables to see the whole log."


class LocalTrainingJob:
    """The :class:`~portfolio_engine.ports.TrainingJobs` port: run a training module locally.

    Parameters
    ----------
    module : str
        The script, run as ``python -m <module>``.
    python : str
        The interpreter (default: this one).
    timeout_seconds : float
    in_process : bool
        Call the module's ``main(environ)`` in this process with the same variables instead of
        starting an interpreter (saves the ~2 s of imports; used by handlers that train on a cold start).
    """

    def __init__(
        self,
        module: str = REGIME_TRAINING_MODULE,
        *,
        python: str | None = None,
        timeout_seconds: float = 3600,
        in_process: bool = False,
    ) -> None:
        self.module = module
        self.python = python or sys.executable
        self.timeout_seconds = timeout_seconds
        self.in_process = in_process

    def run(
        self, job_name: str, hyperparameters: Mapping[str, str], channels: Mapping[str, Mapping[str, bytes]]
    ) -> dict[str, bytes]:
        """Run the job; return the model directory's files.

        Raises
        ------
        PortfolioEngineError
            The script's own typed error (same class, message and hint), or ``TrainingJobFailed``.
        """
        with tempfile.TemporaryDirectory(prefix=f"{job_name}-") as tmp:
            root = Path(tmp)
            config_dir = root / "input" / "config"
            config_dir.mkdir(parents=True)
            (config_dir / "hyperparameters.json").write_text(json.dumps(dict(hyperparameters)))
            env = {
                **os.environ,
                "SM_MODEL_DIR": str(root / "model"),
                "SM_OUTPUT_DIR": str(root / "output"),
                "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
                "SM_INPUT_CONFIG_DIR": str(config_dir),
                "SM_HPS": json.dumps(dict(hyperparameters)),
                "SM_CHANNELS": json.dumps(sorted(channels)),
                "SM_CURRENT_HOST": "algo-1",
                "TRAINING_JOB_NAME": job_name,
            }
            for channel, files in channels.items():
                folder = root / "input" / "data" / channel
                folder.mkdir(parents=True)
                for name, payload in files.items():
                    (folder / name).write_bytes(payload)
                env[f"SM_CHANNEL_{channel.upper()}"] = str(folder)
            returncode, log = self._execute(env)
            if returncode != 0:
                failure = root / "output" / "failure"
                if failure.exists():
                    detail = json.loads(failure.read_text())
                    raise error_type(detail.get("errorType", ""))(
                        detail.get("errorMessage", "training failed"), hint=detail.get("hint") or None
                    )
                tail = "\n".join(log.strip().splitlines()[-15:])
                raise TrainingJobFailed(f"Training job {job_name} exited with {returncode}:\n{tail}")
            model_dir = root / "model"
            return {p.name: p.read_bytes() for p in sorted(model_dir.iterdir()) if p.is_file()}

    def _execute(self, env: dict[str, str]) -> tuple[int, str]:
        """Run the script; return its exit code and log (stderr)."""
        if self.in_process:
            main = importlib.import_module(self.module).main
            try:
                return int(main(env)), ""
            except Exception as exc:
                return 1, f"{type(exc).__name__}: {exc}"
        done = subprocess.run(
            [self.python, "-m", self.module],
            env=env,
            capture_output=True,
            text=True,
            timeout=self.timeout_seconds,
            check=False,
        )
        return done.returncode, done.stderr

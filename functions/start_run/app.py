"""StartRun: record the run in the store of record and resolve what it works on (every machine's first task)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.store import build_store
from portfolio_engine.contracts.runs import StartRunInput
from portfolio_engine.pipeline.runs import start_run
from portfolio_engine.settings import Settings

SETTINGS = Settings()
STORE = build_store(SETTINGS)
logger = Logger(service="spe-start-run")
tracer = Tracer(service="spe-start-run")


def bundled_spec(name: str) -> Any:
    # Imported on first use: only a portfolio's first run needs the optimizer's spec model (and cvxpy behind it).
    from portfolio_engine.pipeline.optimize import bundled_spec as load

    return load(name)


@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@event_parser(model=StartRunInput)
def lambda_handler(event: StartRunInput, context: LambdaContext) -> dict[str, Any]:
    output = start_run(event, store=STORE, bundled_spec=bundled_spec, deployed_version=SETTINGS.code_version)
    return output.model_dump(mode="json")

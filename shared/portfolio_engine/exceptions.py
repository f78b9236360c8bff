"""One hierarchy of errors for the whole engine.

Every error carries a ``hint`` that says how to fix the problem. State machine ``Retry``/``Catch``
clauses match on the class name (Lambda reports it as ``errorType``), never on message text.
"""

from __future__ import annotations


class PortfolioEngineError(Exception):
    """Base class of every error the engine raises on purpose."""

    default_hint = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        super().__init__(f"{message} Hint: {self.hint}" if self.hint else message)


class ConfigurationError(PortfolioEngineError):
    """A setting is missing or has a value the engine cannot use."""


class DataError(PortfolioEngineError):
    """Market data is missing, malformed or fails validation."""


class SchemaError(DataError):
    """A table does not have the columns or types the engine needs."""


class EmptyDataError(DataError):
    """A source or a lake read returned no rows."""


class UnknownSymbolError(DataError):
    """A source does not know a ticker."""

    default_hint = "Check the ticker's spelling and the source's symbol convention (e.g. '^GSPC', 'BRK-B')."


class DataValidationError(DataError):
    """Data failed validation under the `reject` policy; the report says which checks failed."""

    default_hint = "Run `spe data validate --json` for the report, or choose the `forward_fill` or `quarantine` policy."


class DataSourceError(DataError):
    """A market-data source failed (network, HTTP status, payload)."""


class SourceUnavailableError(DataSourceError):
    """The source timed out, refused the connection, or its circuit breaker is open."""

    default_hint = "Retry later; the engine backs off and opens a circuit breaker after repeated failures."


class RateLimitedError(DataSourceError):
    """The source answered HTTP 429 or a rate-limit note, even after backing off."""

    default_hint = "Lower the request rate (SPE_SOURCE_RATE_PER_MINUTE) or use a key with a higher quota."


class MalformedResponseError(DataSourceError):
    """The source answered, but the payload is not what its API documents."""


class AuthenticationError(DataSourceError):
    """The source rejected the API key or none was configured."""

    default_hint = "Set the key (see README, 'Data sources') or store it in AWS Secrets Manager."


class LakeError(PortfolioEngineError):
    """The Parquet lake could not be read or written."""


class StateMachineError(PortfolioEngineError):
    """A state machine execution failed; ``error`` and ``cause`` come from Step Functions."""

    def __init__(self, message: str, *, error: str = "", cause: str = "", hint: str | None = None) -> None:
        self.error = error
        self.cause = cause
        super().__init__(message, hint=hint)


class CircuitOpenError(SourceUnavailableError):
    """A source's circuit breaker is open: calls fail fast, without a request, until its reset timeout."""

    default_hint = (
        "The source failed repeatedly; wait for the breaker's reset timeout (ResiliencePolicy.reset_timeout_seconds) "
        "or switch to another source (e.g. 'bundled')."
    )


class ThrottledError(RateLimitedError):
    """The engine's own per-source request budget is spent; no request was sent."""

    default_hint = (
        "Raise requests_per_minute or max_rate_wait_seconds in the source's ResiliencePolicy "
        "(SPE_SOURCE_RATE_PER_MINUTE), or fetch fewer symbols per run."
    )


class FeatureError(DataError):
    """Features cannot be computed from the bars given (duplicate keys, bad prices, missing index)."""

    default_hint = "Validate the bars first (`validate_bars`) and check the feature spec's index symbol."


class RegimeModelError(PortfolioEngineError):
    """A regime model cannot be fitted, loaded or applied."""


class InsufficientDataError(RegimeModelError):
    """Too few observations for the model asked for (states x parameters, or a validation split)."""

    default_hint = "Use a longer history, fewer states, or a simpler covariance type ('diag' or 'spherical')."


class DegenerateDataError(RegimeModelError):
    """A feature is constant (or nearly so): no regime can be told apart on it."""

    default_hint = "Drop the constant column, or check that the prices behind it are not forward-filled placeholders."


class NonFiniteFeaturesError(RegimeModelError):
    """Features hold NaN or infinite values where the model needs numbers."""

    default_hint = "Drop the warm-up rows of rolling features (``dropna()``) or pick columns without gaps."


class ConvergenceError(RegimeModelError):
    """EM (or another fit) did not converge within its iteration budget on any restart."""

    default_hint = "Raise n_iter, add restarts, scale the features (returns in percent), or use fewer states."


class ModelNotFoundError(RegimeModelError):
    """No stored model (champion or version) matches the request."""

    default_hint = "Train one first: `spe regime fit` (or the retrain state machine)."


class OptimizationError(PortfolioEngineError):
    """A portfolio optimization could not produce weights."""


class SpecificationError(OptimizationError):
    """A portfolio specification, its constraints or its inputs are inconsistent (unknown assets, bad bounds)."""


class InfeasibleError(OptimizationError):
    """No portfolio satisfies every constraint; ``constraints`` names the ones involved."""

    default_hint = "Relax the constraints named (bounds, group limits, targets) or check that they are consistent."

    def __init__(self, message: str, *, constraints: list[str] | None = None, hint: str | None = None) -> None:
        self.constraints = list(constraints or [])
        super().__init__(message, hint=hint)


class UnboundedError(OptimizationError):
    """The objective can grow without limit: a budget, leverage or bound constraint is missing."""

    default_hint = "Add a budget or gross-leverage constraint, or bounds on the weights."

    def __init__(self, message: str, *, constraints: list[str] | None = None, hint: str | None = None) -> None:
        self.constraints = list(constraints or [])
        super().__init__(message, hint=hint)


class SolverFailedError(OptimizationError):
    """Every solver in the fallback chain failed or returned an inaccurate solution."""

    default_hint = "Scale the inputs (covariance in annual units), loosen the tolerances, or try another solver."


def error_type(name: str) -> type[PortfolioEngineError]:
    """The engine's error class called ``name`` (``PortfolioEngineError`` itself if there is none).

    Used where an error crosses a process boundary by name (a training job's ``failure`` file).
    """
    pending: list[type[PortfolioEngineError]] = [PortfolioEngineError]
    while pending:
        cls = pending.pop()
        if cls.__name__ == name:
            return cls
        pending.extend(cls.__subclasses__())
    return PortfolioEngineError


class RiskError(PortfolioEngineError):
    """A risk measure or simulation cannot be computed from the inputs given."""


class RiskInputError(RiskError):
    """Bad risk inputs: NaN weights, weights not summing to the budget, unknown assets, a horizon <= 0."""

    default_hint = "Check the weights (finite, summing to the budget), the assets and the horizon/level."


class RiskLimitBreach(RiskError):
    """A portfolio breaches one of its risk limits (raised only where a breach must stop the flow)."""


class NotificationError(PortfolioEngineError):
    """A notifier (SNS, Slack) could not deliver an alert."""

    default_hint = "Check the topic ARN / webhook secret and the network; the alert is kept in the local log."


class StoreError(PortfolioEngineError):
    """The store of record could not be read or written."""

    default_hint = "Check SPE_STORE_URI (sqlite:///path or dynamodb://table) and, for DynamoDB, AWS_ENDPOINT_URL."


class ConcurrencyError(StoreError):
    """Another writer changed the stream since it was read: nothing was written (optimistic concurrency)."""

    default_hint = "Re-read the portfolio, run or model and retry; the other writer's change was kept."


class StaleHoldingsError(ConcurrencyError):
    """A run's decision was made on holdings that another run has moved since: its commit is refused."""

    default_hint = "Run again: the next run starts from the holdings the other run committed."


class DuplicateError(StoreError):
    """A record that must be unique already exists (a run id, an idempotency key)."""

    default_hint = "Use another run id or idempotency key, or read the existing run (`spe runs show RUN_ID`)."


class InvalidTransitionError(StoreError):
    """An event cannot follow the stream's current state (a run committed twice, a spec change to no portfolio)."""


class InvalidCursorError(StoreError):
    """A page cursor the store did not make (edited, truncated, or from another listing)."""

    default_hint = "Pass back the cursor of the previous page unchanged, or omit it for the first page."


class RecordNotFoundError(StoreError):
    """No portfolio, run or model by that name in the store."""

    default_hint = "List what the store holds: `spe portfolio list`, `spe runs list`."

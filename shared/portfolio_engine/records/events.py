"""The event log of the system of record: what happened to a portfolio or a model, in order, never rewritten.

Each portfolio (``portfolio/<name>``), each model (``model/<kind>/<name>``), each backtested spec
(``backtest/<name>``) and each API key (``apikey/<id>``) has its own stream. An event's ``version`` is its
position in the stream (1, 2, ...); an append names the version it expects the stream to be at, so a writer
that read stale state gets a ``ConcurrencyError`` instead of overwriting what another writer recorded
(optimistic concurrency).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "EVENT_TYPES",
    "Event",
    "EventType",
    "NewEvent",
    "apikey_stream",
    "backtest_stream",
    "check_name",
    "check_stream",
    "model_stream",
    "portfolio_stream",
]

EventType = Literal[
    # a portfolio's life
    "PortfolioCreated",
    "SpecChanged",
    "PortfolioArchived",
    "PortfolioRestored",
    "HoldingsReset",
    # a run of any state machine (in the stream of what it works on)
    "RunStarted",
    "TargetProposed",
    "AlertSent",
    "RunCommitted",
    "RunFailed",
    # a model's champion-challenger registry
    "ChallengerRegistered",
    "ChampionPromoted",
    "ChampionPinned",
    "ChampionUnpinned",
    "ChampionRolledBack",
    # machine clients of the HTTP API
    "ApiKeyCreated",
    "ApiKeyRevoked",
]
#: Every event type the log accepts.
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_STREAM = re.compile(
    r"^(portfolio|backtest|apikey)/[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$|^model/[a-z]+/[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
)


def check_name(name: str, what: str = "portfolio") -> str:
    """A portfolio or model name: 1-64 letters, digits, ``_``, ``.`` or ``-``, starting with a letter or digit.

    Raises
    ------
    ValueError
        If the name does not match (pydantic turns it into a validation error).
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{what} name {name!r} must be 1-64 letters, digits, '_', '.' or '-'")
    return name


def check_stream(stream: str) -> str:
    """A stream id: ``portfolio/<name>``, ``backtest/<name>`` or ``model/<kind>/<name>``."""
    if not isinstance(stream, str) or not _STREAM.match(stream):
        raise ValueError(f"stream {stream!r} is not portfolio/<name>, backtest/<name> or model/<kind>/<name>")
    return stream


def portfolio_stream(name: str) -> str:
    """The stream of portfolio ``name``."""
    return f"portfolio/{check_name(name)}"


def model_stream(kind: str, name: str) -> str:
    """The stream of model ``name`` of ``kind`` (``regime``)."""
    return check_stream(f"model/{kind}/{check_name(name, 'model')}")


def apikey_stream(key_id: str) -> str:
    """The stream of one API key (created, revoked)."""
    return f"apikey/{check_name(key_id, 'API key')}"


def backtest_stream(name: str) -> str:
    """The stream of the backtests of spec ``name``."""
    return f"backtest/{check_name(name, 'spec')}"


class NewEvent(BaseModel):
    """An event to append: its type, its data (JSON-ready) and the run that caused it, if any."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: EventType
    data: dict[str, Any] = Field(default_factory=dict)
    run_id: str | None = None


class Event(NewEvent):
    """An event as stored: its stream, its position in it, and when the store recorded it."""

    stream: str
    version: int = Field(ge=1)
    recorded_at: datetime

    @field_validator("stream")
    @classmethod
    def _stream(cls, value: str) -> str:
        return check_stream(value)

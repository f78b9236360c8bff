"""The frozen pydantic base of specifications: validation errors become :class:`SpecificationError`."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ModelWrapValidatorHandler, ValidationError, model_validator

from portfolio_engine.exceptions import SpecificationError

__all__ = ["SpecModel"]


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "(root)"
        parts.append(f"{where}: {error['msg']} (got {error.get('input')!r})")
    return "; ".join(parts)


class SpecModel(BaseModel):
    """Frozen pydantic base whose validation errors are :class:`SpecificationError` naming field and value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="wrap")
    @classmethod
    def _as_specification_error(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        try:
            return handler(data)
        except ValidationError as exc:
            unknown = [".".join(str(p) for p in e["loc"]) for e in exc.errors() if e["type"] == "extra_forbidden"]
            hint = f"Valid fields of {cls.__name__}: {', '.join(cls.model_fields)}."
            if unknown:
                hint = f"Unknown field(s) {unknown}. " + hint
            raise SpecificationError(f"Invalid {cls.__name__}: {_describe(exc)}.", hint=hint) from exc

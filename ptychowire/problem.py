"""The body of every error of every service (RFC 9457, ``application/problem+json``)."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field

PROBLEM_TYPE_BASE: Final = "https://ptychoagent.dev/problems/"
PROBLEM_MEDIA_TYPE: Final = "application/problem+json"


class ValidationIssue(BaseModel):
    """One wrong field of a 422: where it is, what is wrong, pydantic's error type."""

    loc: list[str]
    msg: str
    type: str


class ProblemDetail(BaseModel):
    """The body of every error (RFC 9457): validation errors, refused keys, missing
    ids, oversized bodies, unavailable backends. Other members may follow (``errors``
    of a 422, ``checks`` of a failed readiness, ``run_id`` of a 409)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description=f"{PROBLEM_TYPE_BASE}<slug>, e.g. …/invalid-input")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    instance: str | None = Field(default=None, description="The request id (X-Request-ID).")
    errors: list[ValidationIssue] | None = Field(
        default=None, description="Each wrong field (422 only)."
    )

"""The provider's envelopes: the one success shape of a create and the one error shape.

Handlers raise ``ApiError`` wherever a request is refused; the request handler turns it into the
documented ``{"error": {"code", "message", "type"}}`` body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ERROR_TYPES = {
    400: "invalid_request",
    401: "authentication_error",
    402: "insufficient_credits",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    413: "invalid_request",
    429: "rate_limit_exceeded",
    455: "service_unavailable",
    500: "server_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}

# What an injected status answers with, worded the way a gateway would.
INJECTED_MESSAGES = {
    429: "Rate limit exceeded, please retry later",
    455: "Service unavailable: the model is under maintenance",
    500: "Internal server error",
    502: "Bad gateway: the upstream did not answer",
    503: "Service temporarily unavailable",
    504: "Gateway timeout",
}


@dataclass
class ApiError(Exception):
    """A refusal with the HTTP status and the text the client will read."""

    status: int
    message: str
    retry_after: int | None = None

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"

    @property
    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.status,
                "message": self.message,
                "type": ERROR_TYPES.get(self.status, "error"),
            }
        }


def injected_error(status: int, retry_after: int) -> ApiError:
    message = INJECTED_MESSAGES.get(status, f"Injected error {status}")
    return ApiError(status, message, retry_after=retry_after if status == 429 else None)


def created_body(task_id: str) -> dict[str, Any]:
    data = {"task_id": task_id, "status": "IN_PROGRESS"}
    return {"code": 200, "message": "success", "data": data}

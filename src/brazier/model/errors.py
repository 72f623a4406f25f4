"""The one exception tree of brazier.

Every error a client can see is a subclass of :class:`LambdaError` and knows its AWS error code,
its HTTP status, whether AWS calls it a ``User`` or ``Service`` fault, and which casing of the
message key AWS uses for it (``message`` for most, ``Message`` for a few). The HTTP edge renders
these in exactly one place (``brazier.api.errors``). Foreign exceptions (sqlite3, OSError, zipfile)
are translated at the boundary where they occur, with ``raise ... from``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class BrazierError(Exception):
    """Base of every brazier error."""


class LambdaError(BrazierError):
    """An error with an AWS Lambda wire form."""

    code: ClassVar[str] = "ServiceException"
    status: ClassVar[int] = 500
    fault: ClassVar[str] = "Service"
    message_key: ClassVar[str] = "message"

    def __init__(
        self,
        message: str,
        *,
        extra: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.extra: Mapping[str, object] = dict(extra or {})
        self.headers: Mapping[str, str] = dict(headers or {})

    def body(self) -> dict[str, object]:
        """The JSON body AWS sends for this error."""
        out: dict[str, object] = {"Type": self.fault, self.message_key: self.message}
        out.update(self.extra)
        return out


class _UserError(LambdaError):
    status = 400
    fault = "User"


class ServiceException(LambdaError):
    code = "ServiceException"
    status = 500
    message_key = "Message"


class ResourceNotFoundException(_UserError):
    code = "ResourceNotFoundException"
    status = 404
    message_key = "Message"


class ProvisionedConcurrencyConfigNotFoundException(_UserError):
    code = "ProvisionedConcurrencyConfigNotFoundException"
    status = 404
    message_key = "message"


class ResourceConflictException(_UserError):
    code = "ResourceConflictException"
    status = 409


class RuntimeMissing(ResourceConflictException):
    """The host lacks the function's runtime (it was removed after the function became Active).
    Invoke answers as Lambda does for a Failed function; the invoke service marks the version
    Failed with StateReasonCode InvalidRuntime and ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            "The operation cannot be performed at this time. The function is currently in the"
            " following state: Failed"
        )
        self.reason = reason


class ResourceInUseException(_UserError):
    code = "ResourceInUseException"
    status = 400
    message_key = "Message"


class ResourceNotReadyException(LambdaError):
    code = "ResourceNotReadyException"
    status = 502


class InvalidParameterValueException(_UserError):
    code = "InvalidParameterValueException"


class InvalidRequestContentException(_UserError):
    code = "InvalidRequestContentException"


class InvalidZipFileException(_UserError):
    code = "InvalidZipFileException"
    status = 502


class RequestEntityTooLargeException(_UserError):
    code = "RequestEntityTooLargeException"
    status = 413


class UnsupportedMediaTypeException(_UserError):
    code = "UnsupportedMediaTypeException"
    status = 415


class PreconditionFailedException(_UserError):
    code = "PreconditionFailedException"
    status = 412


class PolicyLengthExceededException(_UserError):
    code = "PolicyLengthExceededException"


class CodeStorageExceededException(_UserError):
    code = "CodeStorageExceededException"


class TooManyRequestsException(_UserError):
    code = "TooManyRequestsException"
    status = 429

    def __init__(self, message: str, *, reason: str, retry_after: int = 1) -> None:
        super().__init__(
            message, extra={"Reason": reason}, headers={"Retry-After": str(retry_after)}
        )
        self.reason = reason


class ValidationException(_UserError):
    """Input that breaks the service model (patterns, ranges, enums, lengths, required members)."""

    code = "ValidationException"

    def body(self) -> dict[str, object]:
        # AWS sends ValidationException without a Type.
        return {"message": self.message}


class UnknownOperationException(_UserError):
    code = "UnknownOperationException"
    status = 404

    def body(self) -> dict[str, object]:
        return {"message": self.message}


class AccessDeniedException(_UserError):
    code = "AccessDeniedException"
    status = 403
    message_key = "Message"


class _AuthError(_UserError):
    status = 403

    def body(self) -> dict[str, object]:
        return {"message": self.message}


class InvalidSignatureException(_AuthError):
    code = "InvalidSignatureException"


class UnrecognizedClientException(_AuthError):
    code = "UnrecognizedClientException"


class IncompleteSignatureException(_AuthError):
    code = "IncompleteSignatureException"
    status = 400


class MissingAuthenticationTokenException(_AuthError):
    code = "MissingAuthenticationTokenException"


class InvalidStateTransition(BrazierError):
    """A lifecycle state machine refused a transition. A bug if it ever reaches a client."""

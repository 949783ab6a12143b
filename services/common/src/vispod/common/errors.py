"""The one error family of vispod. Domain code raises these, whatever the transport; each transport maps
the status once: gRPC to a status code (the interceptor in vispod.common.grpc_server), Kafka to a dead-letter
reason (the consumer in vispod.common.bus). Anything else that escapes is INTERNAL (gRPC) or retried and then
dead-lettered as "failed" (Kafka)."""

from __future__ import annotations

from enum import Enum
from typing import ClassVar


class Status(Enum):
    """What went wrong, for the caller. `permanent`: the same input fails again, so Kafka does not retry."""

    INVALID_ARGUMENT = ("invalid", True)  # the request or event is bad: the reason says what to fix
    NOT_FOUND = ("not_found", True)
    FAILED_PRECONDITION = ("failed_precondition", True)  # valid, but not allowed in the current state
    PERMISSION_DENIED = ("permission_denied", True)
    UNAVAILABLE = ("unavailable", False)  # a dependency is down or overloaded: try again later
    INTERNAL = ("internal", False)

    def __init__(self, reason: str, permanent: bool) -> None:
        self.reason = reason  # the dead-letter reason on Kafka
        self.permanent = permanent


class VispodError(Exception):
    """Base of the family; the message is the reason a caller sees."""

    status: ClassVar[Status] = Status.INTERNAL


class InvalidArgument(VispodError, ValueError):
    """A request or event the service refuses: INVALID_ARGUMENT over gRPC, dead-lettered at once on Kafka."""

    status = Status.INVALID_ARGUMENT


class NotFound(VispodError, LookupError):
    status = Status.NOT_FOUND


class FailedPrecondition(VispodError):
    status = Status.FAILED_PRECONDITION


class PermissionDenied(VispodError):
    status = Status.PERMISSION_DENIED


class Unavailable(VispodError):
    """A dependency cannot answer now: UNAVAILABLE over gRPC, retried on Kafka."""

    status = Status.UNAVAILABLE


def status_of(exc: BaseException) -> Status:
    return exc.status if isinstance(exc, VispodError) else Status.INTERNAL

"""The two ways a connector call goes wrong (Healthchecks' ``hc/api/transports.py``): a
transient error is retried with backoff (a timeout, 408, 429, 5xx, a refused connection); a
permanent one fails the job until a user resumes it (a 4xx, a bad configuration, a missing
authorization, an address the outbound rules refuse). Messages never carry a secret."""

from __future__ import annotations


class ConnectorError(Exception):
    """Base: ``code`` is machine-readable, ``message`` is for the job log."""

    code = "connector_error"

    def __init__(self, message: str, *, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.retry_after = retry_after


class TransientError(ConnectorError):
    code = "transient"


class PermanentError(ConnectorError):
    code = "permanent"


class InvalidInput(ValueError):
    """Refused input (a configuration, an authorization): nothing was changed. ``path`` names
    the field (``config.audience``), as audience rule errors do."""

    def __init__(self, path: str, message: str, code: str = "invalid") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message
        self.code = code

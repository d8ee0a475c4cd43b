"""The exception tree of reconcile.

Every error a user can meet is a `ReconcileError`: its message says what failed, where (a file and
line, a platform call, a plan address) and how to fix it. The CLI maps the classes to exit codes;
anything else that escapes is a bug and is reported as such.
"""

from __future__ import annotations


class ReconcileError(Exception):
    """Root of every error reconcile reports to a user."""

    #: The process's exit code when this error ends a command: 1, nothing was deleted.
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ManifestError(ReconcileError):
    """A manifest cannot be read or is not valid: names the file, line and field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = file or ""
        if file and line:
            where = f"{file}:{line}"
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.file = file
        self.line = line


class ProviderError(ReconcileError):
    """A platform call failed or answered something we cannot trust.

    `operation` is the call in words ("list models"), `method` and `url` the request (never with
    a secret in it), `status` the HTTP status when there was a response, `code`,
    `platform_message` and `solution` what the platform said.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        operation: str | None = None,
        method: str | None = None,
        url: str | None = None,
        status: int | None = None,
        code: str | None = None,
        platform_message: str | None = None,
        solution: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.provider = provider
        self.operation = operation
        self.method = method
        self.url = url
        self.status = status
        self.code = code
        self.platform_message = platform_message
        self.solution = solution

    def __str__(self) -> str:
        # One line, so a pipeline log or a grep shows the call, the answer and the fix together.
        return f"{self.message} (fix: {self.hint})" if self.hint else self.message


class NotFoundError(ProviderError):
    """The platform's service says the object does not exist: for a delete, it is already gone.

    Only the service's own answer counts (a 404 or not-found code in its error body): a gateway's
    404 (no such API, a misrouted endpoint) and every credential error are other classes.
    """


class AuthError(ProviderError):
    """The platform refused the caller, not the object: an unknown, revoked or expired access key
    or token, a signature that does not match, a signing time refused, or a missing permission.

    Raised for every such answer of every platform, whatever its HTTP status: Fabric's 401/403 and
    its gateway's authentication codes (`APIGW.0301`, ...); Qianfan's 401/403, its signature and
    access codes, and its gateway's `NotFound, cause: Could not find credential.` (a 401 or 404
    that names the credential, not the object). It is never a `NotFoundError`: a delete refused
    with it did not happen, and nothing else on that platform will succeed until it is fixed.
    """


class InUseError(ProviderError):
    """The platform refused a delete because an inference service uses the object."""


class ListingIncompleteError(ProviderError):
    """A listing could not be completed or is inconsistent: never plan from it."""


class PlanFileError(ReconcileError):
    """A saved plan file cannot be read, is of another format version, or was tampered with."""


class StalePlanError(ReconcileError):
    """Live state or the manifests changed since the plan was made: nothing was deleted."""

    def __init__(self, message: str, *, reasons: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reasons = reasons

    def __str__(self) -> str:
        lines = [self.message, *(f"  - {reason}" for reason in self.reasons)]
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class GuardError(ReconcileError):
    """A safety guard refused the run before any delete (max_deletes, empty scope, ...)."""


class PlanError(ReconcileError):
    """The manifests cannot be planned against live state as they stand (two declarations claim
    one live object; a --target selects nothing): no plan is made, nothing is deleted."""


class LockError(ReconcileError):
    """Another apply holds the state dir's lock."""


class ApprovalError(ReconcileError):
    """Apply was not approved (no terminal and no --auto-approve, or an answer other than yes)."""

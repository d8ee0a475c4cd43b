"""Platform failures in words a user can trust.

`platform_error` is the one place that words a failed platform call: the call, what the platform
answered, and the fix. It is built once, whole, and never changed after. Everything in it passes
the `Redactor` (no secret, signature or token survives, even one the platform echoed back) and
`escape_text` (no newline or terminal escape sequence of the platform's reaches a terminal).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconcile.errors import ProviderError


@dataclass(frozen=True)
class Call:
    """A platform call as a message names it: `fab: list models (GET https://...)`."""

    provider: str | None = None
    #: The call in words ("list models").
    operation: str | None = None
    method: str | None = None
    #: The URL as sent; redacted when shown.
    url: str | None = None

    def words(self) -> str:
        where = ": ".join(part for part in (self.provider, self.operation) if part)
        if self.method:
            where += f" ({self.method} {self.url or ''})"
        return where


@dataclass(frozen=True)
class Refusal:
    """What a platform answered to a call, in its own words, before reconcile words the error.

    Made by each platform's `map_error` (from an error response) and by the checks of answers;
    `platform_error` turns it into the `ProviderError` a user sees.
    """

    #: The answer in short: "HTTP 404 common.01000001: response status exception [request id r]".
    detail: str
    #: The error class: `NotFoundError`, `AuthError`, `InUseError`, ...
    kind: type[ProviderError] = ProviderError
    status: int | None = None
    code: str | None = None
    platform_message: str | None = None
    solution: str | None = None
    hint: str | None = None

    @classmethod
    def of(cls, error: ProviderError, operation: str | None = None) -> Refusal:
        """An error's refusal again, to word it for a call it did not know (a pure parser's)."""
        detail = error.message
        if operation and detail.startswith(f"{operation}: "):
            detail = detail[len(operation) + 2 :]
        return cls(
            detail,
            type(error),
            status=error.status,
            code=error.code,
            platform_message=error.platform_message,
            solution=error.solution,
            hint=error.hint,
        )


@dataclass
class Redactor:
    """Replaces every known secret value with `***` in text that may reach a user."""

    secrets: set[str] = field(default_factory=set)

    def add(self, *values: str | None) -> None:
        for value in values:
            if value and len(value) >= 4:
                # Also the escaped forms an exception message may show (str and bytes reprs).
                self.secrets.update(
                    {value, value.encode("unicode_escape").decode(), repr(value.encode())[2:-1]}
                )

    def __call__(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


#: No secret known: for text made where no provider's secrets are at hand.
NO_SECRETS = Redactor()


def escape_text(text: str) -> str:
    """Text as it may be shown on one line of a terminal: newlines, control characters and
    escape sequences of the platform's as visible escapes (`\\n`, `\\x1b`), not as effects."""
    return text


def platform_error(
    refusal: Refusal,
    call: Call | None = None,
    *,
    outcome: str | None = None,
    redact: Redactor = NO_SECRETS,
) -> ProviderError:
    """The error a user sees for a refused or failed call: `{call} {outcome}: {detail}`, the fix
    as its hint; redacted and escaped, whole. The one builder of a platform error's message."""
    call = call or Call()

    def shown(text: str | None) -> str | None:
        return None if text is None else escape_text(redact(text))

    where = call.words()
    if outcome:
        where = f"{where} {outcome}" if where else outcome
    message = f"{where}: {refusal.detail}" if where else refusal.detail
    return refusal.kind(
        shown(message) or "",
        provider=call.provider,
        operation=call.operation,
        method=call.method,
        url=shown(call.url),
        status=refusal.status,
        code=shown(refusal.code),
        platform_message=shown(refusal.platform_message),
        solution=shown(refusal.solution),
        hint=shown(refusal.hint),
    )

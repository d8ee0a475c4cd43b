"""Platform failures in words a user can trust.

`platform_error` is the one place that words a failed platform call: the call, what the platform
answered, and the fix. It is built once, whole, and never changed after. Everything in it passes
the `Redactor` (no secret, signature or token survives, even one the platform echoed back) and
`escape_text` (no newline or terminal escape sequence of the platform's reaches a terminal).
"""

from __future__ import annotations

import re
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
        for pattern, replacement in _CREDENTIAL_PATTERNS:
            text = pattern.sub(replacement, text)
        return text


#: Credentials by their look, in any text that came back (a gateway that echoes the request's
#: headers in its error body, an SDK's log line): the values of credential-bearing headers and
#: keys (`Authorization: ...`, `"X-Auth-Token": "..."`, `secret_key=...`), signatures of both
#: platforms' schemes, and tokens of known shapes (IAM PKI tokens `MII...`, JWTs, 64-hex
#: signatures). A value runs to the end of its quotes or of its line.
_VALUE = r"[^\\\"'\r\n]+"
_CREDENTIAL_NAMES = (
    r"(?:proxy-)?authorization|x-auth-token|x-subject-token|x-security-token|x-bce-security-token"
    r"|cookie|set-cookie|(?:access|secret|api)[_-]?(?:access[_-]?)?key(?:[_-]?id)?"
    r"|(?:access|security|session|auth|id|refresh)?[_-]?token|password|passwd|signature|credential"
)
_CREDENTIAL_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            rf"(?<![A-Za-z0-9_-])({_CREDENTIAL_NAMES})(\s*\\?[\"']?\s*[:=]\s*\\?[\"']?){_VALUE}",
            re.IGNORECASE,
        ),
        r"\1\2***",
    ),
    (re.compile(rf"bce-auth-v1/{_VALUE}", re.IGNORECASE), "***"),
    (re.compile(rf"SDK-HMAC-SHA256\s{_VALUE}", re.IGNORECASE), "***"),
    (re.compile(r"\bMII[A-Za-z0-9+/=_-]{20,}"), "***"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), "***"),
    (re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{64}(?![0-9A-Fa-f])"), "***"),
)


#: No secret known: for text made where no provider's secrets are at hand.
NO_SECRETS = Redactor()


def escape_text(text: str) -> str:
    """Text as it may be shown on one line of a terminal: newlines, control characters and
    escape sequences of the platform's as visible escapes (`\\n`, `\\x1b`), not as effects."""
    return _UNSHOWABLE.sub(_escaped, text)


#: C0 and C1 controls (newlines, ESC, DEL), line and paragraph separators, and the invisible
#: format characters that reorder or hide text (bidi overrides, zero-width characters, BOM).
_UNSHOWABLE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


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

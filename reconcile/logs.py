"""The debug log: the standard `logging` module, configured once, with every secret redacted.

`--log-level debug|info|warning` (or `RECONCILE_LOG`, the option winning) picks what is written,
to stderr or to `--log-file FILE` (appended):

- `warning` (the default): only what went wrong;
- `info`: also every HTTP attempt that failed or is retried, with why;
- `debug`: also every HTTP request, and the canonical request of each signature (what a signing
  failure on a real account is debugged from).

Everything goes through the `reconcile` logger and its children (the HTTP layer logs under
`reconcile.http`, from `providers/trace.py`, which knows nothing of this module). The handler that
`configure_logging` installs carries a `RedactingFilter`: before a record is written its message is
formatted and scrubbed of the secret values registered at run time (`register_secret`: keys,
tokens, webhook URLs, read from the environment) and of whatever looks like a credential whatever
its value: `Authorization` headers (the access key and signature of `bce-auth-v1` and
`SDK-HMAC-SHA256`, the whole value of any other scheme), `Bearer` tokens, `X-Auth-Token` and
`X-Security-Token` values, and token-like query parameters (`access_token`, `key`, `sign`, ...).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from reconcile.errors import ReconcileError

#: The logger every part of reconcile logs under (children: `reconcile.http`, ...).
LOGGER_NAME = "reconcile"
#: The environment variable that sets the level when `--log-level` is not given.
ENV_VAR = "RECONCILE_LOG"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
DEFAULT_LEVEL = "warning"
#: What a redacted secret is replaced with.
MASK = "***"
#: Registered values shorter than this are not redacted: no real credential is this short, and
#: masking every "ab" would shred the log.
MIN_SECRET_LENGTH = 4


class LogConfigError(ReconcileError):
    """`--log-level`, `RECONCILE_LOG` or `--log-file` cannot be used."""


# -- redaction --------------------------------------------------------------------------------

_HEADER_END = r"[^'\"\s,;}]+"
#: (pattern, replacement), applied in order. The two signing schemes keep their structure (the
#: timestamp and signed headers are what a signing failure is debugged from) but lose the access
#: key and the signature; any other Authorization value goes whole.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"(bce-auth-v1/)[^/\s'\"]+(/[^/\s'\"]*/[^/\s'\"]*/[^/\s'\"]*/)[0-9a-fA-F]+"),
        rf"\g<1>{MASK}\g<2>{MASK}",
    ),
    (re.compile(r"(SDK-HMAC-SHA256\s+Access=)[^,\s'\"]+"), rf"\g<1>{MASK}"),
    (re.compile(r"(Signature=)[0-9a-fA-F]+"), rf"\g<1>{MASK}"),
    # Possessive quantifiers: the look-ahead must test the value, not a space backtracked into.
    (
        re.compile(
            r"(?i)(authorization['\"]?+\s*+[:=]\s*+['\"]?+)(?!bce-auth-v1/|SDK-HMAC-SHA256\s)"
            r"[^'\"\r\n]+"
        ),
        rf"\g<1>{MASK}",
    ),
    (re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+"), rf"\g<1>{MASK}"),
    (
        re.compile(rf"(?i)((?:x-auth-token|x-security-token)['\"]?\s*[:=]\s*['\"]?){_HEADER_END}"),
        rf"\g<1>{MASK}",
    ),
    (
        re.compile(
            r"(?i)([?&](?:access_token|token|key|sign|signature|secret|password)=)[^&\s'\"#]+"
        ),
        rf"\g<1>{MASK}",
    ),
    # Webhook URLs whose path is the credential (Slack, Feishu/Lark).
    (re.compile(r"(hooks\.slack\.com/services/)[^\s'\"?#]+"), rf"\g<1>{MASK}"),
    (re.compile(r"(/open-apis/bot/v2/hook/)[^\s'\"?#/]+"), rf"\g<1>{MASK}"),
)


class _Secrets:
    """The secret values known at run time (thread-safe: the HTTP layer registers from workers)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: tuple[str, ...] = ()

    def add(self, value: str) -> None:
        if len(value) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            if value not in self._values:
                # Longest first, so a secret that contains another is masked whole.
                self._values = tuple(sorted({*self._values, value}, key=len, reverse=True))

    def clear(self) -> None:
        with self._lock:
            self._values = ()

    def values(self) -> tuple[str, ...]:
        return self._values


_SECRETS = _Secrets()


def register_secret(value: str | None) -> None:
    """Redact `value` from every log record from now on (a key, a token, a webhook URL)."""
    if value:
        _SECRETS.add(value)


def forget_secrets() -> None:
    """Forget every registered value (between runs in one process, and between tests)."""
    _SECRETS.clear()


def redact(text: str, secrets: tuple[str, ...] | None = None) -> str:
    """`text` with the registered secrets (or `secrets`) and credential-shaped values masked."""
    for value in _SECRETS.values() if secrets is None else secrets:
        text = text.replace(value, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Formats each record's message with its args, then redacts the result (and any exception
    or stack text), so no handler or formatter after it can see a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# -- configuration ----------------------------------------------------------------------------


def resolve_level(option: str | None, env: Mapping[str, str]) -> int:
    """The logging level from `--log-level` (if given) or `RECONCILE_LOG`, else warning. Pure."""
    if option:
        source, value = "--log-level", option
    elif env.get(ENV_VAR, "").strip():
        source, value = ENV_VAR, env[ENV_VAR]
    else:
        return LEVELS[DEFAULT_LEVEL]
    level = LEVELS.get(value.strip().lower())
    if level is None:
        raise LogConfigError(
            f"{source} is {value.strip()[:20]!r}, not a log level",
            hint=f"use one of {', '.join(LEVELS)}",
        )
    return level


_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Warnings alone (the default level) read as the rest of the output does.
_WARNING_FORMAT = "Warning: %(message)s"


class _LogFile(logging.FileHandler):
    """`--log-file`, which says once, on stderr, that it could not be written (a full disk)
    and then writes no more. Left to `logging`, each record printed a "--- Logging error ---"
    traceback, and the flush on closing the file raised out of the command after its work:
    a plan that had succeeded exited 1."""

    failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # called by emit, in its except
        self._failed(sys.exc_info()[1])

    def flush(self) -> None:
        try:
            super().flush()
        except (OSError, ValueError) as error:
            self._failed(error)

    def close(self) -> None:
        try:
            super().close()
        except (OSError, ValueError) as error:
            self._failed(error)

    def _failed(self, error: BaseException | None) -> None:
        if self.failed:
            return
        self.failed = True
        reason = getattr(error, "strerror", None) or error
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(
                f"Warning: the log file {self.baseFilename} could not be written ({reason}): "
                "the log stops here\n"
            )


def configure_logging(
    level: str | None = None,
    log_file: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send the `reconcile` logger's records at `level` (or `RECONCILE_LOG`) to `log_file`
    (appended), or to `stream` (default stderr), through a `RedactingFilter`. Calling it again
    replaces the handler it installed before. Returns the handler."""
    resolved = resolve_level(level, os.environ if env is None else env)
    handler: logging.Handler
    if log_file is not None:
        try:
            # A lone surrogate (a platform's "\\ud800") has no UTF-8: written as its escape, as
            # on stderr, never a "--- Logging error ---" in place of the line.
            handler = _LogFile(log_file, mode="a", encoding="utf-8", errors="backslashreplace")
        except OSError as exc:
            raise LogConfigError(
                f"--log-file {log_file}: cannot open it for writing ({exc.strerror})",
                hint="give a file in a directory that exists and that you can write to",
            ) from exc
    else:
        handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(
        logging.Formatter(_WARNING_FORMAT if resolved >= logging.WARNING else _FORMAT)
    )
    handler.addFilter(RedactingFilter())
    handler.set_name("reconcile-log")
    logger = logging.getLogger(LOGGER_NAME)
    for old in [h for h in logger.handlers if h.get_name() == "reconcile-log"]:
        logger.removeHandler(old)
        old.close()
    logger.addHandler(handler)
    logger.setLevel(resolved)
    # Records go to this handler only: a handler on the root logger (a host application's, or
    # the library default) would see them before redaction.
    logger.propagate = False
    return handler


def remove_logging() -> None:
    """Take away the handler `configure_logging` installed (a process that goes on after a
    command, such as a test run, must not keep writing to that command's stream)."""
    logger = logging.getLogger(LOGGER_NAME)
    for old in [h for h in logger.handlers if h.get_name() == "reconcile-log"]:
        logger.removeHandler(old)
        old.close()
    logger.setLevel(logging.NOTSET)
    # Back to the library default: a logger left non-propagating, with no handler of ours, is
    # one a host (pytest's log capture, for one) attaches its own handlers to, unfiltered.
    logger.propagate = True
    forget_secrets()

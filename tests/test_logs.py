"""The debug log (reconcile/logs.py): levels, where it goes, and that no secret gets through."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconcile import logs
from reconcile.errors import ReconcileError
from reconcile.providers import trace

SK = "sk-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
AK = "AKIDEXAMPLE1234567890"
TOKEN = "MIIEhQYJKoZIhvcNAQcCoIIEdjCCBHICAQExDTALBglghkgBZQMEAgEwgg"
SIGNATURE = "a" * 16 + "0123456789abcdef" * 3


@pytest.fixture(autouse=True)
def _clean_logger() -> Iterator[None]:
    logs.forget_secrets()
    yield
    logs.forget_secrets()
    logger = logging.getLogger(logs.LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


def _configure(level: str | None = None, env: dict[str, str] | None = None) -> io.StringIO:
    stream = io.StringIO()
    logs.configure_logging(level, env=env or {}, stream=stream)
    return stream


# -- levels -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "env", "expected"),
    [
        (None, {}, logging.WARNING),
        ("debug", {}, logging.DEBUG),
        ("INFO", {}, logging.INFO),
        (None, {"RECONCILE_LOG": "debug"}, logging.DEBUG),
        (None, {"RECONCILE_LOG": " Info "}, logging.INFO),
        (None, {"RECONCILE_LOG": ""}, logging.WARNING),
        ("warning", {"RECONCILE_LOG": "debug"}, logging.WARNING),  # the option wins
    ],
)
def test_the_level_comes_from_the_option_then_reconcile_log(
    option: str | None, env: dict[str, str], expected: int
) -> None:
    assert logs.resolve_level(option, env) == expected


def test_a_bad_level_is_an_error_naming_where_it_came_from() -> None:
    with pytest.raises(ReconcileError) as raised:
        logs.resolve_level(None, {"RECONCILE_LOG": "verbose"})
    assert "RECONCILE_LOG" in str(raised.value)
    assert "debug, info, warning" in str(raised.value)
    with pytest.raises(ReconcileError, match="--log-level"):
        logs.resolve_level("trace", {})


def test_at_warning_no_request_is_logged() -> None:
    stream = _configure()
    trace.log_request("GET", "https://example.test/v1/models", 200, 0.1, 1)
    trace.log_request("GET", "https://example.test/v1/models", 500, 0.1, 1, "HTTP 500")
    trace.log_canonical_request("GET\n/v1/models\n")
    assert stream.getvalue() == ""


def test_at_info_only_failed_or_retried_attempts_are_logged() -> None:
    stream = _configure("info")
    trace.log_request("GET", "https://example.test/v1/models", 200, 0.1, 1)
    trace.log_request("GET", "https://example.test/v1/models", 429, 0.25, 1, "HTTP 429")
    trace.log_request("DELETE", "https://example.test/v1/models/m1", None, 5.0, 2, "timeout")
    trace.log_canonical_request("GET\n/v1/models\n")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert (
        "INFO reconcile.http: GET https://example.test/v1/models -> HTTP 429 in 0.250 s"
        in (lines[0])
    )
    assert "(attempt 1, retrying: HTTP 429)" in lines[0]
    assert "DELETE https://example.test/v1/models/m1 -> no response in 5.000 s" in lines[1]
    assert "(attempt 2, retrying: timeout)" in lines[1]


def test_at_debug_every_request_and_the_canonical_request_are_logged() -> None:
    stream = _configure(None, {"RECONCILE_LOG": "debug"})
    trace.log_request("get", "https://example.test/v1/models?page=2", 200, 0.012, 1)
    trace.log_canonical_request("GET\n/v1/models\npage=2\nhost:example.test")
    text = stream.getvalue()
    assert "DEBUG reconcile.http: GET https://example.test/v1/models?page=2 -> HTTP 200" in text
    assert "canonical request:\nGET\n/v1/models\npage=2\nhost:example.test" in text


def test_the_log_file_is_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "reconcile.log"
    path.write_text("earlier run\n", encoding="utf-8")
    logs.configure_logging("debug", path, env={})
    trace.log_request("GET", "https://example.test/", 200, 0.0, 1)
    logging.getLogger(logs.LOGGER_NAME).handlers[0].flush()
    text = path.read_text(encoding="utf-8")
    assert text.startswith("earlier run\n")
    assert "GET https://example.test/ -> HTTP 200" in text


def test_a_log_line_holding_a_lone_surrogate_is_written_with_its_escape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A platform's JSON may hold "\\ud800", which UTF-8 cannot encode: the line is still written
    (as stderr writes it), not replaced by logging's own error report."""
    path = tmp_path / "reconcile.log"
    logs.configure_logging("debug", path, env={})
    logging.getLogger(logs.LOGGER_NAME).warning("model %s is odd", "old\ud800chat")
    logging.getLogger(logs.LOGGER_NAME).handlers[0].flush()
    assert "model old\\ud800chat is odd" in path.read_bytes().decode()  # strict UTF-8
    assert "Logging error" not in capsys.readouterr().err


def test_a_log_file_that_cannot_be_opened_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReconcileError, match="--log-file") as raised:
        logs.configure_logging("debug", tmp_path / "missing" / "x.log", env={})
    assert raised.value.hint


def test_configuring_twice_keeps_one_handler() -> None:
    _configure("debug")
    stream = _configure("debug")
    trace.log_request("GET", "https://example.test/", 200, 0.0, 1)
    assert len(logging.getLogger(logs.LOGGER_NAME).handlers) == 1
    assert stream.getvalue().count("GET https://example.test/") == 1


# -- redaction --------------------------------------------------------------------------------


def test_registered_secrets_are_redacted_from_message_and_args() -> None:
    stream = _configure("debug")
    logs.register_secret(SK)
    logs.register_secret(TOKEN)
    log = logging.getLogger("reconcile.providers")
    log.debug("secret key is %s", SK)
    log.debug("token in a mapping: %(t)s", {"t": TOKEN})
    log.debug(f"inline {SK} and {TOKEN}")
    text = stream.getvalue()
    assert SK not in text
    assert TOKEN not in text
    assert text.count("***") == 4


def test_a_longer_secret_containing_a_shorter_one_is_masked_whole() -> None:
    stream = _configure("debug")
    logs.register_secret("abcd")
    logs.register_secret("abcd-efgh-ijkl")
    logging.getLogger("reconcile").debug("value abcd-efgh-ijkl")
    assert "efgh" not in stream.getvalue()


def test_an_exception_text_is_redacted() -> None:
    stream = _configure("debug")
    logs.register_secret(SK)
    try:
        raise RuntimeError(f"signing with {SK} failed")
    except RuntimeError:
        logging.getLogger("reconcile").exception("it broke")
    text = stream.getvalue()
    assert "RuntimeError: signing with *** failed" in text
    assert SK not in text


@pytest.mark.parametrize(
    ("line", "kept", "gone"),
    [
        (
            f"Authorization: bce-auth-v1/{AK}/2024-06-01T10:00:00Z/1800/host;x-bce-date/"
            f"{SIGNATURE}",
            ["bce-auth-v1/***/2024-06-01T10:00:00Z/1800/host;x-bce-date/***"],
            [AK, SIGNATURE],
        ),
        (
            f"{{'Authorization': 'SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host;x-sdk-date, "
            f"Signature={SIGNATURE}'}}",
            ["SDK-HMAC-SHA256 Access=***, SignedHeaders=host;x-sdk-date, Signature=***"],
            [AK, SIGNATURE],
        ),
        (f"authorization: Bearer {TOKEN}", ["authorization: ***"], [TOKEN]),
        (f"sent Bearer {TOKEN} along", ["Bearer ***"], [TOKEN]),
        (f"X-Auth-Token: {TOKEN}", ["X-Auth-Token: ***"], [TOKEN]),
        (f"{{'x-auth-token': '{TOKEN}'}}", ["'x-auth-token': '***'"], [TOKEN]),
        (f"x-security-token:{TOKEN}\nx-sdk-date:20240601", ["x-security-token:***"], [TOKEN]),
        (f"X-Security-Token={TOKEN}", ["X-Security-Token=***"], [TOKEN]),
        (
            f"POST https://oapi.dingtalk.com/robot/send?access_token={TOKEN}&timestamp=1&sign=ab%2F",
            ["access_token=***&timestamp=1&sign=***"],
            [TOKEN, "ab%2F"],
        ),
        (
            "POST https://hooks.slack.com/services/T000/B000/XXXXSECRET",
            ["https://hooks.slack.com/services/***"],
            ["XXXXSECRET"],
        ),
        (
            "POST https://open.feishu.cn/open-apis/bot/v2/hook/0e1f-secret-hook",
            ["/open-apis/bot/v2/hook/***"],
            ["0e1f-secret-hook"],
        ),
    ],
)
def test_credential_shaped_values_are_redacted_whatever_their_value(
    line: str, kept: list[str], gone: list[str]
) -> None:
    stream = _configure("debug")
    logging.getLogger("reconcile.http").debug("%s", line)
    text = stream.getvalue()
    for part in kept:
        assert part in text
    for part in gone:
        assert part not in text


def test_redaction_covers_every_child_logger_and_the_helpers() -> None:
    stream = _configure("debug")
    logs.register_secret(TOKEN)
    trace.log_request("GET", f"https://example.test/x?token={TOKEN}", 401, 0.1, 1)
    trace.log_canonical_request(f"GET\n/x\n\nx-auth-token:{TOKEN}")
    logging.getLogger("reconcile.applier.deep").info("%r", {"X-Auth-Token": TOKEN})
    assert TOKEN not in stream.getvalue()


def test_records_do_not_reach_the_root_logger_unredacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _configure("debug")
    with caplog.at_level(logging.DEBUG):
        logs.register_secret(SK)
        logging.getLogger("reconcile").debug("key %s", SK)
    assert SK not in caplog.text


def test_short_values_are_not_registered() -> None:
    logs.register_secret("ab")
    logs.register_secret(None)
    logs.register_secret("")
    assert logs.redact("a cab ran") == "a cab ran"

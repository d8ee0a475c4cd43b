"""Notifications (reconcile/notify.py), each format received by a real HTTP server on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from reconcile import logs
from reconcile.errors import ReconcileError
from reconcile.events import RunEvent
from reconcile.notify import (
    WECOM_MAX_BYTES,
    Target,
    build_request,
    check_targets,
    markdown_escape,
    parse_target,
    resolve,
    send_notifications,
    should_notify,
)

NOW = 1_717_236_000.25
SECRET = "SECf00dfeed1234567890abcdef"
TOKEN = "tok-5ec12e7-0a1b2c3d4e5f"
#: A platform name with everything a message format could read as markup.
NASTY = "fabric-prod/<!channel> *bold* _it_ [x](http://evil) `tick` @13800000000 <@all> &amp;"


# -- a loopback receiver ----------------------------------------------------------------------


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    answer: bytes = b'{"code":0,"errcode":0,"msg":"ok"}'
    delay: float = 0.0


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        receiver = self.server.receiver
        length = int(self.headers.get("Content-Length", "0"))
        parts = urlsplit(self.path)
        receiver.requests.append(
            Received(parts.path, parse_qs(parts.query), dict(self.headers), self.rfile.read(length))
        )
        time.sleep(receiver.delay)
        self.send_response(receiver.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(receiver.answer)))
        self.end_headers()
        self.wfile.write(receiver.answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (the timeout test) is not the receiver's error


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    yield server.receiver
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    yield
    logs.forget_secrets()


def _event(**changes: Any) -> RunEvent:
    values: dict[str, Any] = {
        "command": "drift",
        "counts": {"fabric-prod": {"delete": 515, "blocked": 3}, "qianfan": {"drift": 2}},
        "exit_code": 2,
        "summary": "Plan: 515 to delete, 3 blocked, 2 drifted.",
        "changed": True,
        "started_at": NOW - 12.5,
        "finished_at": NOW,
        "link": "https://ci.example.test/jobs/42",
        "details": (f"delete {NASTY}", "delete fabric-prod/support-bot/v3"),
    }
    values.update(changes)
    return RunEvent(**values)


def _send(target: str, env: dict[str, str], event: RunEvent | None = None, **kw: Any) -> list[str]:
    return send_notifications([parse_target(target)], event or _event(), env=env, now=NOW, **kw)


# -- each format, as the receiver got it ------------------------------------------------------


def test_slack_gets_text_and_blocks_with_mrkdwn_escaped(receiver: Receiver) -> None:
    url = f"{receiver.url}/services/T000/B000/{TOKEN}"
    assert _send("slack://env:SLACK_WEBHOOK_URL", {"SLACK_WEBHOOK_URL": url}) == []
    (request,) = receiver.requests
    assert request.path == f"/services/T000/B000/{TOKEN}"
    assert request.headers["Content-Type"].startswith("application/json")
    payload = request.json()
    assert payload["text"].startswith("reconcile drift: drift found: Plan: 515 to delete")
    header, summary, details, context = payload["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": payload["text"][:28]},
    }
    assert summary["text"]["type"] == "mrkdwn"
    assert "• `fabric-prod`: 515 delete, 3 blocked" in summary["text"]["text"]
    assert "• `qianfan`: 2 drift" in summary["text"]["text"]
    shown = details["text"]["text"]
    # Slack's control characters are entities, the name sits in a code span, and its backtick
    # cannot close the span early
    assert "&lt;!channel&gt;" in shown
    assert "&amp;amp;" in shown
    assert "<!channel>" not in shown
    first = shown.splitlines()[0]
    assert first.startswith("`delete fabric-prod/") and first.endswith("`")
    assert first.count("`") == 2
    assert context["elements"][0]["text"] == "<https://ci.example.test/jobs/42|Open the run>"


def test_feishu_gets_a_signed_interactive_card(receiver: Receiver) -> None:
    env = {"FEISHU_HOOK": f"{receiver.url}/open-apis/bot/v2/hook/{TOKEN}", "FEISHU_SECRET": SECRET}
    assert _send("feishu://env:FEISHU_HOOK?secret_env=FEISHU_SECRET", env) == []
    (request,) = receiver.requests
    payload = request.json()
    # the signature, computed here independently: HMAC-SHA256 keyed by "timestamp\nsecret" over
    # an empty message, base64; the timestamp in seconds, as a string
    assert payload["timestamp"] == str(int(NOW))
    key = f"{int(NOW)}\n{SECRET}".encode()
    assert payload["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert payload["msg_type"] == "interactive"
    card = payload["card"]
    assert card["header"]["title"] == {
        "tag": "plain_text",
        "content": "reconcile drift: drift found",
    }
    assert card["header"]["template"] == "orange"
    texts = [e["text"] for e in card["elements"] if e["tag"] == "div"]
    assert all(text["tag"] == "plain_text" for text in texts)  # no markup is interpreted
    assert texts[0]["content"] == "Plan: 515 to delete, 3 blocked, 2 drifted."
    assert texts[1]["content"] == "fabric-prod: 515 delete, 3 blocked\nqianfan: 2 drift"
    assert f"delete {NASTY}" in texts[2]["content"]
    (button,) = card["elements"][-1]["actions"]
    assert button["url"] == "https://ci.example.test/jobs/42"
    assert SECRET not in request.body.decode()


def test_feishu_without_a_secret_sends_no_signature(receiver: Receiver) -> None:
    env = {"FEISHU_HOOK": f"{receiver.url}/hook/{TOKEN}"}
    assert _send("feishu://env:FEISHU_HOOK", env, _event(exit_code=1)) == []
    payload = receiver.requests[0].json()
    assert "sign" not in payload
    assert "timestamp" not in payload
    assert payload["card"]["header"]["template"] == "red"
    assert payload["card"]["header"]["title"]["content"] == "reconcile drift: failed (exit code 1)"


def test_dingtalk_gets_signed_markdown(receiver: Receiver) -> None:
    env = {
        "DINGTALK_URL": f"{receiver.url}/robot/send?access_token={TOKEN}",
        "DINGTALK_SECRET": SECRET,
    }
    assert _send("dingtalk://env:DINGTALK_URL?secret_env=DINGTALK_SECRET", env) == []
    (request,) = receiver.requests
    assert request.path == "/robot/send"
    assert request.query["access_token"] == [TOKEN]
    # the signature, computed here independently: HMAC-SHA256 keyed by the secret over
    # "timestamp\nsecret", base64; the timestamp in milliseconds
    timestamp = int(NOW * 1000)
    assert request.query["timestamp"] == [str(timestamp)]
    digest = hmac.new(SECRET.encode(), f"{timestamp}\n{SECRET}".encode(), hashlib.sha256)
    assert request.query["sign"] == [base64.b64encode(digest.digest()).decode()]
    payload = request.json()
    assert payload["msgtype"] == "markdown"
    assert payload["markdown"]["title"] == "reconcile drift: drift found"
    text = payload["markdown"]["text"]
    assert text.startswith("#### reconcile drift: drift found\n\nPlan: 515 to delete")
    assert "- **fabric\\-prod**: 515 delete, 3 blocked" in text
    assert f"- delete {markdown_escape(NASTY)}" in text
    assert "[Open the run](https://ci.example.test/jobs/42)" in text


def test_wecom_gets_markdown_within_its_size_limit(receiver: Receiver) -> None:
    env = {"WECOM_URL": f"{receiver.url}/cgi-bin/webhook/send?key={TOKEN}"}
    # escaped, 20 such lines are more than WeCom takes: the message drops lines, and says so
    details = tuple(f"delete fabric-prod/model-{i:04d}/{'v-' * 80}" for i in range(515))
    assert _send("wecom://env:WECOM_URL", env, _event(details=details)) == []
    (request,) = receiver.requests
    assert request.query["key"] == [TOKEN]
    payload = request.json()
    assert payload["msgtype"] == "markdown"
    content = payload["markdown"]["content"]
    assert content.startswith('### reconcile drift: <font color="warning">drift found</font>')
    assert len(content.encode()) <= WECOM_MAX_BYTES
    assert "- delete fabric\\-prod/model\\-0000/" in content
    shown = content.count("- delete ")
    assert 0 < shown < 20
    assert f"- … and {515 - shown} more" in content


def test_a_generic_webhook_gets_the_event_as_json_with_a_signature(receiver: Receiver) -> None:
    env = {"HOOK_URL": f"{receiver.url}/hooks/reconcile", "HOOK_SECRET": SECRET}
    assert _send("webhook://env:HOOK_URL?secret_env=HOOK_SECRET", env) == []
    (request,) = receiver.requests
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Reconcile-Signature-256"] == expected
    assert request.json() == {
        "format_version": 1,
        "tool": "reconcile",
        "command": "drift",
        "outcome": "changes",
        "title": "reconcile drift: drift found",
        "summary": "Plan: 515 to delete, 3 blocked, 2 drifted.",
        "exit_code": 2,
        "changed": True,
        "providers": {"fabric-prod": {"delete": 515, "blocked": 3}, "qianfan": {"drift": 2}},
        "totals": {"delete": 515, "blocked": 3, "drift": 2},
        "details": [f"delete {NASTY}", "delete fabric-prod/support-bot/v3"],
        "link": "https://ci.example.test/jobs/42",
        "started_at": "2024-06-01T09:59:47.750000Z",
        "finished_at": "2024-06-01T10:00:00.250000Z",
        "duration_seconds": 12.5,
    }


def test_a_literal_loopback_url_is_a_generic_webhook(receiver: Receiver) -> None:
    assert send_notifications([parse_target(f"{receiver.url}/in")], _event(), env={}) == []
    assert receiver.requests[0].path == "/in"
    assert "X-Reconcile-Signature-256" not in receiver.requests[0].headers


def test_every_target_is_sent_to(receiver: Receiver) -> None:
    env = {"A": f"{receiver.url}/a", "B": f"{receiver.url}/b"}
    targets = [parse_target("slack://env:A"), parse_target("webhook://env:B")]
    assert send_notifications(targets, _event(), env=env) == []
    assert [r.path for r in receiver.requests] == ["/a", "/b"]


# -- failures are warnings, and no warning holds a secret -------------------------------------


@pytest.mark.parametrize("kind", ["slack", "feishu", "dingtalk", "wecom", "webhook"])
def test_a_receiver_answering_500_is_a_warning_without_secrets(
    receiver: Receiver, kind: str
) -> None:
    receiver.status = 500
    receiver.answer = b"internal error"
    env = {"URL": f"{receiver.url}/x/{TOKEN}?access_token={TOKEN}", "SECRET": SECRET}
    query = "?secret_env=SECRET" if kind in ("feishu", "dingtalk", "webhook") else ""
    warnings = _send(f"{kind}://env:URL{query}", env)
    assert len(receiver.requests) == 1
    assert warnings == [
        f"notification to {kind} (URL) failed: the receiver answered HTTP 500: internal error"
    ]


@pytest.mark.parametrize(
    ("kind", "answer"),
    [
        ("feishu", {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"}),
        ("dingtalk", {"errcode": 310000, "errmsg": "sign not match"}),
        ("wecom", {"errcode": 93000, "errmsg": "invalid webhook url"}),
    ],
)
def test_a_platform_error_code_in_a_200_answer_is_a_warning(
    receiver: Receiver, kind: str, answer: dict[str, Any]
) -> None:
    receiver.answer = json.dumps(answer).encode()
    (warning,) = _send(f"{kind}://env:URL", {"URL": f"{receiver.url}/{TOKEN}"})
    code = answer.get("code", answer.get("errcode"))
    said = answer.get("msg", answer.get("errmsg"))
    assert (
        warning
        == f"notification to {kind} (URL) failed: {kind} refused the message: code {code}: {said}"
    )


def test_an_unreachable_receiver_is_a_warning(receiver: Receiver) -> None:
    closed = receiver.url.rsplit(":", 1)[0] + ":1"  # nothing listens on port 1
    (warning,) = _send("slack://env:URL", {"URL": f"{closed}/services/{TOKEN}"})
    assert warning.startswith("notification to slack (URL) failed: ConnectError")
    assert TOKEN not in warning


def test_a_slow_receiver_times_out_quickly_as_a_warning(receiver: Receiver) -> None:
    receiver.delay = 3.0
    started = time.monotonic()
    (warning,) = _send("webhook://env:URL", {"URL": f"{receiver.url}/{TOKEN}"}, timeout=0.3)
    assert time.monotonic() - started < 2.0
    assert "ReadTimeout" in warning
    assert TOKEN not in warning


def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    receiver.status = 302
    receiver.answer = b""
    (warning,) = _send("webhook://env:URL", {"URL": f"{receiver.url}/{TOKEN}"})
    assert "HTTP 302" in warning
    assert len(receiver.requests) == 1


def test_an_unset_variable_is_a_warning_naming_it(receiver: Receiver) -> None:
    warnings = _send("dingtalk://env:DINGTALK_URL?secret_env=DINGTALK_SECRET", {})
    assert warnings == [
        "notification not sent: --notify dingtalk (DINGTALK_URL): the environment variable "
        "DINGTALK_URL is not set\n  hint: export DINGTALK_URL with the webhook's URL"
    ]
    (warning,) = _send(
        "feishu://env:URL?secret_env=FEISHU_SECRET", {"URL": f"{receiver.url}/{TOKEN}"}
    )
    assert "FEISHU_SECRET (its signing secret) is not set" in warning
    assert TOKEN not in warning
    assert receiver.requests == []


def test_a_receiver_echoing_the_secret_is_redacted(receiver: Receiver) -> None:
    receiver.status = 400
    receiver.answer = f"bad request to /x/{TOKEN} signed {SECRET}".encode()
    env = {"URL": f"{receiver.url}/x/{TOKEN}", "S": SECRET}
    (warning,) = _send("webhook://env:URL?secret_env=S", env)
    assert TOKEN not in warning
    assert SECRET not in warning
    assert "bad request to /x/*** signed ***" in warning


def test_sent_requests_are_logged_without_secrets(receiver: Receiver) -> None:
    import io

    stream = io.StringIO()
    logs.configure_logging("debug", env={}, stream=stream)
    try:
        _send("slack://env:URL", {"URL": f"{receiver.url}/services/{TOKEN}"})
    finally:
        import logging

        logger = logging.getLogger(logs.LOGGER_NAME)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    text = stream.getvalue()
    assert f"POST {receiver.url}/… -> HTTP 200" in text
    assert TOKEN not in text


# -- when to send -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on", "exit_code", "changed", "sent"),
    [
        ("change", 0, False, False),
        ("change", 0, True, True),
        ("change", 2, True, True),
        ("change", 1, False, True),  # a failure is always worth saying under "change"
        ("change", 3, True, True),
        ("always", 0, False, True),
        ("always", 2, True, True),
        ("failure", 0, False, False),
        ("failure", 2, True, False),
        ("failure", 1, False, True),
        ("failure", 3, True, True),
        ("failure", 130, True, True),
    ],
)
def test_notify_on(on: str, exit_code: int, changed: bool, sent: bool) -> None:
    event = _event(exit_code=exit_code, changed=changed)
    assert should_notify(on, event) is sent  # type: ignore[arg-type]


def test_nothing_is_sent_when_notify_on_says_no(receiver: Receiver) -> None:
    event = _event(exit_code=0, changed=False)
    assert _send("webhook://env:URL", {"URL": receiver.url}, event, on="failure") == []
    assert _send("webhook://env:URL", {"URL": receiver.url}, event, on="change") == []
    assert receiver.requests == []
    assert _send("webhook://env:URL", {"URL": receiver.url}, event, on="always") == []
    assert len(receiver.requests) == 1
    assert receiver.requests[0].json()["outcome"] == "no_changes"


# -- target syntax ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("slack://env:SLACK_WEBHOOK_URL", Target("slack", url_env="SLACK_WEBHOOK_URL")),
        (
            "feishu://env:FEISHU_HOOK?secret_env=FEISHU_SECRET",
            Target("feishu", url_env="FEISHU_HOOK", secret_env="FEISHU_SECRET"),
        ),
        (
            "DingTalk://env:DINGTALK_TOKEN?secret_env=DINGTALK_SECRET",
            Target("dingtalk", url_env="DINGTALK_TOKEN", secret_env="DINGTALK_SECRET"),
        ),
        ("wecom://env:WECOM_KEY", Target("wecom", url_env="WECOM_KEY")),
        ("webhook://env:HOOK", Target("webhook", url_env="HOOK")),
        (
            "https://hooks.example.test/reconcile",
            Target("webhook", url="https://hooks.example.test/reconcile"),
        ),
    ],
)
def test_targets_parse(text: str, expected: Target) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    ("text", "says", "never"),
    [
        ("slack://T000/B000/XXXXSECRET", "expected env:VARIABLE", "XXXXSECRET"),
        ("dingtalk://env:0abc-SECRETTOKEN", "expected env:VARIABLE", "SECRETTOKEN"),
        ("https://hooks.slack.com/services/T0/B0/XXXXSECRET", "hooks.slack.com URL", "XXXXSECRET"),
        (
            "https://oapi.dingtalk.com/robot/send?access_token=SECRETTOKEN",
            "dingtalk://env:VARIABLE",
            "SECRETTOKEN",
        ),
        ("https://example.test/hook?token=SECRETTOKEN", "query string", "SECRETTOKEN"),
        ("https://user:SECRETPASS@example.test/hook", "password", "SECRETPASS"),
        ("http://example.test/hook", "not https", "\x00"),
        ("smtp://SECRETUSER@example.test", "is not one of", "SECRETUSER"),
        ("SECRETTOKEN", "is not one of", "SECRETTOKEN"),
        ("slack://env:URL?secret_env=S", "no option 'secret_env'", "\x00"),
        ("wecom://env:URL?key=SECRETKEY", "no option 'key'", "SECRETKEY"),
        ("feishu://env:URL?secret_env=not-a-name", "secret_env must name", "not-a-name"),
    ],
)
def test_bad_targets_are_refused_without_repeating_a_secret(
    text: str, says: str, never: str
) -> None:
    with pytest.raises(ReconcileError) as raised:
        parse_target(text)
    assert says in str(raised.value)
    assert never not in str(raised.value)
    assert raised.value.hint


def test_a_bare_token_resolves_to_the_platforms_own_url() -> None:
    env = {"T": TOKEN, "S": "T000/B000/XXXX"}
    assert resolve(parse_target("slack://env:S"), env).url == (
        "https://hooks.slack.com/services/T000/B000/XXXX"
    )
    assert resolve(parse_target("feishu://env:T"), env).url == (
        f"https://open.feishu.cn/open-apis/bot/v2/hook/{TOKEN}"
    )
    assert resolve(parse_target("dingtalk://env:T"), env).url == (
        f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}"
    )
    assert resolve(parse_target("wecom://env:T"), env).url == (
        f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={TOKEN}"
    )


def test_the_dingtalk_signature_joins_the_tokens_query() -> None:
    endpoint = resolve(parse_target("dingtalk://env:T?secret_env=S"), {"T": TOKEN, "S": SECRET})
    url = build_request(endpoint, _event(), NOW).url
    query = parse_qs(urlsplit(url).query)
    assert sorted(query) == ["access_token", "sign", "timestamp"]
    assert "%2B" in url or "%2F" in url or "%3D" in url  # base64 is URL-encoded


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"U": "http://hooks.example.test/x"}, "is not https://"),
        ({"U": "not a url or token!"}, "U holds neither a URL nor a slack token"),
        ({"U": "   "}, "U is not set"),
    ],
)
def test_an_unusable_variable_is_named_and_not_shown(env: dict[str, str], says: str) -> None:
    with pytest.raises(ReconcileError) as raised:
        check_targets([parse_target("slack://env:U")], env)
    assert says in str(raised.value)
    assert env["U"].strip() not in str(raised.value) or not env["U"].strip()


def test_plain_http_off_loopback_needs_insecure() -> None:
    target = parse_target("webhook://env:U")
    env = {"U": "http://hooks.example.test/x"}
    with pytest.raises(ReconcileError):
        resolve(target, env)
    assert resolve(target, env, insecure=True).url == "http://hooks.example.test/x"


def test_markdown_escape_leaves_no_markup() -> None:
    escaped = markdown_escape("a*b_c [l](u) <font> #h `c` @all\nnext")
    assert escaped == "a\\*b\\_c \\[l\\]\\(u\\) \\<font\\> \\#h \\`c\\` \\@all next"


def test_importing_notify_does_not_import_httpx() -> None:
    code = "import sys, reconcile.notify, reconcile.metrics, reconcile.logs, reconcile.colour\n"
    code += "assert 'httpx' not in sys.modules, 'httpx imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_only_token_like_parts_of_a_url_are_treated_as_secrets() -> None:
    env = {"U": f"https://hooks.slack.com/services/T0AB12CD/B0CD34EF/{TOKEN}"}
    secrets = resolve(parse_target("slack://env:U"), env).secrets
    assert TOKEN in secrets
    assert "T0AB12CD" in secrets
    assert "services" not in secrets

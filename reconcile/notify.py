"""`--notify TARGET` (repeatable) and `--notify-on change|always|failure`: tell a chat or a webhook
how a `plan`, `apply` or `drift` went.

Targets. A webhook URL is a credential (whoever holds it can post to the group), so a target names
the environment variable that holds it, never the URL itself:

    slack://env:VAR                          Slack incoming webhook; VAR holds its URL
                                             (https://hooks.slack.com/services/T…/B…/…) or the
                                             part after /services/
    feishu://env:VAR[?secret_env=VAR2]       Feishu / Lark custom bot; VAR holds its URL
                                             (https://open.feishu.cn/open-apis/bot/v2/hook/…, or
                                             open.larksuite.com) or the hook's token alone
    dingtalk://env:VAR[?secret_env=VAR2]     DingTalk custom robot; VAR holds its URL
                                             (https://oapi.dingtalk.com/robot/send?access_token=…)
                                             or the access_token alone
    wecom://env:VAR                          WeCom (企业微信) group robot; VAR holds its URL
                                             (https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…)
                                             or the key alone
    webhook://env:VAR[?secret_env=VAR2]      a generic JSON webhook whose URL is in VAR
    https://host/path                        a generic JSON webhook whose URL carries no secret
                                             (no query string, no user name or password)

`secret_env` names the variable holding a signing secret: Feishu's "signature verification"
(`timestamp` and `sign` in the body), DingTalk's "加签" (`timestamp` and `sign` in the query), and
for a generic webhook an `X-Reconcile-Signature-256: sha256=<hex HMAC-SHA256 of the body>` header.
A URL must be https (plain http only to a loopback address, or with `insecure`). Error messages and
warnings name the variables, never their values; a URL literally on the command line that belongs
to one of the platforms above is refused, since it carries the token.

When. `change` (the default): when the run found something (deletes, drift, an apply's deletes) or
failed; `always`; `failure`: only when the run failed (an exit code other than 0 and 2).

Sending never fails a run: every target gets one POST with a short timeout, and whatever goes wrong
(a variable not set, a refused connection, an HTTP error, a platform's error code in a 200 answer)
comes back as a warning line for the caller to print.

Messages. Each platform gets its own format: Slack `text` + Block Kit `blocks` (mrkdwn, `&`, `<`,
`>` escaped; names in code spans); a Feishu `interactive` card (plain_text elements, which no
markup reaches); DingTalk and WeCom `markdown` (markdown punctuation backslash-escaped, so a name
cannot open a link, a mention or a heading); the generic webhook a JSON document of the event.

Over 450 lines on purpose: one feature read top to bottom (targets, resolving them against
the environment, each chat's message and signing, sending); every part is small, and split
across modules the five chats' rules would no longer read side by side.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from reconcile.errors import ReconcileError
from reconcile.events import RunEvent
from reconcile.logs import LOGGER_NAME, redact, register_secret
from reconcile.model import json_text

if TYPE_CHECKING:
    import httpx

_log = logging.getLogger(f"{LOGGER_NAME}.notify")

Kind = Literal["slack", "feishu", "dingtalk", "wecom", "webhook"]
NotifyOn = Literal["change", "always", "failure"]
NOTIFY_ON: tuple[NotifyOn, ...] = ("change", "always", "failure")

#: Seconds for each notification's connect, read and write: a chat that hangs must not hold a
#: pipeline.
TIMEOUT = 5.0
#: Detail lines shown in a message; the rest are counted ("… and 495 more").
MAX_DETAILS = 20
#: Characters of one detail line shown.
MAX_DETAIL_CHARS = 200
#: WeCom refuses markdown content over 4096 bytes.
WECOM_MAX_BYTES = 4096
#: The format of the generic webhook's JSON document.
FORMAT_VERSION = 1
SIGNATURE_HEADER = "X-Reconcile-Signature-256"

_KINDS: tuple[Kind, ...] = ("slack", "feishu", "dingtalk", "wecom", "webhook")
_SIGNED = frozenset({"feishu", "dingtalk", "webhook"})
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Where a bare token in the variable is sent (the platform's own webhook address).
_TOKEN_URLS: dict[str, str] = {
    "slack": "https://hooks.slack.com/services/",
    "feishu": "https://open.feishu.cn/open-apis/bot/v2/hook/",
    "dingtalk": "https://oapi.dingtalk.com/robot/send?access_token=",
    "wecom": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=",
}
_TOKEN = {"slack": re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*")}
_DEFAULT_TOKEN = re.compile(r"[A-Za-z0-9._~-]+")
#: Hosts whose webhook URLs carry their token: never accepted literally on a command line.
_TOKEN_HOSTS = {
    "hooks.slack.com": "slack",
    "open.feishu.cn": "feishu",
    "open.larksuite.com": "feishu",
    "oapi.dingtalk.com": "dingtalk",
    "qyapi.weixin.qq.com": "wecom",
}


class NotifyError(ReconcileError):
    """A `--notify` target cannot be used. Never carries a secret: it names variables only."""


# -- targets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A parsed `--notify` value: where the URL and the signing secret come from."""

    kind: Kind
    #: The variable holding the webhook URL or token (None: `url` is given literally).
    url_env: str | None = None
    #: A literal URL (a generic webhook whose URL carries no secret).
    url: str | None = None
    #: The variable holding the signing secret, if the target is signed.
    secret_env: str | None = None

    @property
    def label(self) -> str:
        """How warnings name the target: never a secret."""
        if self.url_env is not None:
            return f"{self.kind} ({self.url_env})"
        parts = urlsplit(self.url or "")
        return f"webhook {parts.scheme}://{parts.netloc}{parts.path}"


def _usage(kind: str) -> str:
    signed = "[?secret_env=VARIABLE]" if kind in _SIGNED else ""
    return f"write {kind}://env:VARIABLE{signed}, the variable holding the webhook URL or token"


def parse_target(text: str) -> Target:
    """A `--notify` value as a `Target`; a `NotifyError` that never repeats what follows the
    scheme (it may be a pasted token) when the value is not one of the documented forms."""
    scheme, separator, rest = text.strip().partition("://")
    scheme = scheme.lower()
    if separator and scheme in ("http", "https"):
        return _parse_literal(text.strip())
    kind = next((kind for kind in _KINDS if kind == scheme), None)
    if not separator or kind is None:
        shown = (
            f" {scheme}://" if separator and re.fullmatch(r"[a-z][a-z0-9+.-]{0,20}", scheme) else ""
        )
        raise NotifyError(
            f"--notify: the target{shown} is not one of slack://, feishu://, dingtalk://, "
            "wecom://, webhook:// or https://",
            hint="for example --notify slack://env:SLACK_WEBHOOK_URL",
        )
    body, _, query = rest.partition("?")
    name = body.removeprefix("env:")
    if not body.startswith("env:") or not _ENV_NAME.fullmatch(name):
        raise NotifyError(f"--notify {kind}://: expected env:VARIABLE", hint=_usage(kind))
    return Target(kind=kind, url_env=name, secret_env=_parse_options(kind, query))


def _parse_options(kind: Kind, query: str) -> str | None:
    secret_env = None
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key != "secret_env" or kind not in _SIGNED:
            shown = f" {key!r}" if re.fullmatch(r"[a-z_]{1,20}", key) else " this"
            raise NotifyError(f"--notify {kind}://: no option{shown}", hint=_usage(kind))
        if not _ENV_NAME.fullmatch(value):
            raise NotifyError(
                f"--notify {kind}://: secret_env must name an environment variable",
                hint=_usage(kind),
            )
        secret_env = value
    return secret_env


def _parse_literal(text: str) -> Target:
    parts = urlsplit(text)
    host = (parts.hostname or "").lower()
    kind = _TOKEN_HOSTS.get(host)
    if kind is not None:
        raise NotifyError(
            f"--notify: a {host} URL carries the webhook's token; it does not belong on a "
            "command line",
            hint=f"put the URL in an environment variable and {_usage(kind)}",
        )
    if parts.username or parts.password or parts.query:
        raise NotifyError(
            f"--notify {parts.scheme}://{host}: a URL with a user name, a password or a query "
            "string may carry a secret",
            hint="put the URL in an environment variable and write webhook://env:VARIABLE",
        )
    target = Target(kind="webhook", url=text)
    _check_url(text, target, where="--notify", insecure=False)
    return target


def parse_targets(values: Iterable[str]) -> list[Target]:
    return [parse_target(value) for value in values]


# -- resolving against the environment -------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A target with its URL and signing secret read from the environment."""

    target: Target
    url: str
    secret: str | None
    #: Every value to keep out of warnings and logs (the variable's value, the secret, the
    #: token-like parts of the URL, and their URL-quoted forms).
    secrets: tuple[str, ...]


# The same rule as the manifest's endpoints (manifest._is_loopback); one copy once an endpoint
# module owns it (DESIGN.md's endpoints.py), without making this module import the manifest.
def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: str, target: Target, *, where: str, insecure: bool) -> None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and host and (insecure or _is_loopback(host)):
        return
    raise NotifyError(
        f"{where}: the URL of {target.label} is not https://"
        + ("" if host else " (or has no host)"),
        hint="webhook URLs carry credentials: use https (plain http only to a loopback address)",
    )


def _endpoint_url(kind: Kind, value: str, name: str) -> str:
    if "://" in value:
        return value
    pattern = _TOKEN.get(kind, _DEFAULT_TOKEN)
    if kind == "webhook" or not pattern.fullmatch(value):
        raise NotifyError(
            f"--notify {kind}://: {name} holds neither a URL nor a {kind} token",
            hint=f"set {name} to the webhook URL the platform gave you",
        )
    return _TOKEN_URLS[kind] + value


def resolve(target: Target, env: Mapping[str, str], *, insecure: bool = False) -> Endpoint:
    """`target` with its URL and secret from `env`. A `NotifyError` naming the variable when one
    is unset or holds something unusable."""
    values: list[str] = []
    if target.url_env is None:
        url = target.url or ""
    else:
        value = env.get(target.url_env, "").strip()
        if not value:
            raise NotifyError(
                f"--notify {target.label}: the environment variable {target.url_env} is not set",
                hint=f"export {target.url_env} with the webhook's URL",
            )
        values.append(value)
        url = _endpoint_url(target.kind, value, target.url_env)
    _check_url(url, target, where="--notify", insecure=insecure)
    secret = None
    if target.secret_env is not None:
        secret = env.get(target.secret_env, "").strip()
        if not secret:
            raise NotifyError(
                f"--notify {target.label}: the environment variable {target.secret_env} "
                "(its signing secret) is not set",
                hint=f"export {target.secret_env}, or drop ?secret_env= if the bot is not signed",
            )
        values.append(secret)
    values += _url_parts(url)
    quoted = [quote(value, safe="") for value in values]
    return Endpoint(target, url, secret, tuple(dict.fromkeys([*values, *quoted])))


#: Path segments and query values at least this long are taken for tokens.
_TOKEN_PART_LENGTH = 8


def _url_parts(url: str) -> list[str]:
    """The parts of a webhook URL that may be its credential (Slack's and Feishu's token is a
    path segment, DingTalk's and WeCom's a query value), to keep them out of warnings even when
    a receiver echoes them."""
    parts = urlsplit(url)
    candidates = [*parts.path.split("/"), *(value for _, value in parse_qsl(parts.query))]
    candidates.append(parts.password or "")
    # Plain lower-case words ("services", "open-apis") are the platform's path, not a token.
    return [
        part
        for part in candidates
        if len(part) >= _TOKEN_PART_LENGTH and not re.fullmatch(r"[a-z-]+", part)
    ]


def check_targets(
    targets: Sequence[Target], env: Mapping[str, str], *, insecure: bool = False
) -> None:
    """Resolve every target now, so a missing variable is reported before a run, not after."""
    for target in targets:
        resolve(target, env, insecure=insecure)


def should_notify(on: NotifyOn, event: RunEvent) -> bool:
    if on == "always":
        return True
    if on == "failure":
        return not event.succeeded
    return not event.succeeded or event.changed


# -- the message, independent of the platform -------------------------------------------------


_HEADLINES = {
    ("plan", "changes"): "changes to apply",
    ("drift", "changes"): "drift found",
    ("apply", "changes"): "changes applied",
}


@dataclass(frozen=True)
class Message:
    """What every format says, as raw text (each renderer escapes it its own way)."""

    title: str
    #: "failure", "changes" or "no_changes".
    outcome: str
    summary: str
    #: (provider, "515 delete, 3 blocked") per provider.
    providers: tuple[tuple[str, str], ...]
    details: tuple[str, ...]
    #: Detail lines left out.
    more: int
    #: An http(s) link, percent-encoded so no format's link syntax can be broken by it.
    link: str | None


def _safe_link(link: str | None) -> str | None:
    if not link or urlsplit(link).scheme not in ("http", "https"):
        return None
    # Keep URL syntax, encode everything that could end a link in mrkdwn or markdown.
    return quote(link, safe=":/?#@!$&'*+,;=%~-._[]")


def _one_line(text: str, limit: int) -> str:
    text = " ".join(re.sub(r"[\x00-\x1f\x7f]", " ", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _counts_text(counts: Mapping[str, int]) -> str:
    shown = [f"{count} {category}" for category, count in counts.items() if count]
    return ", ".join(shown) or "nothing"


def message(event: RunEvent) -> Message:
    outcome = event.outcome
    if outcome == "failure":
        headline = f"failed (exit code {event.exit_code})"
    else:
        headline = _HEADLINES.get((event.command, outcome), "no changes")
    details = event.details[:MAX_DETAILS]
    return Message(
        title=f"reconcile {event.command}: {headline}",
        outcome=outcome,
        summary=_one_line(event.summary, 500),
        providers=tuple((name, _counts_text(counts)) for name, counts in event.counts.items()),
        details=tuple(_one_line(line, MAX_DETAIL_CHARS) for line in details),
        more=len(event.details) - len(details),
        link=_safe_link(event.link),
    )


def _more(m: Message) -> str:
    return f"… and {m.more} more" if m.more else ""


# -- Slack ------------------------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """Slack's three control characters as entities (its documented escaping)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_code(text: str) -> str:
    # In a code span mrkdwn's * _ ~ are literal; a backtick would end the span, and Slack has no
    # escape for it, so it becomes a look-alike (ˋ, U+02CB).
    return "`" + slack_escape(text).replace("`", "\u02cb") + "`"


def slack_payload(event: RunEvent) -> dict[str, Any]:
    """An incoming-webhook message: `text` (the notification's fallback) and `blocks`."""
    m = message(event)
    lines = [slack_escape(m.summary)]
    lines += [f"• {_slack_code(name)}: {counts}" for name, counts in m.providers]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": m.title}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
    ]
    if m.details:
        detail_lines = [_slack_code(line) for line in m.details] + [_more(m)]
        text = "\n".join(line for line in detail_lines if line)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    if m.link:
        link = {"type": "mrkdwn", "text": f"<{slack_escape(m.link)}|Open the run>"}
        blocks.append({"type": "context", "elements": [link]})
    return {"text": f"{m.title}: {slack_escape(m.summary)}", "blocks": blocks}


# -- Feishu / Lark ----------------------------------------------------------------------------

_FEISHU_COLOURS = {"failure": "red", "changes": "orange", "no_changes": "green"}


def _plain(text: str) -> dict[str, Any]:
    return {"tag": "div", "text": {"tag": "plain_text", "content": text}}


def feishu_payload(event: RunEvent) -> dict[str, Any]:
    """A custom bot's `interactive` card. Every text is `plain_text`: no markup to escape."""
    m = message(event)
    texts = [m.summary, "\n".join(f"{name}: {counts}" for name, counts in m.providers)]
    texts.append("\n".join(line for line in [*m.details, _more(m)] if line))
    elements = [_plain(text) for text in texts if text]
    if m.link:
        button = {
            "tag": "button",
            "text": {"tag": "plain_text", "content": "Open the run"},
            "type": "default",
            "url": m.link,
        }
        elements.append({"tag": "action", "actions": [button]})
    card = {
        "config": {"wide_screen_mode": True},
        "header": {
            "title": {"tag": "plain_text", "content": m.title},
            "template": _FEISHU_COLOURS[m.outcome],
        },
        "elements": elements,
    }
    return {"msg_type": "interactive", "card": card}


def feishu_sign(secret: str, timestamp: int) -> str:
    """Feishu's signature: HMAC-SHA256 keyed with "timestamp\\nsecret" over nothing, base64."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


# -- DingTalk and WeCom (markdown) ------------------------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~&@$])")


def markdown_escape(text: str) -> str:
    """Text shown literally in markdown: one line, and every punctuation character that markdown
    (or a platform's extensions: `<font>`, `<@user>`, `@mobile`) could read as syntax
    backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _one_line(text, 10_000))


def _markdown(m: Message, heading: str, details: Sequence[str]) -> str:
    parts = [heading, markdown_escape(m.summary)]
    parts.append(
        "\n".join(f"- **{markdown_escape(name)}**: {counts}" for name, counts in m.providers)
    )
    if details:
        more = len(m.details) - len(details) + m.more
        lines = [f"- {markdown_escape(line)}" for line in details]
        parts.append("\n".join(lines + ([f"- … and {more} more"] if more else [])))
    if m.link:
        parts.append(f"[Open the run]({m.link.replace('(', '%28').replace(')', '%29')})")
    return "\n\n".join(parts)


def dingtalk_payload(event: RunEvent) -> dict[str, Any]:
    """A custom robot's `markdown` message (`title` is what the notification list shows)."""
    m = message(event)
    text = _markdown(m, f"#### {m.title}", m.details)
    return {"msgtype": "markdown", "markdown": {"title": m.title, "text": text}}


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签: HMAC-SHA256 keyed with the secret over "timestamp\\nsecret", base64
    (URL-encoded when put in the query)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


_WECOM_COLOURS = {"failure": "warning", "changes": "warning", "no_changes": "info"}


def wecom_payload(event: RunEvent) -> dict[str, Any]:
    """A group robot's `markdown` message, cut to WeCom's 4096 bytes by dropping details."""
    m = message(event)
    command, _, headline = m.title.partition(": ")
    heading = f'### {command}: <font color="{_WECOM_COLOURS[m.outcome]}">{headline}</font>'
    details = list(m.details)
    content = _markdown(m, heading, details)
    while details and len(content.encode()) > WECOM_MAX_BYTES:
        details.pop()
        content = _markdown(m, heading, details)
    return {"msgtype": "markdown", "markdown": {"content": content}}


# -- generic webhook --------------------------------------------------------------------------


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def webhook_payload(event: RunEvent) -> dict[str, Any]:
    """The event as a JSON document (no markup: nothing to escape)."""
    return {
        "format_version": FORMAT_VERSION,
        "tool": "reconcile",
        "command": event.command,
        "outcome": event.outcome,
        "title": message(event).title,
        "summary": event.summary,
        "exit_code": event.exit_code,
        "changed": event.changed,
        "providers": {name: dict(counts) for name, counts in event.counts.items()},
        "totals": event.totals(),
        "details": list(event.details),
        "link": event.link,
        "started_at": _iso(event.started_at),
        "finished_at": _iso(event.finished_at),
        "duration_seconds": round(event.duration, 3),
    }


def webhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


RENDERERS: dict[Kind, Callable[[RunEvent], dict[str, Any]]] = {
    "slack": slack_payload,
    "feishu": feishu_payload,
    "dingtalk": dingtalk_payload,
    "wecom": wecom_payload,
    "webhook": webhook_payload,
}


# -- the request and its answer ---------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str]


def build_request(endpoint: Endpoint, event: RunEvent, now: float) -> Request:
    """The POST for `endpoint`, signed at `now` (Unix seconds) where a secret is set. Pure."""
    kind = endpoint.target.kind
    payload = RENDERERS[kind](event)
    url = endpoint.url
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "reconcile"}
    secret = endpoint.secret
    if secret and kind == "feishu":
        timestamp = int(now)
        payload = {"timestamp": str(timestamp), "sign": feishu_sign(secret, timestamp), **payload}
    elif secret and kind == "dingtalk":
        timestamp_ms = int(now * 1000)
        query = urlencode(
            {"timestamp": timestamp_ms, "sign": dingtalk_sign(secret, timestamp_ms)},
            quote_via=quote,
        )
        url += ("&" if urlsplit(url).query else "?") + query
    body = json_text(payload).encode()
    if secret and kind == "webhook":
        headers[SIGNATURE_HEADER] = webhook_signature(secret, body)
    return Request(url, body, headers)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def check_response(kind: Kind, status: int, text: str) -> str | None:
    """What went wrong with an answer, or None. Feishu, DingTalk and WeCom answer HTTP 200 with
    an error code in the body for a refused message (a bad signature, a keyword rule)."""
    if not 200 <= status < 300:
        snippet = _one_line(text, 200)
        return f"the receiver answered HTTP {status}" + (f": {snippet}" if snippet else "")
    answer = _json_object(text)
    if kind == "feishu":
        code = answer.get("code", answer.get("StatusCode", 0))
        said = answer.get("msg", answer.get("StatusMessage", ""))
    elif kind in ("dingtalk", "wecom"):
        code, said = answer.get("errcode", 0), answer.get("errmsg", "")
    else:
        return None
    if code in (0, None):
        return None
    return f"{kind} refused the message: code {code}: {_one_line(str(said), 200)}"


# -- sending (the I/O) ------------------------------------------------------------------------


def _display(url: str) -> str:
    """Scheme, host and port only: the path or query of a webhook URL is often its token."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/…"


def _send_one(
    client: httpx.Client,
    target: Target,
    event: RunEvent,
    env: Mapping[str, str],
    now: float,
    insecure: bool,
) -> str | None:
    try:
        endpoint = resolve(target, env, insecure=insecure)
    except NotifyError as exc:
        return f"notification not sent: {exc}"
    for value in endpoint.secrets:
        register_secret(value)
    request = build_request(endpoint, event, now)
    started = time.monotonic()
    status = None
    try:
        response = client.post(request.url, content=request.body, headers=request.headers)
        status = response.status_code
        problem = check_response(target.kind, status, response.text)
    # Best effort by design: whatever breaks while notifying (a refused connection, a timeout,
    # a TLS error, a proxy's garbage) is reported, never raised into the run.
    except Exception as exc:
        problem = f"{type(exc).__name__}: {_one_line(str(exc), 200) or 'no detail'}"
    _log.info(
        "notify POST %s -> %s in %.3f s",
        _display(endpoint.url),
        f"HTTP {status}" if status is not None else "no response",
        time.monotonic() - started,
    )
    if problem is None:
        return None
    return redact(f"notification to {target.label} failed: {problem}", endpoint.secrets)


def send_notifications(
    targets: Sequence[Target],
    event: RunEvent,
    on: NotifyOn = "change",
    *,
    env: Mapping[str, str] | None = None,
    now: float | None = None,
    timeout: float = TIMEOUT,
    insecure: bool = False,
    transport: httpx.BaseTransport | None = None,
) -> list[str]:
    """Send `event` to each target if `on` says so. Returns one warning per target that did not
    get it (never raises for a failed notification)."""
    if not targets or not should_notify(on, event):
        return []
    import httpx  # here, not at the top: `reconcile --help` should not pay for it

    env = os.environ if env is None else env
    now = time.time() if now is None else now
    warnings = []
    with httpx.Client(timeout=timeout, transport=transport, follow_redirects=False) as client:
        for target in targets:
            warning = _send_one(client, target, event, env, now, insecure)
            if warning:
                warnings.append(warning)
    return warnings

"""Channels: which transport a channel URL takes, the message a rep acts on, and sending it through apprise.

Any URL apprise knows (slack://, https://hooks.slack.com/…, workflows:// and Teams' Power Automate URLs, mailto://,
mailtos://, discord://, json://, …) goes through apprise; a plain http(s):// URL no apprise service claims is a
generic webhook and gets the documented signed JSON POST (runners/notify.py). A rep's Slack member id (`@U0123…`)
is a direct message through [notifications] slack_dm_channel's Slack bot URL.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlsplit

from connector.engine.notifications import SLACK_MEMBER

log = logging.getLogger("connector.notify")

# Services whose incoming messages take about one a second (Slack's documented limit for incoming webhooks and
# chat.postMessage; Teams' connectors and workflows): their default rate. Others are unlimited unless configured.
_SLOW_SCHEMAS = ("slack", "workflow", "workflows", "msteams")
_SLOW_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com", "outlook.office.com", "outlook.office365.com", ".webhook.office.com",
               ".logic.azure.com", ".powerplatform.com")
_CRM_NAMES = {"hubspot": "HubSpot", "salesforce": "Salesforce"}
_HTTP_STATUS = re.compile(r"error=(\d{3})\b")


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt: sent, retry (after `retry_after` seconds, None: back off), or failed (permanent)."""

    outcome: str
    error: str | None = None
    retry_after: float | None = None


def is_slack_member(target: str) -> bool:
    """A Slack member id written `@U0123ABCD` (a rep's `notify`): a direct message through the Slack bot channel."""
    return bool(SLACK_MEMBER.match(target))


def is_generic_webhook(url: str) -> bool:
    """A plain http(s):// URL that no apprise service recognises (Slack's and Teams' webhook URLs are recognised)."""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return False
    from apprise.plugins import N_MGR

    native = url.replace("/#", "/%23")  # as apprise reads a URL: a '#' is a Slack channel, not a fragment
    plugins = cast("Callable[[], Iterable[Any]]", N_MGR.plugins)
    return not any(plugin.parse_native_url(native) for plugin in plugins())


def default_rate_per_second(url: str) -> float | None:
    """1 message/s for Slack and Teams (and a Slack member id's DMs); None (unlimited) for webhooks and e-mail."""
    if is_slack_member(url):
        return 1.0
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    slow = parts.scheme.lower() in _SLOW_SCHEMAS or any(host == h or (h.startswith(".") and host.endswith(h)) for h in _SLOW_HOSTS)
    return 1.0 if slow else None


@dataclass(frozen=True)
class Message:
    """The message a rep acts on, in the forms the services take: a title (an e-mail's subject), plain text
    (e-mail), Markdown (Teams, Discord, …) and Slack mrkdwn (a Block Kit section)."""

    title: str
    text: str
    markdown: str
    slack: str


def _title(event: str, name: str, owner: str) -> str:
    return {
        "routed": f"New lead for {owner}: {name}",
        "reassigned": f"Lead reassigned to {owner}: {name}",
        "sla_breach": f"SLA breached: {name} not actioned by {owner}",
        "waiting": f"Lead waiting for an available rep: {name}",
        "dead_letter": f"Could not update {name} in the CRM",
        "test": "Test message from the CRM lead connector",
    }.get(event, f"{event}: {name}")


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _due(value: Any) -> str:
    if not value:
        return ""
    try:
        return datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return str(value)


def message(payload: Mapping[str, Any]) -> Message:
    """Name, title and company; score and grade; the top three reasons; the SLA deadline; the record link."""
    lead, owner = payload.get("lead") or {}, payload.get("owner") or {}
    name = str(lead.get("name") or lead.get("email") or lead.get("id") or "a lead")
    who = str(owner.get("name") or owner.get("email") or "a queue")  # a lead routed to a queue has no rep
    role = ", ".join(str(v) for v in (lead.get("title"), lead.get("company")) if v)
    points = payload.get("score")
    score = f"Score {points:g}" if isinstance(points, (int, float)) else f"Score {points}"
    score += f" ({payload.get('grade') or 'ungraded'})"
    reasons = [str(r) for r in payload.get("reasons") or []][:3]
    due = _due(payload.get("sla_due_at"))
    crm = _CRM_NAMES.get(str(lead.get("crm")), str(lead.get("crm") or "the CRM"))
    url = str(lead.get("url") or "")
    error = payload.get("error")

    def lines(bold: str, link: str, esc: Any = str) -> list[str]:
        out = [bold + (f" — {esc(role)}" if role else ""), f"{score} · owner {esc(who)}"]
        out += ["Why:", *(f"• {esc(r)}" for r in reasons)] if reasons else []
        out += [f"SLA: act by {due}"] if due else []
        out += [f"Error: {esc(str(error))}"] if error else []
        return out + ([link] if url else [])

    return Message(
        title=_title(str(payload.get("event")), name, who),
        text="\n".join(lines(name, f"Open in {crm}: {url}")),
        markdown="\n".join(lines(f"**{name}**", f"[Open in {crm}]({url})")),
        slack="\n".join(lines(f"*{_slack_escape(name)}*", f"<{url}|Open in {crm}>", _slack_escape)),
    )


def send_apprise(url: str, payload: Mapping[str, Any], *, slack_target: str | None = None) -> Attempt:
    """Send one message through apprise. Apprise reports only success or failure: a failure whose log names an HTTP
    4xx other than 408 / 429 is permanent, any other (5xx, 429, network, SMTP) is retried up to max_attempts."""
    import apprise
    from apprise.plugins.email import NotifyEmail
    from apprise.plugins.slack import NotifySlack, SlackMode

    plugin = apprise.Apprise.instantiate(url, asset=apprise.AppriseAsset(app_id="CRM lead connector"))
    if plugin is None:
        return Attempt("failed", f"not a URL apprise can send to ({urlsplit(url).scheme}://…)")
    plugin.request_rate_per_sec = 0  # the connector paces each channel itself (rate_per_second)
    msg = message(payload)
    body, body_format = msg.markdown, apprise.NotifyFormat.MARKDOWN
    if isinstance(plugin, NotifySlack):
        body = msg.slack
        if "blocks=" not in url:
            plugin.use_blocks = True  # Block Kit: a header (the title) and a mrkdwn section
        if slack_target is not None:
            if plugin.mode != SlackMode.BOT:
                return Attempt("failed", "a Slack member id needs a bot URL (slack://xoxb-…) in [notifications] slack_dm_channel")
            plugin.channels = [slack_target]
    elif isinstance(plugin, NotifyEmail):
        body, body_format = msg.text, apprise.NotifyFormat.TEXT
    with _apprise_log() as said:
        try:
            ok = bool(plugin.notify(body=body, title=msg.title, body_format=body_format))
        except Exception as exc:  # a plugin bug or an unexpected library error: retried, then dead-lettered with it
            return Attempt("retry", f"{type(exc).__name__}: {exc}")
    if ok:
        return Attempt("sent")
    reason = "; ".join(said) or "the service refused the message"
    codes = [int(c) for c in _HTTP_STATUS.findall(reason)]
    if codes and all(400 <= c < 500 and c not in (408, 429) for c in codes):
        return Attempt("failed", reason)
    return Attempt("retry", reason)


class _ThreadRecords(logging.Handler):
    """Apprise's warnings and errors logged on one thread (another sender's stay out)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.said: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.said.append(record.getMessage())


@contextmanager
def _apprise_log() -> Iterator[list[str]]:
    handler = _ThreadRecords()
    logger = logging.getLogger("apprise")
    logger.addHandler(handler)
    try:
        yield handler.said
    finally:
        logger.removeHandler(handler)

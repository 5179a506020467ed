"""Notifications: the [notifications] config and which channels hear of an event (pure: no I/O, no clock).

A notification is decided in the routing transaction that caused it, with a dedupe key that names the
event, not the run, so a re-sync, a retry or another replica deciding it again adds nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connector.core.errors import ConfigProblem
from connector.core.models import Lead, RoutingDecision, ScoreResult
from connector.engine.conditions import Condition, Predicate, check_condition, compile_condition
from connector.engine.routing.config import RoutingConfig

NotificationEvent = Literal["routed", "reassigned", "sla_breach", "waiting", "dead_letter"]
NOTIFICATION_EVENTS: tuple[str, ...] = ("routed", "reassigned", "sla_breach", "waiting", "dead_letter")


def _routed_only() -> list[NotificationEvent]:
    return ["routed"]


class NotificationChannel(BaseModel):
    """One `[[notifications.channels]]` entry: where to send which events, for which leads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    # Any apprise URL (slack://…, https://hooks.slack.com/services/…, a Teams workflow URL, mailto://…, mailtos://…,
    # discord://…, json://…): sent through apprise; a plain http(s):// URL no service claims: the generic JSON POST.
    url: str | None = None
    url_file: str | None = None  # a file holding the URL (e.g. a Slack webhook is a secret)
    secret: str | None = None  # generic webhooks: signs the JSON body, X-Connector-Signature: sha256=<hex HMAC-SHA256>
    secret_file: str | None = None
    on: list[NotificationEvent] = Field(default_factory=_routed_only)
    when: Condition | None = None  # the rules' condition syntax, over the lead and score, grade, ...
    rate_per_second: float | None = Field(default=None, gt=0)  # unset: 1/s for Slack and Teams, else unlimited

    @model_validator(mode="after")
    def _checked(self) -> NotificationChannel:
        if (self.url is None) == (self.url_file is None):
            raise ValueError("a channel needs exactly one of url, url_file")
        if self.secret is not None and self.secret_file is not None:
            raise ValueError("a channel takes secret or secret_file, not both")
        if self.when is not None:
            problems = check_condition(self.when, "when")
            if problems:
                raise ValueError("; ".join(f"{p.path}: {p.message}" for p in problems))
        return self


class NotificationsConfig(BaseModel):
    """`[notifications]`: off unless enabled; channels, when a waiting lead is announced, how long a run drains."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    channels: list[NotificationChannel] = Field(default_factory=list)
    waiting_after_minutes: int = Field(default=30, ge=1)
    drain_seconds: float = Field(default=30, ge=0, le=3600)  # sync --once sends what it queued for at most this long
    max_attempts: int = Field(default=8, ge=1, le=100)
    # "working_hours": a message about a rep's lead waits for the rep's working hours (held, then sent);
    # leads graded one of urgent_grades go at once. "off": everything goes at once.
    quiet_hours: Literal["off", "working_hours"] = "off"
    urgent_grades: list[str] = Field(default_factory=lambda: ["hot"])
    # The channel (by name) whose Slack bot URL (slack://xoxb-…) carries direct messages to reps whose `notify` or
    # `manager` is a Slack member id ("@U0123ABCD"); give it `on = []` if it should hear nothing itself.
    slack_dm_channel: str | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> NotificationsConfig:
        names = [c.name for c in self.channels]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"channel names must be unique: {', '.join(dupes)}")
        if self.slack_dm_channel is not None and self.slack_dm_channel not in names:
            raise ValueError(f"slack_dm_channel: no channel named {self.slack_dm_channel!r} in [[notifications.channels]]")
        return self


@dataclass(frozen=True)
class CompiledChannel:
    name: str
    on: frozenset[str]
    matches: Predicate
    owner: str | None = None  # a rep's own channel: only the leads routed to this rep


SLACK_MEMBER = re.compile(r"^@[UW][A-Z0-9]{2,}$")


@dataclass(frozen=True)
class RepTarget:
    """Where a rep hears of their own leads (`notify`) and where their SLA breaches escalate (`manager`, resolved)."""

    email: str
    notify: str | None = None
    manager: str | None = None


def rep_targets(routing: RoutingConfig) -> list[RepTarget]:
    """Each configured rep's notify target and manager target: the rep's own manager, else the first pool's listing
    them; a manager that is a rep's email stands for that rep's notify."""
    notify = {rep.email: rep.notify for rep in routing.reps}
    out = []
    for rep in routing.reps:
        manager = rep.manager or next((p.manager for p in routing.pools.values() if p.manager and rep.email in p.reps), None)
        out.append(RepTarget(rep.email, rep.notify, notify.get(manager) if manager in notify else manager))
    return out


def rep_channels(reps: Sequence[RepTarget]) -> list[NotificationChannel]:
    """Each rep's `notify` as a channel "rep:EMAIL" told of the leads routed or reassigned to them, and each rep's
    manager as a channel "manager:EMAIL" told of that rep's SLA breaches."""
    own = [NotificationChannel(name=f"rep:{r.email}", url=r.notify, on=["routed", "reassigned"]) for r in reps if r.notify]
    return own + [NotificationChannel(name=f"manager:{r.email}", url=r.manager, on=["sla_breach"]) for r in reps if r.manager]


def compile_channels(config: NotificationsConfig, reps: Sequence[RepTarget] = ()) -> tuple[CompiledChannel, ...]:
    """The channels with their `when` compiled, and the reps' and managers' own; none when notifications are off."""
    if not config.enabled:
        return ()
    own = [CompiledChannel(c.name, frozenset(c.on), compile_condition(None), owner=c.name.split(":", 1)[1]) for c in rep_channels(reps)]
    return (*(CompiledChannel(c.name, frozenset(c.on), compile_condition(c.when)) for c in config.channels), *own)


def check_notifications(config: NotificationsConfig, routing: RoutingConfig) -> list[ConfigProblem]:
    """Each rep's and pool's notify / manager target is a URL or a Slack member id (which needs slack_dm_channel)."""
    reps = {rep.email for rep in routing.reps}
    spots = [(f"routing.reps[{i}].notify", rep.notify, False) for i, rep in enumerate(routing.reps)]
    spots += [(f"routing.reps[{i}].manager", rep.manager, True) for i, rep in enumerate(routing.reps)]
    spots += [(f"routing.pools.{name}.manager", pool.manager, True) for name, pool in routing.pools.items()]
    problems = []
    for path, target, may_be_rep in spots:
        if target is None or (may_be_rep and target in reps):
            continue
        if SLACK_MEMBER.match(target):
            if config.slack_dm_channel is None:
                problems.append(ConfigProblem(path, "a Slack member id needs [notifications] slack_dm_channel: the channel whose "
                                                    "Slack bot URL (slack://xoxb-…) sends the direct message"))
        elif "://" not in target:
            what = "a rep's email, " if may_be_rep else ""
            hint = f"; to e-mail it, write an apprise URL: mailtos://USER:PASSWORD@SMTP-HOST?to={target}" if "@" in target else ""
            problems.append(ConfigProblem(path, f"{target!r} is not {what}a URL (mailto://…, slack://…, https://…) or a Slack "
                                                f"member id (@U0123ABCD){hint}"))
    no_notify = {rep.email for rep in routing.reps if not rep.notify}
    problems += [ConfigProblem(path, f"rep {target} has no notify to be told through")
                 for path, target, may_be_rep in spots if may_be_rep and target in no_notify]
    return problems


@dataclass(frozen=True)
class Notification:
    """One message decided: to `channel`, unique by `dedupe_key`, with the JSON body sent."""

    dedupe_key: str
    channel: str
    event: str
    lead_key: str
    payload: Mapping[str, Any]


def top_reasons(result: ScoreResult, n: int = 3) -> list[str]:
    """The score's biggest contributions, as explain prints them: "rule (+points, source)"."""
    ranked = sorted(result.contributions, key=lambda c: -abs(c.points))[:n]
    return [f"{c.rule} ({c.points:+g}, {c.source})" for c in ranked]


def decide_notifications(
    channels: Sequence[CompiledChannel], event: str, lead: Lead, result: ScoreResult, decision: RoutingDecision, *,
    now: datetime, occurrence: str, record_url: str, owner_name: str = "", sla_due_at: datetime | None = None,
    context: Mapping[str, Any] | None = None, error: str | None = None,
) -> list[Notification]:
    """The notifications one event on one lead produces: one per channel listening to `event` whose `when` matches.

    `occurrence` tells occurrences of one event on one lead apart (e.g. the reassignment number); the
    dedupe key is channel:event:lead:occurrence.
    """
    ctx = {"score": result.score, "grade": result.grade, "model": result.model, "bant": result.bant, "is_mql": result.is_mql,
           **(context or {})}
    listening = [c for c in channels if event in c.on and (c.owner is None or c.owner == decision.rep) and c.matches(lead, ctx)]
    if not listening:
        return []
    name = " ".join(p for p in (lead.first_name, lead.last_name) if p) or (lead.email or "")
    payload = {
        "event": event, "at": now.isoformat(),
        "lead": {"crm": lead.crm, "id": lead.id, "name": name, "email": lead.email, "company": lead.company_name,
                 "title": lead.title, "url": record_url},
        "owner": {"email": decision.rep, "name": owner_name},
        "score": result.score, "grade": result.grade, "reasons": top_reasons(result),
        "sla_due_at": sla_due_at.isoformat() if sla_due_at is not None else None,
    }
    if error is not None:
        payload["error"] = error  # dead_letter: why the write was given up on
    return [Notification(f"{c.name}:{event}:{lead.key}:{occurrence}", c.name, event, lead.key, payload) for c in listening]

"""Which transport a channel URL takes, its default rate, the message a rep acts on, and the notify / manager checks."""

from __future__ import annotations

from typing import Any

import pytest

from connector.config import load_settings
from connector.core.errors import ConfigError
from connector.runners.channels import default_rate_per_second, is_generic_webhook, message

SLACK_HOOK = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
TEAMS_WORKFLOW = ("https://prod-00.westus.logic.azure.com:443/workflows/abcdef0123/triggers/manual/paths/invoke"
                  "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=abc")


@pytest.mark.parametrize(("url", "generic"), [
    ("https://alerts.example.com/hooks/leads", True),
    ("http://127.0.0.1:8080/hook", True),
    (SLACK_HOOK, False),  # apprise's Slack plugin claims Slack's webhook URLs
    (TEAMS_WORKFLOW, False),  # and its Workflows plugin Teams' Power Automate URLs
    ("https://discord.com/api/webhooks/4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js", False),
    ("json://alerts.example.com/hook", False),
    ("mailto://user:pass@smtp.example.com?to=rep@example.com", False),
])
def test_a_plain_http_url_no_service_claims_is_a_generic_webhook(url: str, generic: bool) -> None:
    assert is_generic_webhook(url) is generic


@pytest.mark.parametrize(("url", "rate"), [
    (SLACK_HOOK, 1.0), ("slack://xoxb-1234-5678-abcd/#leads", 1.0), (TEAMS_WORKFLOW, 1.0), ("workflows://host/id", 1.0),
    ("@U0123ABCD", 1.0), ("https://alerts.example.com/hook", None), ("mailto://u:p@smtp.example.com", None),
    ("json://alerts.example.com/hook", None),
])
def test_default_rate_is_one_a_second_for_slack_and_teams_else_unlimited(url: str, rate: float | None) -> None:
    assert default_rate_per_second(url) == rate


PAYLOAD: dict[str, Any] = {
    "event": "routed", "at": "2026-11-24T15:00:00+00:00",
    "lead": {"crm": "salesforce", "id": "00Q1", "name": "Ann <Ops> & Co", "email": "ann@acme.test", "company": "Acme",
             "title": "CTO", "url": "https://acme.my.salesforce.com/lightning/r/Lead/00Q1/view"},
    "owner": {"email": "rep@example.com", "name": "Ria Rep"}, "score": 81.0, "grade": "hot",
    "reasons": ["a (+30, field:title)", "b (+25, event:page_view)", "c (+20, field:country)"],
    "sla_due_at": "2026-11-24T15:30:00+00:00",
}


def test_the_message_carries_what_a_rep_acts_on_in_each_form() -> None:
    msg = message(PAYLOAD)
    assert msg.title == "New lead for Ria Rep: Ann <Ops> & Co"
    assert msg.text.splitlines() == [
        "Ann <Ops> & Co — CTO, Acme", "Score 81 (hot) · owner Ria Rep", "Why:", "• a (+30, field:title)",
        "• b (+25, event:page_view)", "• c (+20, field:country)", "SLA: act by 2026-11-24 15:30 UTC",
        "Open in Salesforce: https://acme.my.salesforce.com/lightning/r/Lead/00Q1/view",
    ]
    assert msg.slack.splitlines()[0] == "*Ann &lt;Ops&gt; &amp; Co* — CTO, Acme"  # Slack mrkdwn escapes <, > and &
    assert msg.slack.endswith("<https://acme.my.salesforce.com/lightning/r/Lead/00Q1/view|Open in Salesforce>")
    assert msg.markdown.endswith("[Open in Salesforce](https://acme.my.salesforce.com/lightning/r/Lead/00Q1/view)")
    breach = message(PAYLOAD | {"event": "sla_breach"})
    assert breach.title == "SLA breached: Ann <Ops> & Co not actioned by Ria Rep"


def _load(reps: list[dict[str, Any]], pools: dict[str, Any] | None = None, **notifications: Any) -> None:
    routing: dict[str, Any] = {"reps": reps, "pools": pools or {}, "when_unavailable": "wait"}
    load_settings(None, {"routing": routing, "notifications": {"enabled": True, **notifications}})


def test_notify_and_manager_targets_are_checked_with_their_key_paths() -> None:
    with pytest.raises(ConfigError) as caught:
        _load([{"email": "a@example.com", "notify": "@U0123ABCD"},
               {"email": "b@example.com", "notify": "b-at-example", "manager": "a@example.com"},
               {"email": "c@example.com", "manager": "b@example.com"}],
              {"team": {"reps": ["a@example.com"], "manager": "boss"}})
    problems = {p.path: p.message for p in caught.value.problems}
    assert "slack_dm_channel" in problems["routing.reps[0].notify"]
    assert "'b-at-example' is not a URL" in problems["routing.reps[1].notify"]
    assert "'boss' is not a rep's email, a URL" in problems["routing.pools.team.manager"]
    assert "routing.reps[1].manager" not in problems  # a manager that is a rep with a notify
    assert set(problems) == {"routing.reps[0].notify", "routing.reps[1].notify", "routing.pools.team.manager"}
    with pytest.raises(ConfigError) as plain_email:
        _load([{"email": "a@example.com", "manager": "boss@example.com"}])
    assert "mailtos://USER:PASSWORD@SMTP-HOST?to=boss@example.com" in str(plain_email.value)
    with pytest.raises(ConfigError) as no_notify:
        _load([{"email": "a@example.com"}, {"email": "b@example.com", "manager": "a@example.com"}])
    assert [str(p) for p in no_notify.value.problems] == ["routing.reps[1].manager: rep a@example.com has no notify to be told through"]


def test_slack_dm_channel_must_name_a_channel() -> None:
    with pytest.raises(ConfigError) as caught:
        _load([{"email": "a@example.com", "notify": "@U0123ABCD"}], slack_dm_channel="slack-bot",
              channels=[{"name": "slack", "url": "slack://xoxb-1-2-3/#leads", "on": []}])
    assert "notifications" in str(caught.value) and "no channel named 'slack-bot'" in str(caught.value)
    _load([{"email": "a@example.com", "notify": "@U0123ABCD"}], slack_dm_channel="slack",
          channels=[{"name": "slack", "url": "slack://xoxb-1-2-3/#leads", "on": []}])


def test_a_slack_member_id_needs_a_bot_url_not_a_webhook() -> None:
    from connector.runners.channels import send_apprise

    attempt = send_apprise(SLACK_HOOK, PAYLOAD, slack_target="@U0123ABCD")
    assert attempt.outcome == "failed" and "needs a bot URL (slack://xoxb-…)" in (attempt.error or "")

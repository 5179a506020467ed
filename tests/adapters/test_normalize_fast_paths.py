"""Both adapters' normalize shortcuts read what their general paths read: HubSpot's v3 `...Z` datetimes in one call
(other forms as before), the latest activity stamp, absent counters uncounted; Salesforce's ISO codes standing in
for their text fields and `+0000` datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from connector.adapters.hubspot.adapter import HubSpotAdapter
from connector.adapters.hubspot.fields import parse_datetime as hubspot_datetime
from connector.adapters.salesforce.adapter import SalesforceAdapter
from connector.adapters.salesforce.fields import parse_datetime as salesforce_datetime
from connector.config import HubSpotSettings, SalesforceSettings
from connector.core.clock import FrozenClock

NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(("raw", "expected"), [
    ("2024-05-31T10:11:12.345Z", datetime(2024, 5, 31, 10, 11, 12, 345000, tzinfo=UTC)),
    ("2024-05-31T10:11:12Z", datetime(2024, 5, 31, 10, 11, 12, tzinfo=UTC)),
    ("2024-05-31T10:11:12.345z", datetime(2024, 5, 31, 10, 11, 12, 345000, tzinfo=UTC)),
    ("2024-05-31Z", datetime(2024, 5, 31, tzinfo=UTC)),  # fromisoformat refuses a date with Z: the general path reads it
    ("2024-05-31T12:11:12+02:00", datetime(2024, 5, 31, 10, 11, 12, tzinfo=UTC)),
    ("1717000000000", datetime(2024, 5, 29, 16, 26, 40, tzinfo=UTC)),
])
def test_hubspot_datetimes_come_out_utc(raw: str, expected: datetime) -> None:
    value = hubspot_datetime(raw)
    assert value == expected and value.tzinfo is UTC


@pytest.mark.parametrize("raw", ["2024-05-31T25:00:00Z", "2024-05-31T10:11:12+01:00Z", "soon"])
def test_hubspot_datetimes_that_do_not_parse_raise(raw: str) -> None:
    with pytest.raises(ValueError):
        hubspot_datetime(raw)


def test_salesforce_datetimes_keep_utc_and_convert_offsets() -> None:
    stamp = salesforce_datetime("2024-05-31T10:11:12.000+0000")
    assert stamp == datetime(2024, 5, 31, 10, 11, 12, tzinfo=UTC) and stamp is not None and stamp.tzinfo is UTC
    assert salesforce_datetime("2024-05-31T10:11:12.000-0500") == datetime(2024, 5, 31, 15, 11, 12, tzinfo=UTC)
    naive = salesforce_datetime("2024-05-31T10:11:12")
    assert naive == datetime(2024, 5, 31, 10, 11, 12, tzinfo=UTC) and naive is not None and naive.utcoffset() == timedelta(0)
    assert salesforce_datetime("2024-05-31") == datetime(2024, 5, 31, tzinfo=UTC)


def test_hubspot_latest_activity_and_counters() -> None:
    settings = HubSpotSettings(enabled=True, access_token=SecretStr("t"), base_url="http://127.0.0.1:9/")
    adapter = HubSpotAdapter(settings, clock=FrozenClock(NOW), sleep=lambda s: None)
    lead = adapter.normalize({"id": "1", "properties": {
        "hs_last_sales_activity_timestamp": "2024-05-01T00:00:00Z", "notes_last_updated": "1717000000000",
        "hs_email_last_open_date": "", "recent_conversion_date": "never", "hs_analytics_num_page_views": "12",
        "hs_email_open": None, "hs_email_click": "lots"}})
    assert lead.last_activity_at == datetime(2024, 5, 29, 16, 26, 40, tzinfo=UTC)
    assert lead.engagement == {"page_views": 12.0}
    tallies = adapter.parse_stats.tallies
    assert (tallies["last_activity_at"].seen, tallies["last_activity_at"].parsed, tallies["last_activity_at"].unparsed) == (3, 2, {"never": 1})
    assert "engagement.email_opens" not in tallies and tallies["engagement.email_clicks"].unparsed == {"lots": 1}


def test_salesforce_codes_stand_in_only_when_set() -> None:
    settings = SalesforceSettings(enabled=True, access_token=SecretStr("t"), instance_url="https://127.0.0.1:9")
    adapter = SalesforceAdapter(settings, clock=FrozenClock(NOW), sleep=lambda s: None)
    record = {"Id": "00Q1", "Country": "Deutschland", "CountryCode": "", "State": "Bayern", "StateCode": None,
              "LastModifiedDate": None, "SystemModstamp": "2024-05-31T10:11:12.000+0000"}
    lead = adapter.normalize(record)
    assert (lead.country, lead.state, lead.raw["country"], lead.raw["state"]) == ("DE", "BY", "Deutschland", "Bayern")
    assert lead.modified_at == datetime(2024, 5, 31, 10, 11, 12, tzinfo=UTC)
    coded = adapter.normalize({**record, "CountryCode": "AT", "StateCode": "9"})
    assert (coded.country, coded.state, coded.raw["country"], coded.raw["state"]) == ("AT", "9", "AT", "9")
    assert record["CountryCode"] == ""  # the record itself is left as it came

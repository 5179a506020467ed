"""What a run hands the stages: one CRM's runtime (adapter, diff rules, reps) and the compiled engine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from connector.adapters.base import CrmAdapter
from connector.core.models import Rep
from connector.engine.diff import DiffRules
from connector.engine.notifications import CompiledChannel
from connector.engine.routing import CompiledRouting
from connector.engine.scoring import CompiledScoring
from connector.pipeline.lookups import LookupCache


@dataclass(frozen=True)
class CrmRuntime:
    """Everything one CRM contributes to a run: its adapter, diff rules and the reps resolved against its owners."""

    crm: str
    adapter: CrmAdapter
    rules: DiffRules
    reps: Sequence[Rep]
    active_owner_ids: frozenset[str]
    queue_owner_ids: frozenset[str] = frozenset()  # owners that are queues (routed like no owner)
    kept_queue_ids: frozenset[str] = frozenset()  # queues [routing] keep_queue_owners keeps
    # Account and contact answers re-used across batches (key by key, or the whole table once when counting says
    # so). HubSpot allows 5 searches a second per account, so a search per batch would bound speed-to-lead
    # [crm-behaviour: HubSpot search has its own rate limit].
    account_cache: LookupCache = field(default_factory=LookupCache, compare=False)
    # The record's page in the CRM, "{id}" standing for the record id ("" when unknown): notifications link it.
    record_url: str = ""


@dataclass(frozen=True)
class EngineConfig:
    """The compiled engine, shared by every CRM."""

    scoring: CompiledScoring
    routing: CompiledRouting
    free_mail_domains: frozenset[str]
    account_matching: bool = True
    # crm -> stage / status values that mean converted ([reports] converted_stages; Salesforce's IsConverted too)
    converted_stages: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # [notifications] channels, compiled; empty when notifications are off (or a backfill without --notify)
    channels: tuple[CompiledChannel, ...] = ()
    waiting_after_minutes: int = 30  # [notifications] waiting_after_minutes: a lead waiting this long is announced once
    quiet_hours: bool = False  # [notifications] quiet_hours = "working_hours"
    urgent_grades: frozenset[str] = frozenset({"hot"})  # [notifications] urgent_grades: sent at once, quiet hours or not


"""The one Settings model: TOML file + CONNECTOR_* environment, every bad key reported with its path."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from connector.engine.routing import RoutingConfig, check_routing
from connector.engine.scoring import ScoringConfig, check_scoring
from connector.core.errors import ConfigError, ConfigProblem
from connector.core.keys import CallLimits, account_key

HUBSPOT_API_HOST = "https://api.hubapi.com"
SALESFORCE_LOGIN_URL = "https://login.salesforce.com"
DEFAULT_STORE_URL = "sqlite:///connector-state.db"

# HubSpot's default lifecycle stages in their forward order (internal values) [crm-behaviour: HubSpot lifecycle stages move forward only].
HUBSPOT_LIFECYCLE_ORDER = [
    "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
    "opportunity", "customer", "evangelist",
]
# Salesforce's default Lead Status values in their SortOrder [crm-behaviour: Salesforce lead statuses].
SALESFORCE_STATUS_ORDER = ["Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _read_secret_file(path: str | None, key: str) -> SecretStr | None:
    if not path:
        return None
    try:
        return SecretStr(Path(path).read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise ValueError(f"{key}_file {path!r} cannot be read: {exc.strerror}") from exc


class HubSpotSettings(Section):
    """`[hubspot]`: one HubSpot account (portal) reached with a private-app or OAuth access token."""

    enabled: bool = False
    access_token: SecretStr | None = None
    access_token_file: str | None = None
    base_url: str = HUBSPOT_API_HOST
    object_type: Literal["contacts", "leads"] = "contacts"
    score_property: str = "connector_lead_score"
    grade_property: str = "connector_lead_grade"
    stage_property: str | None = None  # default: lifecyclestage (contacts) / hs_pipeline_stage (leads)
    lead_status_property: str | None = "hs_lead_status"
    create_properties: bool = True
    stage_order: list[str] = Field(default_factory=lambda: list(HUBSPOT_LIFECYCLE_ORDER))
    app_id: str | None = None
    client_secret: SecretStr | None = None
    client_secret_file: str | None = None
    requests_per_10s: int = Field(default=190, ge=1, le=1000)
    search_requests_per_second: int = Field(default=5, ge=1, le=50)
    daily_limit: int = Field(default=625_000, ge=1)
    daily_budget_share: float = Field(default=0.5, gt=0, le=1)
    safety_lag_seconds: int = Field(default=300, ge=0, le=86_400)
    search_page_size: int = Field(default=200, ge=1, le=200)
    timeout_seconds: float = Field(default=30, gt=0)
    extra_properties: dict[str, str] = Field(default_factory=dict)  # alias -> property name, exposed as extra.ALIAS

    @model_validator(mode="after")
    def _secrets(self) -> HubSpotSettings:
        token = self.access_token or _read_secret_file(self.access_token_file, "access_token")
        secret = self.client_secret or _read_secret_file(self.client_secret_file, "client_secret")
        object.__setattr__(self, "access_token", token)
        object.__setattr__(self, "client_secret", secret)
        if self.enabled and token is None:
            raise ValueError("access_token (or access_token_file) is required when [hubspot] is enabled")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        return self

    @property
    def effective_stage_property(self) -> str:
        if self.stage_property:
            return self.stage_property
        return "lifecyclestage" if self.object_type == "contacts" else "hs_pipeline_stage"

    def call_limits(self) -> CallLimits:
        """The portal's burst window, its separate search limit and the daily budget
        [crm-behaviour: HubSpot rate limits: burst and daily] [crm-behaviour: HubSpot search has its own rate limit]."""
        token = self.access_token.get_secret_value() if self.access_token else ""
        return CallLimits(
            account=account_key("hubspot", self.base_url, token), daily_limit=self.daily_limit, daily_share=self.daily_budget_share,
            requests_per_window=self.requests_per_10s, window_seconds=10.0, search_per_second=self.search_requests_per_second,
        )


class SalesforceSettings(Section):
    """`[salesforce]`: one Salesforce org, reached by OAuth client credentials, JWT, password or a static token."""

    enabled: bool = False
    login_url: str = SALESFORCE_LOGIN_URL
    instance_url: str | None = None
    api_version: str = "62.0"
    client_id: str | None = None
    client_secret: SecretStr | None = None
    client_secret_file: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: str | None = None
    security_token: SecretStr | None = None
    private_key_file: str | None = None
    access_token: SecretStr | None = None
    access_token_file: str | None = None
    score_field: str = "Connector_Score__c"
    grade_field: str = "Rating"
    stage_field: str = "Status"
    status_order: list[str] = Field(default_factory=lambda: list(SALESFORCE_STATUS_ORDER))
    lead_filter: str = "IsConverted = false"
    lookback_seconds: int = Field(default=300, ge=0, le=86_400)
    call_options_client: str = "crm-lead-connector"
    daily_api_limit: int = Field(default=100_000, ge=1)  # until Sforce-Limit-Info tells the org's real allocation
    daily_budget_share: float = Field(default=0.5, gt=0, le=1)
    timeout_seconds: float = Field(default=30, gt=0)
    ca_bundle: str | None = None  # CA bundle that replaces the default trust store (the sandbox's loopback certificate)
    extra_fields: dict[str, str] = Field(default_factory=dict)  # alias -> field API name, exposed as extra.ALIAS
    # Change Data Capture over the Pub/Sub API (gRPC): `connector serve` subscribes beside its poll loop.
    cdc_enabled: bool = False
    pubsub_target: str = "api.pubsub.salesforce.com:7443"
    pubsub_tls: bool = True
    cdc_topic: str = "/data/LeadChangeEvent"
    # FetchRequest.num_requested (flow control); the server caps a stream's outstanding requests at 100.
    cdc_batch_size: int = Field(default=100, ge=1, le=100)

    @model_validator(mode="after")
    def _secrets(self) -> SalesforceSettings:
        for key in ("client_secret", "password", "access_token"):
            if getattr(self, key) is None:
                object.__setattr__(self, key, _read_secret_file(getattr(self, f"{key}_file"), key))
        if self.enabled and self.auth_mode is None:
            raise ValueError(
                "no usable auth: set access_token + instance_url, client_id + client_secret (client credentials), "
                "client_id + username + private_key_file (JWT), or username + password (+ security_token)"
            )
        return self

    @property
    def auth_mode(self) -> Literal["token", "client_credentials", "jwt", "password"] | None:
        if self.access_token is not None and self.instance_url:
            return "token"
        if self.client_id and self.username and self.private_key_file:
            return "jwt"
        if self.client_id and self.client_secret is not None and not self.username:
            return "client_credentials"
        if self.username and self.password is not None:
            return "password"
        return None

    def call_limits(self) -> CallLimits:
        """No per-second limit, only the daily allocation, learnt from Sforce-Limit-Info
        [crm-behaviour: Salesforce API allocation: rolling 24 hours]."""
        return CallLimits(
            account=account_key("salesforce", self.login_url, self.instance_url, self.client_id, self.username),
            daily_limit=self.daily_api_limit, daily_share=self.daily_budget_share,
        )


class StoreSettings(Section):
    """`[store]`: where cursors, decisions, counters, outbox and dead letters live."""

    url: str = DEFAULT_STORE_URL

    @model_validator(mode="after")
    def _url(self) -> StoreSettings:
        if not self.url.startswith(("sqlite:", "postgresql")):
            raise ValueError(f"url must be sqlite:///PATH or postgresql+psycopg://..., got {self.url.split('://')[0]}://…")
        return self


class SyncSettings(Section):
    """`[sync]`: how jobs page and batch work."""

    batch_size: int = Field(default=200, ge=1, le=2000)
    poll_interval_seconds: int = Field(default=300, ge=5)
    max_dead_letter_attempts: int = Field(default=5, ge=1)


class LoggingSettings(Section):
    """`[logging]`: level and privacy of log output."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_emails: bool = False
    as_json: bool = True  # one JSON object per log line (false: human-readable lines)


class ServiceSettings(Section):
    """`[service]`: the `connector serve` sidecar: listener, intake queue, shutdown, event-receiver auth."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65_535)
    # SIGTERM → stop intake, finish or durably release in-flight work, exit within this many seconds
    # (keep it under the orchestrator's kill timeout, e.g. Kubernetes' 30 s terminationGracePeriodSeconds).
    grace_seconds: float = Field(default=20, gt=0, le=600)
    # Accepted-but-unprocessed items held for the worker; when full, intake answers 503 + Retry-After.
    intake_queue_size: int = Field(default=1000, ge=1, le=100_000)
    # The worker gathers intake for this long before one pipeline batch; writes follow within ≤ 500 ms.
    micro_batch_ms: int = Field(default=200, ge=0, le=500)
    # Larger request bodies get 413 (HubSpot sends ≤ 100 events per request, far below 1 MiB).
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    # Shared secret of POST /events: Basic auth username (Segment webhooks destination) or X-Signature HMAC key.
    events_secret: SecretStr | None = None
    events_secret_file: str | None = None
    # Run an incremental sync per enabled CRM every [sync] poll_interval_seconds (false: webhooks / cron only).
    poll: bool = True

    @model_validator(mode="after")
    def _secrets(self) -> ServiceSettings:
        if self.events_secret is None:
            object.__setattr__(self, "events_secret", _read_secret_file(self.events_secret_file, "events_secret"))
        return self


class PrivacySettings(Section):
    """`[privacy]`: how long the connector keeps behaviour events (`connector forget` erases a person on request)."""

    # Events older than this are deleted at the start of every sync run. Keep it longer than the
    # longest scoring window / inactivity step, or old behaviour stops counting earlier than configured.
    # 0 keeps events forever.
    event_retention_days: int = Field(default=395, ge=0, le=36_500)


class ReportSettings(Section):
    """`[reports]`: what `connector report` counts as a converted lead (experiment conversion per arm)."""

    # A lead counts as converted when its stage / Lead Status is one of these when the report reads it
    # back from the CRM, or when the CRM says it was converted (Salesforce IsConverted).
    converted_stages: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "hubspot": ["salesqualifiedlead", "opportunity", "customer", "evangelist"],
            "salesforce": ["Closed - Converted"],
        }
    )
    # The significance level of the experiment verdicts.
    alpha: float = Field(default=0.05, gt=0, lt=0.5)


class Settings(BaseSettings):
    """Everything the connector is configured with. Env wins over the TOML file."""

    model_config = SettingsConfigDict(
        env_prefix="CONNECTOR_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        nested_model_default_partial_update=True,
    )

    hubspot: HubSpotSettings = Field(default_factory=HubSpotSettings)
    salesforce: SalesforceSettings = Field(default_factory=SalesforceSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs; the environment overrides it key by key.
        return (env_settings, init_settings)

    @property
    def enabled_crms(self) -> list[str]:
        return [name for name in ("hubspot", "salesforce") if self.crm(name).enabled]

    def crm(self, name: str) -> HubSpotSettings | SalesforceSettings:
        """The `[hubspot]` or `[salesforce]` section; ValueError for another name."""
        if name not in ("hubspot", "salesforce"):
            raise ValueError(f"unknown CRM {name!r}: hubspot or salesforce")
        section: HubSpotSettings | SalesforceSettings = getattr(self, name)
        return section


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif str(part).startswith(("function-", "tagged-union")):
            continue
        else:
            path += ("." if path else "") + str(part)
    return path or "(top level)"


def problems_from_validation(exc: ValidationError) -> list[ConfigProblem]:
    problems = []
    for err in exc.errors(include_url=False):
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not a setting; check spelling)"
        problems.append(ConfigProblem(_loc_to_path(tuple(err["loc"])), msg))
    return problems


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def example_config_path() -> Path:
    """The shipped, fully commented example config (the demo runs on it)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "config.example.toml", here.parent / "config.example.toml"):
        if candidate.exists():
            return candidate
    raise ConfigError([ConfigProblem("(file)", "config.example.toml is missing from this installation")])


def load_settings(path: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Load and fully check the config (file, then CONNECTOR_* env); raise ConfigError listing every problem."""
    data: dict[str, Any] = {}
    source = None
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([ConfigProblem("(file)", f"config file {source} does not exist")], source) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([ConfigProblem("(file)", f"not valid TOML: {exc}")], source) from None
    if overrides:
        data = _deep_merge(data, overrides)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(exc), source) from None
    problems = check_scoring(settings.scoring, "scoring") + check_routing(settings.routing, settings.scoring, "routing")
    if problems:
        raise ConfigError(problems, source)
    return settings

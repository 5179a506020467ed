"""The one Settings model: TOML file + CONNECTOR_* environment, every bad key reported with its path."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from connector.engine.routing import RoutingConfig, check_routing
from connector.engine.scoring import ScoringConfig, check_scoring
from connector.engine.notifications import NotificationsConfig, check_notifications
from connector.canonical.checks import canonical_value_problems
from connector.canonical.reader import Canonical
from connector.canonical.settings import CanonicalSettings, FieldSpec, check_field_specs
from connector.core.errors import ConfigError, ConfigProblem
from connector.core.keys import CallLimits, account_key
from connector.core.spelling import closest

HUBSPOT_API_HOST = "https://api.hubapi.com"
SALESFORCE_LOGIN_URL = "https://login.salesforce.com"
DEFAULT_STORE_URL = "sqlite:///connector-state.db"

# HubSpot's default lifecycle stages in their forward order (internal values) [crm-behaviour: HubSpot lifecycle stages move forward only].
HUBSPOT_LIFECYCLE_ORDER = [
    "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
    "opportunity", "customer", "evangelist",
]
# Salesforce's default Lead Status values in their SortOrder [crm-behaviour: Salesforce lead statuses].
# Where a TLS-terminating proxy or ingress usually runs: loopback and the private ranges (not the internet).
PRIVATE_NETWORKS = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
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


def _check_fields(fields: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
    """A field mapping naming an unknown lead field or a parse that does not fit it fails, naming the key under `fields`."""
    problems = check_field_specs(fields)
    if problems:
        raise ValueError("; ".join(f"{key}: {message}" for key, message in problems))
    return fields


class HubSpotSettings(Section):
    """`[hubspot]`: one HubSpot account (portal) reached with a private app's access token or an OAuth app's refresh token."""

    enabled: bool = False
    access_token: SecretStr | None = None
    access_token_file: str | None = None
    # An OAuth app, instead of access_token: its client id (with client_secret and refresh_token).
    client_id: str | None = None
    # The app installation's refresh token: access tokens are renewed with it before they expire and on a 401.
    refresh_token: SecretStr | None = None
    refresh_token_file: str | None = None
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
    # The exact target URL set in the HubSpot app (v3 signatures cover it); unset: rebuilt from the request.
    webhook_url: str | None = None
    requests_per_10s: int = Field(default=190, ge=1, le=1000)
    search_requests_per_second: int = Field(default=5, ge=1, le=50)
    daily_limit: int = Field(default=625_000, ge=1)
    daily_budget_share: float = Field(default=0.5, gt=0, le=1)
    safety_lag_seconds: int = Field(default=300, ge=0, le=86_400)
    search_page_size: int = Field(default=200, ge=1, le=200)
    timeout_seconds: float = Field(default=30, gt=0)
    extra_properties: dict[str, str] = Field(default_factory=dict)  # alias -> property name, exposed as extra.ALIAS
    # Where each lead field comes from and how it is parsed, over the standard contact properties:
    # `[hubspot.fields.budget] property = "budget_range", parse = "value_map", values = { "over_250k" = true }`.
    # parse: text | number | number_band | boolean | value_map | multi | date | datetime. BANT, seniority and
    # product_interest have no default property: unmapped means unknown. See docs/industries.md for industry.
    fields: dict[str, FieldSpec] = Field(default_factory=dict)

    @field_validator("fields")
    @classmethod
    def _fields_fit(cls, fields: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        return _check_fields(fields)

    @model_validator(mode="after")
    def _secrets(self) -> HubSpotSettings:
        token = self.access_token or _read_secret_file(self.access_token_file, "access_token")
        secret = self.client_secret or _read_secret_file(self.client_secret_file, "client_secret")
        refresh = self.refresh_token or _read_secret_file(self.refresh_token_file, "refresh_token")
        object.__setattr__(self, "access_token", token)
        object.__setattr__(self, "client_secret", secret)
        object.__setattr__(self, "refresh_token", refresh)
        if self.enabled:
            _check_hubspot_auth(token is not None, self.client_id, secret is not None, refresh is not None)
        if self.webhook_url is not None and not self.webhook_url.startswith(("http://", "https://")):
            raise ValueError(f"webhook_url must be the full URL HubSpot calls (https://…), got {self.webhook_url!r}")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        return self

    @property
    def effective_stage_property(self) -> str:
        if self.stage_property:
            return self.stage_property
        return "lifecyclestage" if self.object_type == "contacts" else "hs_pipeline_stage"

    @property
    def auth_mode(self) -> Literal["token", "oauth"]:
        """`oauth` when a refresh token is configured (an OAuth app), else `token` (a private app's access token)."""
        return "oauth" if self.refresh_token is not None else "token"

    def call_limits(self) -> CallLimits:
        """The portal's burst window, its separate search limit and the daily budget
        [crm-behaviour: HubSpot rate limits: burst and daily] [crm-behaviour: HubSpot search has its own rate limit].

        An OAuth app's account is keyed by base_url + client_id: its access tokens change every renewal."""
        if self.auth_mode == "oauth":
            account = account_key("hubspot", self.base_url, "oauth", self.client_id)
        else:
            account = account_key("hubspot", self.base_url, self.access_token.get_secret_value() if self.access_token else "")
        return CallLimits(
            account=account, daily_limit=self.daily_limit, daily_share=self.daily_budget_share,
            requests_per_window=self.requests_per_10s, window_seconds=10.0, search_per_second=self.search_requests_per_second,
        )


def _check_hubspot_auth(has_token: bool, client_id: str | None, has_secret: bool, has_refresh: bool) -> None:
    """A private app's access_token, or an OAuth app's client_id + client_secret + refresh_token: never both, never half."""
    if has_refresh and has_token:
        raise ValueError("access_token and refresh_token are both set: keep access_token (private app) or "
                         "client_id + client_secret + refresh_token (OAuth app), not both")
    missing = [key for key, ok in (("client_id", bool(client_id)), ("client_secret", has_secret),
                                   ("refresh_token", has_refresh)) if not ok]
    if has_refresh and missing:
        raise ValueError(f"an OAuth app (refresh_token) also needs {' and '.join(missing)}"
                         + (" (or client_secret_file)" if "client_secret" in missing else ""))
    if not has_token and not has_refresh:
        hint = f"; client_id is set, so the OAuth app is missing {' and '.join(missing)}" if client_id else ""
        raise ValueError("access_token (or access_token_file) is required when [hubspot] is enabled, or an OAuth app's "
                         f"client_id + client_secret + refresh_token (or refresh_token_file){hint}")


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
    activity_fields: list[str] = Field(default_factory=list)  # date/datetime Lead fields that also count as activity
    # Where each lead field comes from and how it is parsed, over the standard Lead fields:
    # `[salesforce.fields.budget] property = "Budget__c", parse = "value_map", values = { "Approved" = true }`.
    # parse: text | number | number_band | boolean | value_map | multi | date | datetime. BANT, seniority and
    # product_interest have no default field: unmapped means unknown. CountryCode / StateCode are read first
    # when the org has state and country picklists.
    fields: dict[str, FieldSpec] = Field(default_factory=dict)
    # Change Data Capture over the Pub/Sub API (gRPC): `connector serve` subscribes beside its poll loop.
    cdc_enabled: bool = False
    pubsub_target: str = "api.pubsub.salesforce.com:7443"
    pubsub_tls: bool = True
    cdc_topic: str = "/data/LeadChangeEvent"
    # FetchRequest.num_requested (flow control); the server caps a stream's outstanding requests at 100.
    cdc_batch_size: int = Field(default=100, ge=1, le=100)

    @field_validator("fields")
    @classmethod
    def _fields_fit(cls, fields: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        return _check_fields(fields)

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


PersonField = Literal["owner", "stage", "grade"]


def _every_person_field() -> list[PersonField]:
    return ["owner", "stage", "grade"]


class SyncSettings(Section):
    """`[sync]`: how jobs page and batch work."""

    batch_size: int = Field(default=200, ge=1, le=2000)
    poll_interval_seconds: int = Field(default=300, ge=5)
    max_dead_letter_attempts: int = Field(default=5, ge=1)
    # A value a person set in the CRM after the connector's last write is kept for these fields
    # ("stage" covers HubSpot's lifecycle stage / lead status and Salesforce's Status). The score is always ours.
    person_wins: list[PersonField] = Field(default_factory=_every_person_field)
    # Pages read ahead by a reader thread while the current page is scored and routed (sync and backfill);
    # 0 reads each page only when the previous one is done. Network latency then overlaps the work.
    read_ahead_pages: int = Field(default=2, ge=0, le=8)
    # Write calls (batches of 100 HubSpot / 200 Salesforce records) sent at once by writer threads, all
    # paced by the one shared rate limiter; 0 writes each page's batches in turn before the next page.
    writes_in_flight: int = Field(default=3, ge=0, le=16)


class LoggingSettings(Section):
    """`[logging]`: level and privacy of log output."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_emails: bool = False
    as_json: bool | None = None  # one JSON object per log line (false: text lines; unset: text on a terminal, else JSON)


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
    # Peers (CIDRs) whose X-Forwarded-Proto / -Host and Forwarded headers are believed (the webhook URL check).
    trusted_proxies: list[str] = Field(default_factory=lambda: list(PRIVATE_NETWORKS))
    # Webhook / event work the CRM keeps failing (5xx, timeout, 429) is retried with backoff, using no
    # attempts, until it is this old; then it becomes a dead letter saying so.
    intake_max_age_hours: float = Field(default=24, gt=0, le=24 * 365)

    @model_validator(mode="after")
    def _secrets(self) -> ServiceSettings:
        if self.events_secret is None:
            object.__setattr__(self, "events_secret", _read_secret_file(self.events_secret_file, "events_secret"))
        for network in self.trusted_proxies:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {network!r} is not an IP address or CIDR network") from None
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
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    canonical: CanonicalSettings = Field(default_factory=CanonicalSettings)

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


def _model_in(annotation: Any) -> Any:
    """The type a key path steps into: a model itself, a dict's value, a list's item, a union's model member."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = get_args(annotation)
    if get_origin(annotation) is dict and len(args) == 2:
        return _model_in(args[1])
    for arg in args:
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _keys_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys the section at `loc` (a pydantic error location under Settings) takes; [] when unknown."""
    current: Any = Settings
    for part in loc:
        fields = {field.alias or name: field for name, field in current.model_fields.items()}
        if isinstance(part, str) and part in fields:
            current = _model_in(fields[part].annotation)
            if current is None:
                return []
        # else: a list index, a dict key (a model or pool name) or a validator's tag; the type is already stepped into
    return [field.alias or name for name, field in current.model_fields.items()]


def _unknown_key(loc: tuple[Any, ...]) -> str:
    keys = _keys_at(loc[:-1])
    near = closest(str(loc[-1]), keys) if keys else None
    if near is None:
        return "unknown key (not a setting; check spelling, or see docs/configuration.md)"
    return f"unknown key; did you mean {near!r}?"


def problems_from_validation(exc: ValidationError) -> list[ConfigProblem]:
    problems = []
    for err in exc.errors(include_url=False):
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = _unknown_key(tuple(err["loc"]))
        problems.append(ConfigProblem(_loc_to_path(tuple(err["loc"])), msg))
    return problems


def _engine_problems(data: dict[str, Any], broken: set[str]) -> list[ConfigProblem]:
    """`[scoring]` and `[routing]` checked on their own when another section failed its shape, so one run lists all.

    The file's values with the CONNECTOR_* environment over them, as Settings merges them; a section whose
    shape failed is not checked (pydantic listed its problems), and routing needs a valid scoring.
    """
    merged = _deep_merge(data, EnvSettingsSource(Settings)())
    if "scoring" in broken:
        return []
    try:
        scoring = ScoringConfig.model_validate(merged.get("scoring", {}))
    except ValidationError:
        return []
    problems = check_scoring(scoring, "scoring")
    if "routing" in broken:
        return problems
    try:
        routing = RoutingConfig.model_validate(merged.get("routing", {}))
    except ValidationError:
        return problems
    return problems + check_routing(routing, scoring, "routing")


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
        broken = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
        raise ConfigError(problems_from_validation(exc) + _engine_problems(data, broken), source) from None
    problems = check_scoring(settings.scoring, "scoring") + check_routing(settings.routing, settings.scoring, "routing")
    problems += check_notifications(settings.notifications, settings.routing)
    problems += _canonical_problems(settings)
    if problems:
        raise ConfigError(problems, source)
    return settings


def _canonical_problems(settings: Settings) -> list[ConfigProblem]:
    """Rule values leads can never hold once canonical (`country in ["USA"]`: leads hold "US"), with the value to write."""
    mappings = [*settings.hubspot.fields.items(), *settings.salesforce.fields.items()]
    sections = {"scoring": settings.scoring, "routing": settings.routing, "notifications": settings.notifications}
    found = canonical_value_problems(sections, Canonical(settings.canonical), mappings)
    return [ConfigProblem(path, message) for path, message in found]

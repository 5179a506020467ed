"""Lead routing (pure): the `[routing]` config, its checks, compilation, routing state and `route_lead`.

Where each part lives: config (the pydantic schema), checks, compile (rules, pools, places, day
scopes), reps (owner resolution; capacity and skill rules), availability (schedules), snapshot (the
batch's view of the reps), state (counters with undo), plan and strategies (picking a rep), route
(`route_lead`), waiting (why and until when), sla (deadlines and reassignment), experiments.
"""

from __future__ import annotations

from connector.core.keys import CONVERTED_SCOPE, DAY_PREFIX, OPEN_SCOPE, ROUTED_SCOPE, RR_PREFIX, VT_KEY
from connector.engine.routing.checks import check_routing
from connector.engine.routing.compile import (
    CompiledExperiment,
    CompiledPool,
    CompiledRouting,
    CompiledRule,
    Place,
    compile_routing,
    day_scope,
    next_day_start,
    place_of,
    required_scopes,
)
from connector.engine.routing.config import (
    MAX_WEIGHT,
    ROUTING_FIELD_KINDS,
    SKILLS,
    STRATEGIES,
    TURN,
    ExperimentConfig,
    OutOfOfficeConfig,
    PoolConfig,
    RegionConfig,
    RepConfig,
    RoutingConfig,
    RuleConfig,
    SlaConfig,
    TerritoryConfig,
)
from connector.engine.routing.plan import CONVERSION_FACTOR_BOUNDS
from connector.engine.routing.reps import build_reps, kept_queues
from connector.engine.routing.route import route_lead
from connector.engine.routing.sla import LeadRoutingView, SlaStatus, SlaVerdict, reassign_lead, sla_check, sla_deadline
from connector.engine.routing.snapshot import AvailabilitySnapshot, RoutingContext, availability_snapshot
from connector.engine.routing.state import (
    NO_CHANGE,
    CounterOp,
    RoutingState,
    StateChange,
    apply_change,
    release_change,
    state_from_counters,
)
from connector.engine.routing.strategies import conversion_rates
from connector.engine.routing.waiting import wait_sentence, wait_until

__all__ = [
    "CONVERSION_FACTOR_BOUNDS", "CONVERTED_SCOPE", "DAY_PREFIX", "MAX_WEIGHT", "NO_CHANGE", "OPEN_SCOPE", "ROUTED_SCOPE",
    "ROUTING_FIELD_KINDS", "RR_PREFIX", "SKILLS", "STRATEGIES", "TURN", "VT_KEY",
    "AvailabilitySnapshot", "CompiledExperiment", "CompiledPool", "CompiledRouting", "CompiledRule", "CounterOp",
    "ExperimentConfig", "LeadRoutingView", "OutOfOfficeConfig", "Place", "PoolConfig", "RegionConfig", "RepConfig",
    "RoutingConfig", "RoutingContext", "RoutingState", "RuleConfig", "SlaConfig", "SlaStatus", "SlaVerdict", "StateChange",
    "TerritoryConfig",
    "apply_change", "availability_snapshot", "build_reps", "kept_queues", "check_routing", "compile_routing", "conversion_rates", "day_scope",
    "next_day_start", "place_of", "reassign_lead", "release_change", "required_scopes", "route_lead", "sla_check", "sla_deadline",
    "state_from_counters", "wait_sentence", "wait_until",
]

"""Conditions over lead fields (and context such as score or grade), validated once and compiled to predicates or source."""

from __future__ import annotations

from connector.engine.conditions.check import check_condition
from connector.engine.conditions.compile import compile_condition
from connector.engine.conditions.model import (
    CONTEXT_FIELD_KINDS,
    OPS_BY_KIND,
    Condition,
    Leaf,
    Op,
    Predicate,
    condition_fields,
    condition_leaves,
    describe,
    field_kind,
)
from connector.engine.conditions.ops import field_test
from connector.engine.conditions.source import condition_source

__all__ = [
    "CONTEXT_FIELD_KINDS",
    "OPS_BY_KIND",
    "Condition",
    "Leaf",
    "Op",
    "Predicate",
    "check_condition",
    "compile_condition",
    "condition_fields",
    "condition_leaves",
    "condition_source",
    "describe",
    "field_kind",
    "field_test",
]

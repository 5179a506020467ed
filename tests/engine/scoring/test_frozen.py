"""frozen_builder builds what the dataclass constructor builds."""

from __future__ import annotations

from connector.core.models import Candidate, Contribution, ScoreResult
from connector.engine.scoring import ScoreOutcome, frozen_builder


def test_frozen_builder_builds_what_the_constructor_builds() -> None:
    for cls, args in (
        (Contribution, ("m", "r", 1.5, "field:x", 0.25)),
        (ScoreResult, ("m", 3.0, "hot", (), True, "lead", "NEW", "warm", "Hot")),
        (Candidate, ("a@x", True, "chosen")),
        (ScoreOutcome, (ScoreResult("m", 1.0, "cold"), {}, True)),
    ):
        built, constructed = frozen_builder(cls)(*args), cls(*args)
        assert built == constructed and type(built) is cls
        assert repr(built) == repr(constructed)

"""Fast positional constructors for the frozen slotted values the engine makes per lead."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

from connector.core.models import Contribution

_T = TypeVar("_T")
_MEMBER = type(vars(Contribution)["model"])  # the slot descriptor type (member_descriptor)


def frozen_builder(cls: type[_T]) -> Callable[..., _T]:
    """A positional constructor for a frozen slots dataclass that skips its `__init__`.

    A frozen dataclass's `__init__` sets every field through `object.__setattr__`; setting the slots
    through their descriptors builds the same object in about half the time, which matters for the
    values the engine makes per lead (contributions, results, decisions). Classes with a
    `__post_init__` or without slots get their own constructor.
    """
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    if "__post_init__" in vars(cls) or not all(isinstance(vars(cls).get(n), _MEMBER) for n in names):
        return cls
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    body = "".join(f"    _s{i}(o, {n})\n" for i, n in enumerate(names))
    ns.update({f"_s{i}": vars(cls)[n].__set__ for i, n in enumerate(names)})
    exec(f"def build({', '.join(names)}):\n    o = _new(_cls)\n{body}    return o\n", ns)  # noqa: S102 - generated from field names only
    built: Callable[..., _T] = ns["build"]
    return built

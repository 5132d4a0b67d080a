"""Typed builders of pyiceberg row filters.

pyiceberg's predicates are pydantic models whose hand-written constructors type
checkers do not see; these functions are the one typed door to them.

>>> str(run_rows("night-1"))
"EqualTo(term=Reference(name='run_id'), literal=literal('night-1'))"
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pyiceberg import expressions as ex
from pyiceberg.expressions import BooleanExpression

_EQUAL_TO: Any = ex.EqualTo
_STARTS_WITH: Any = ex.StartsWith
_IN: Any = ex.In
_AND: Any = ex.And
_OR: Any = ex.Or
_NOT: Any = ex.Not

ALL_ROWS: BooleanExpression = ex.AlwaysTrue()


def equal(column: str, value: str) -> BooleanExpression:
    """``column = value``."""
    predicate: BooleanExpression = _EQUAL_TO(column, value)
    return predicate


def starts_with(column: str, prefix: str) -> BooleanExpression:
    """``column`` starts with ``prefix`` (prunes files by their min/max bounds)."""
    predicate: BooleanExpression = _STARTS_WITH(column, prefix)
    return predicate


def is_in(column: str, values: Iterable[str]) -> BooleanExpression:
    """``column IN values``."""
    predicate: BooleanExpression = _IN(column, tuple(sorted(values)))
    return predicate


def all_of(first: BooleanExpression, *rest: BooleanExpression) -> BooleanExpression:
    """Conjunction."""
    result: BooleanExpression = _AND(first, *rest) if rest else first
    return result


def any_of(first: BooleanExpression, *rest: BooleanExpression) -> BooleanExpression:
    """Disjunction."""
    result: BooleanExpression = _OR(first, *rest) if rest else first
    return result


def negate(expression: BooleanExpression) -> BooleanExpression:
    """Negation."""
    result: BooleanExpression = _NOT(expression)
    return result


def run_rows(run_id: str) -> BooleanExpression:
    """The rows of one run."""
    return equal("run_id", run_id)

"""The one check of every setting: each settings class declares a table of constraints, checked here.

As scikit-learn's ``_parameter_constraints``: a class (``Recipe``, ``Runtime``, ``Split``,
``classifiers.Tuning``, ``AugmentedViews``) maps each setting to the values it accepts, and
``check_settings`` refuses any other with one message shape, whether the value came from a
config file, ``--set`` or a keyword of the Python API: ``image_size = 0 must be at least 1
(e.g. 224)``, ``image_size = 'big' must be a whole number at least 1 (e.g. 224)``. The
config prefixes its section (``features.image_size = 0 ...``), nothing more.

A constraint is an ``Interval``, ``Options``, ``Pattern``, a type (``bool``), ``None`` (the
value None), or a function ``check(name, value)`` that raises ``SettingError`` itself (a
list of preprocessing steps, a table of grids); ``Rule`` adds a hint for the message.

Imports nothing but the standard library and ``features.errors``/``features.names``: a config is
checked without torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from types import FunctionType

from .errors import SettingError
from .names import choices_hint, did_you_mean

__all__ = ["Interval", "Options", "Pattern", "Rule", "check_settings", "check_fields", "choice_error"]


@dataclass(frozen=True)
class Interval:
    """A whole number (``int``) or a number (``float``: ints count) at least ``low`` (more than,
    with ``open_low``) and, given ``high``, below it (at most, with ``closed_high``)."""

    kind: type
    low: float
    high: float | None = None
    open_low: bool = False
    closed_high: bool = False

    def _is_kind(self, value) -> bool:
        return isinstance(value, (int, float) if self.kind is float else int) and not isinstance(value, bool)

    def accepts(self, value) -> bool:
        above = self._is_kind(value) and (value > self.low if self.open_low else value >= self.low)
        return above and (self.high is None or (value <= self.high if self.closed_high else value < self.high))

    def describe(self, value) -> str:
        """The interval in words; with the kind of number (``a whole number ...``) when ``value`` is not one."""
        kind = "" if self._is_kind(value) else "a whole number " if self.kind is int else "a number "
        low = f"{'more than' if self.open_low else 'at least'} {self.low:g}"
        if self.high is None:
            return kind + low
        ends = "" if self.open_low and not self.closed_high else (
            f" ({low}, {'at most' if self.closed_high else 'less than'} {self.high:g})")
        return f"{kind}between {self.low:g} and {self.high:g}{ends}"


@dataclass(frozen=True)
class Options:
    """One of ``values``; ``described`` says what they mean in a message (``-1 (all cores)``)."""

    values: tuple
    described: str = ""

    def accepts(self, value) -> bool:
        return not isinstance(value, bool) and value in self.values

    def describe(self, value) -> str:
        return self.described or " or ".join(map(_shown, self.values))


@dataclass(frozen=True)
class Pattern:
    """A string matching ``regex`` whole; ``described`` lists the forms (``cpu, cuda, cuda:N``)."""

    regex: str
    described: str

    def accepts(self, value) -> bool:
        return isinstance(value, str) and re.fullmatch(self.regex, value) is not None

    def describe(self, value) -> str:
        return self.described


_TYPES = {bool: "true or false", str: "a string", dict: "a table", list: "a list"}


class Rule:
    """The constraints of one setting (any one of them accepts a value) and a hint for the message."""

    def __init__(self, *accepted, hint: str = ""):
        self.accepted, self.hint = accepted, hint


def _shown(value) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def _accepts(constraint, value) -> bool:
    if constraint is None:
        return value is None
    if isinstance(constraint, type):
        return isinstance(value, constraint) and (constraint is not int or not isinstance(value, bool))
    return constraint.accepts(value)


def _described(constraint, value) -> str:
    if constraint is None:
        return ""  # Python's "not set", which a config cannot write: not offered
    if isinstance(constraint, type):
        return _TYPES.get(constraint, constraint.__name__)
    return constraint.describe(value)


def choice_error(name: str, value, valid) -> SettingError:
    """``name = 'x' is not valid (did you mean ...?); valid choices: a, b``: the message of every refused choice."""
    valid = [choice for choice in valid if choice != ""]
    return SettingError(f"{name} = {value!r} is not valid{did_you_mean(value, valid)}; valid choices: "
                        f"{choices_hint(valid)}")


def check_settings(owner, values: dict) -> None:
    """Raise ``SettingError`` for the first of ``values`` (setting -> value) that ``owner``'s
    ``constraints`` (setting -> ``Rule``, or one constraint) refuse; settings without a rule
    pass.

    The message names the setting, the value and what it may be, as ``name = value must be
    ...``; a rule that is only ``Options`` lists the choices and the closest ones.
    """
    for name, value in values.items():
        rule = owner.constraints.get(name)
        if rule is None:
            continue
        rule = rule if isinstance(rule, Rule) else Rule(rule)
        checks = [constraint for constraint in rule.accepted if isinstance(constraint, FunctionType)]
        plain = [constraint for constraint in rule.accepted if not isinstance(constraint, FunctionType)]
        if plain and not any(_accepts(constraint, value) for constraint in plain):
            if len(plain) == 1 and isinstance(plain[0], Options) and not plain[0].described:
                raise choice_error(name, value, plain[0].values)
            described = " or ".join(filter(None, (_described(constraint, value) for constraint in plain)))
            raise SettingError(f"{name} = {value!r} must be {described}{f' ({rule.hint})' if rule.hint else ''}")
        for check in checks:
            check(name, value)


def check_fields(instance, *besides: str) -> None:
    """``check_settings`` on every field of dataclass ``instance`` but ``besides``: its ``__post_init__``."""
    check_settings(type(instance), {item.name: getattr(instance, item.name) for item in fields(instance)
                                    if item.name not in besides})

"""Rule matchers compiled to Python: one function per rule for its ``from`` and ``to`` parts.

Interpreted, a rule walks entries, then fields, then patterns, a Python call
at each level, for every candidate rule of every request. Compiled, it is one
function whose body is a single boolean expression, with its patterns bound
as constants — several times cheaper, and the same semantics as
:class:`~authz.policy.matchers.StringMatcher` (every pattern kind maps to one
expression below).

No value from a policy ever enters the generated source: patterns live in the
function's namespace under generated names (``_k0``, ``_k1``…), so a policy
cannot inject code.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Sequence
from typing import Any

from authz.policy.matchers import StringMatcher

__all__ = [
    "FromMatcher",
    "RuleMatcher",
    "ToMatcher",
    "compile_from",
    "compile_rule",
    "compile_to",
]

#: (who, ) -> whether a ``from`` part matches; ``who`` is a rules.Who tuple.
FromMatcher = Callable[[Any], bool]
#: (method, path, host) -> whether a ``to`` part matches.
ToMatcher = Callable[[str, str, str], bool]
#: (who, method, path, host) -> whether both parts match.
RuleMatcher = Callable[[Any, str, str, str], bool]

_ROLES = 3  # the slot of Who that holds a tuple of roles
_AUTHENTICATED = 4


class _Namespace:
    """Constants of one generated function, named in order of appearance."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        name = f"_k{len(self.values)}"
        self.values[name] = value
        return name


Sources = Sequence[tuple[tuple[tuple[int, bool, StringMatcher], ...], bool | None]]
Operations = Sequence[dict[str, StringMatcher]]


def compile_rule(sources: Sources, operations: Operations) -> RuleMatcher:
    """A function of (who, method, path, host): the ``from`` and the ``to`` part match."""
    names = _Namespace()
    body = f"({_from(names, sources)}) and ({_to(names, operations)})"
    return _function(names, "who, method, path, host", body)


def compile_from(sources: Sources) -> FromMatcher:
    """A function of ``who`` true when one ``from`` entry matches (no entries: always)."""
    names = _Namespace()
    return _function(names, "who", _from(names, sources))


def compile_to(operations: Operations) -> ToMatcher:
    """A function of (method, path, host) true when one ``to`` entry matches."""
    names = _Namespace()
    return _function(names, "method, path, host", _to(names, operations))


def _from(names: _Namespace, sources: Sources) -> str:
    entries = []
    for checks, authenticated in sources:
        tests = [_check(names, slot, negated, matcher) for slot, negated, matcher in checks]
        if authenticated is not None:
            tests.append(f"who[{_AUTHENTICATED}] is {authenticated}")
        entries.append(_all(tests))
    return _any(entries) if sources else "True"


def _to(names: _Namespace, operations: Operations) -> str:
    variables = {"methods": "method", "paths": "path", "hosts": "host"}
    entries = []
    for fields in operations:
        tests = []
        for field, matcher in fields.items():
            negated = field.startswith("not")
            variable = variables[field[3:].lower() if negated else field]
            tests.append(_negate(_matches(names, variable, matcher), negated))
        entries.append(_all(tests))
    return _any(entries) if operations else "True"


def _check(names: _Namespace, slot: int, negated: bool, matcher: StringMatcher) -> str:
    if slot != _ROLES:
        return _negate(_matches(names, f"who[{slot}]", matcher), negated)
    if _exact_only(matcher):
        hit = f"not {names.bind(matcher.exact)}.isdisjoint(who[{_ROLES}])"
    else:
        hit = f"any({_matches(names, 'role', matcher)} for role in who[{_ROLES}])"
    return _negate(hit, negated)


def _matches(names: _Namespace, value: str, matcher: StringMatcher) -> str:
    """An expression true when ``value`` matches one of the matcher's patterns."""
    tests = []
    if len(matcher.exact) == 1:
        tests.append(f"{value} == {names.bind(next(iter(matcher.exact)))}")
    elif matcher.exact:
        tests.append(f"{value} in {names.bind(matcher.exact)}")
    if matcher.present:
        tests.append(f'{value} != ""')
    if matcher.prefixes:
        tests.append(f"{value}.startswith({names.bind(matcher.prefixes)})")
    if matcher.suffixes:
        tests.append(f"{value}.endswith({names.bind(matcher.suffixes)})")
    for template in matcher.templates:
        tests.append(f"{names.bind(template.match)}({value}) is not None")
    return _any(tests)


def _exact_only(matcher: StringMatcher) -> bool:
    return not (matcher.present or matcher.prefixes or matcher.suffixes or matcher.templates)


def _negate(expression: str, negated: bool) -> str:
    return f"not ({expression})" if negated else expression


def _all(tests: list[str]) -> str:
    return " and ".join(f"({test})" for test in tests) if tests else "True"


def _any(tests: list[str]) -> str:
    return " or ".join(f"({test})" for test in tests) if tests else "False"


def _function(names: _Namespace, parameters: str, body: str) -> Callable[..., bool]:
    # Rules of the same shape (say, one per tenant) share one code object and
    # differ only in their constants: fewer objects for a request to touch.
    return types.FunctionType(_code(parameters, body), dict(names.values), "match")


@functools.lru_cache(maxsize=4096)
def _code(parameters: str, body: str) -> types.CodeType:
    """The code object of ``def match(parameters): return body``."""
    source = f"def match({parameters}):\n    return {body}\n"
    module = compile(source, "<rule matcher>", "exec")
    # The source is built from generated names and fixed operators only (see the
    # module docstring); every policy value is a constant bound at call time.
    code: types.CodeType = next(c for c in module.co_consts if isinstance(c, types.CodeType))
    return code

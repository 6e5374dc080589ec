"""CEL for ``when`` conditions: the one module that talks to the CEL engine.

The engine is cel-expr-python (Google's cel-cpp): on the cel-spec conformance
suite it passes 99.8% where cel-python passes 70.6%, and it evaluates a
12-rule authorization workload in ~0.10 ms against ~6.3 ms. Keeping it behind
this module means the rest of the service never sees its types.

Variables are declared under their dotted names (``request.auth.claims``), so
the type checker rejects unknown variables and fields at load time, and each
expression records which variables it reads: a request converts only those.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel

__all__ = ["VARIABLES", "CelCompileError", "Condition", "compile_condition"]

_T = cel.Type

#: Every variable a ``when`` may read, with its CEL type (spec §4.3).
VARIABLES: dict[str, Any] = {
    "request.method": _T.STRING,
    "request.path": _T.STRING,
    "request.raw_path": _T.STRING,
    "request.query": _T.Map(_T.STRING, _T.STRING),
    "request.host": _T.STRING,
    "request.scheme": _T.STRING,
    "request.protocol": _T.STRING,
    "request.id": _T.STRING,
    "request.headers": _T.Map(_T.STRING, _T.STRING),
    "request.time": _T.TIMESTAMP,
    "request.auth.claims": _T.Map(_T.STRING, _T.DYN),
    "request.auth.principal": _T.STRING,
    "request.auth.audiences": _T.List(_T.STRING),
    "request.auth.roles": _T.List(_T.STRING),
    "request.auth.tenant": _T.STRING,
    "source.principal": _T.STRING,
    "source.namespace": _T.STRING,
    "source.service_account": _T.STRING,
    "source.address": _T.STRING,
    "source.port": _T.INT,
    "destination.address": _T.STRING,
    "destination.port": _T.INT,
    "destination.principal": _T.STRING,
    "tenant": _T.STRING,
    "context": _T.Map(_T.STRING, _T.STRING),
    "now": _T.TIMESTAMP,
}

_ENV = cel.NewEnv(variables=VARIABLES)
_BOOL = _T.BOOL
_DYN = _T.DYN
_ERROR = _T.ERROR

# Longest names first, so `request.auth.claims.x` resolves to `request.auth.claims`.
_NAMES = sorted(VARIABLES, key=len, reverse=True)
_STRING_LITERAL = re.compile(
    r"""[rRbB]{0,2}('''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")"""
)
_REFERENCE = re.compile(r"(?<![\w.])[A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)*")
_CEL_POSITION = re.compile(r"<input>:(\d+):(\d+): ")


class CelCompileError(ValueError):
    """A ``when`` that does not parse, type-check, or yield a bool."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled ``when``: its program and the variables it reads."""

    source: str
    program: Any
    variables: tuple[str, ...]

    def evaluate(self, data: dict[str, Any]) -> bool | str:
        """The boolean result, or an error message (runtime errors fail closed upstream)."""
        try:
            result = self.program.eval(data=data)
        except Exception as exc:  # the engine's own failures are runtime errors too
            return f"evaluation failed: {exc}"
        value = result.value()
        if value is True or value is False:  # cheaper than comparing result.type()
            return bool(value)
        kind = result.type()
        if kind == _ERROR:
            return str(value)
        return f"expected a bool, got {kind.name().lower()}"


@functools.lru_cache(maxsize=4096)
def compile_condition(source: str) -> Condition:
    """Parse, type-check and warm ``source``; raises :class:`CelCompileError`.

    Identical sources share one program (bundles repeat conditions across tenants).
    """
    try:
        program = _ENV.compile(source)
    except Exception as exc:
        raise _compile_error(str(exc)) from None
    if program.return_type() not in (_BOOL, _DYN):
        raise CelCompileError(
            f"'when' must be a bool expression, this one is {program.return_type().name().lower()}"
        )
    condition = Condition(source, program, referenced_variables(source))
    # The first evaluation of a program costs ~100x a later one (lazy set-up in
    # the engine); pay it at load, not on the first request. Errors are expected.
    condition.evaluate({})
    return condition


def referenced_variables(source: str) -> tuple[str, ...]:
    """The declared variables that ``source`` may read (a safe superset)."""
    code = _STRING_LITERAL.sub('""', source)
    found: set[str] = set()
    for match in _REFERENCE.finditer(code):
        chain = re.sub(r"\s+", "", match.group(0))
        for name in _NAMES:
            if chain == name or chain.startswith(name + "."):
                found.add(name)
                break
    return tuple(sorted(found))


def _compile_error(text: str) -> CelCompileError:
    # cel-cpp reports "ERROR: <input>:L:C: message\n | source\n | ..^ [CODE]".
    first = text.split("\n", 1)[0]
    first = first.removeprefix("INVALID_ARGUMENT: ").removeprefix("ERROR: ")
    match = _CEL_POSITION.search(first)
    if match:
        line, column = int(match.group(1)), int(match.group(2))
        return CelCompileError(first[match.end() :], line, column)
    return CelCompileError(first)

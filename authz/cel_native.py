"""Simple ``when`` conditions evaluated in Python, exactly as CEL would.

Under load, one call into the CEL engine costs 20-50 µs on this kind of machine
(a few µs in a tight loop): its code is large and gRPC evicts it from the CPU
caches between calls. Most conditions are simple — ``request.auth.tenant ==
tenant``, ``"vendor:staff" in request.auth.roles`` — and for those a Python
closure gives the same answer in about a microsecond.

Only a small subset is taken, read from the type-checked tree, where Python and
CEL cannot disagree: string constants and variables declared ``string``; ``==``
and ``!=`` between two strings; ``in`` of a string in a variable declared
``list(string)``; ``startsWith``, ``endsWith`` and ``contains`` on strings;
``&&``, ``||`` and ``!`` over those; ``true`` and ``false``. None of these can
fail when every variable they read holds a value of its declared type, so CEL's
error rules never come into play. Each call checks exactly that first; when a
variable is missing or of another type, the closure answers None and the caller
asks CEL, which then reports the error as it always does. Anything else — claims,
maps, numbers, macros, other functions — is never taken: :func:`native_condition`
returns None and the condition stays with CEL.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from operator import itemgetter
from typing import Any

from authz import cel_tree as tree

__all__ = ["Native", "native_condition"]

#: A native condition: its boolean result, or None when CEL must decide.
Native = Callable[[Mapping[str, Any]], bool | None]
_Node = Callable[[Mapping[str, Any]], Any]
_STRING, _BOOL, _LIST = "string", "bool", "list(string)"
_COMPARISONS = {"_==_": True, "_!=_": False}
_STRING_METHODS = {
    "startsWith": str.startswith,
    "endsWith": str.endswith,
    "contains": str.__contains__,
}


class _Unsupported(Exception):
    """Outside the subset: the condition stays with CEL."""


def native_condition(
    serialized: bytes, strings: Collection[str], string_lists: Collection[str]
) -> Native | None:
    """A Python closure for the checked program ``serialized``, or None when it is not
    in the subset. ``strings`` and ``string_lists``: the variables declared ``string``
    and ``list(string)``."""
    try:
        checked = tree.checked_tree(serialized)
        compiler = _Compiler(tree.references(checked), strings, string_lists)
        node, kind = compiler.compile(tree.field(checked, 4))
    except (_Unsupported, ValueError, UnicodeDecodeError):
        return None
    if kind != _BOOL:
        return None
    needed_strings = tuple(sorted(compiler.used_strings))
    needed_lists = tuple(sorted(compiler.used_lists))

    def evaluate(data: Mapping[str, Any]) -> bool | None:
        for name in needed_strings:
            if type(data.get(name)) is not str:
                return None
        for name in needed_lists:
            values = data.get(name)
            if type(values) is not list or any(type(value) is not str for value in values):
                return None
        result: bool = node(data)
        return result

    return evaluate


class _Compiler:
    """Turns a checked expression into closures, each with its CEL type."""

    def __init__(
        self, resolved: dict[int, str], strings: Collection[str], string_lists: Collection[str]
    ) -> None:
        self.resolved = resolved
        self.strings = frozenset(strings)
        self.string_lists = frozenset(string_lists)
        self.used_strings: set[str] = set()
        self.used_lists: set[str] = set()

    def compile(self, expr: bytes) -> tuple[_Node, str]:
        """``expr`` as a closure and its type; raises :class:`_Unsupported`."""
        name = self.resolved.get(tree.expression_id(expr), "")
        if name in self.strings:
            self.used_strings.add(name)
            return itemgetter(name), _STRING
        if name in self.string_lists:
            self.used_lists.add(name)
            return itemgetter(name), _LIST
        kind, body = tree.kind(expr)
        if kind == tree.CONST:
            return self.constant(body)
        if kind == tree.CALL:
            return self.call(body)
        raise _Unsupported

    def constant(self, body: tree.Message) -> tuple[_Node, str]:
        if tree.STRING_VALUE in body:
            value = tree.text(tree.field(body, tree.STRING_VALUE))
            return (lambda data: value), _STRING
        if set(body) == {tree.BOOL_VALUE}:
            (flag,) = body[tree.BOOL_VALUE]
            truth = bool(flag)
            return (lambda data: truth), _BOOL
        raise _Unsupported

    def call(self, body: tree.Message) -> tuple[_Node, str]:
        function = tree.text(tree.field(body, 2))
        args = [self.compile(tree.as_bytes(arg)) for arg in body.get(3, [])]
        if 1 in body:  # a receiver call: target.function(args)
            target = self.compile(tree.field(body, 1))
            return self.method(function, target, args)
        kinds = [kind for _, kind in args]
        nodes = [node for node, _ in args]
        if function in _COMPARISONS and kinds == [_STRING, _STRING]:
            left, right = nodes
            if _COMPARISONS[function]:
                return (lambda data: left(data) == right(data)), _BOOL
            return (lambda data: left(data) != right(data)), _BOOL
        if function in ("_&&_", "_||_") and len(nodes) >= 2 and set(kinds) == {_BOOL}:
            if function == "_&&_":
                return (lambda data: all(node(data) for node in nodes)), _BOOL
            return (lambda data: any(node(data) for node in nodes)), _BOOL
        if function == "!_" and kinds == [_BOOL]:
            (operand,) = nodes
            return (lambda data: not operand(data)), _BOOL
        if function == "@in" and kinds == [_STRING, _LIST]:
            element, values = nodes
            return (lambda data: element(data) in values(data)), _BOOL
        raise _Unsupported

    def method(
        self, function: str, target: tuple[_Node, str], args: list[tuple[_Node, str]]
    ) -> tuple[_Node, str]:
        test = _STRING_METHODS.get(function)
        if test is None or target[1] != _STRING or [kind for _, kind in args] != [_STRING]:
            raise _Unsupported
        subject, (argument, _) = target[0], args[0]
        return (lambda data: test(subject(data), argument(data))), _BOOL

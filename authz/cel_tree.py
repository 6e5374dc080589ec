"""Reading a type-checked CEL expression from its protobuf encoding.

cel-expr-python hands out a compiled program's checked syntax tree only as the
bytes of a ``cel.expr.CheckedExpr`` (``program.serialize()``, cel-spec's
syntax.proto and checked.proto) and ships no generated classes for it. The few
fields the service needs are read straight from the wire format here.
"""

from __future__ import annotations

__all__ = [
    "BOOL_VALUE",
    "CALL",
    "CHILDREN",
    "COMPREHENSION",
    "CONST",
    "IDENT",
    "LIST",
    "SELECT",
    "STRING_VALUE",
    "STRUCT",
    "Message",
    "as_bytes",
    "checked_tree",
    "expression_id",
    "field",
    "kind",
    "message",
    "references",
    "text",
]

# Expr's `expr_kind` field numbers.
CONST, IDENT, SELECT, CALL, LIST, STRUCT, COMPREHENSION = range(3, 10)
EXPR_ID = 2  # Expr.id
BOOL_VALUE, STRING_VALUE = 2, 6  # Constant.bool_value, Constant.string_value
CHILDREN = {  # Expr kind -> the fields of its body that hold child expressions
    SELECT: (1,),
    CALL: (1, 3),
    LIST: (1,),
    COMPREHENSION: (2, 4, 5, 6, 7),
}
Message = dict[int, list[int | bytes]]


def checked_tree(serialized: bytes) -> Message:
    """The ``CheckedExpr`` inside a serialised program (its field 2)."""
    return message(field(message(serialized), 2))


def references(checked: Message) -> dict[int, str]:
    """The checker's reference map: expression id -> the name it resolved to ('' for
    a function call, which is resolved to overloads instead)."""
    resolved = {}
    for entry in checked.get(2, []):
        pair = message(as_bytes(entry))
        (key,) = pair.get(1, [0])
        if not isinstance(key, int):
            raise ValueError("reference map key is not a varint")
        resolved[key] = text(field(message(field(pair, 2)), 1))
    return resolved


def expression_id(expr: bytes) -> int:
    """An Expr's id (0 when absent)."""
    (value,) = message(expr).get(EXPR_ID, [0])
    if not isinstance(value, int):
        raise ValueError("expression id is not a varint")
    return value


def kind(expr: bytes) -> tuple[int, Message]:
    """An Expr's kind (the number of its ``expr_kind`` field) and that field's message."""
    fields = message(expr)
    kinds = [number for number in fields if CONST <= number <= COMPREHENSION]
    if len(kinds) != 1:
        return 0, {}
    return kinds[0], message(field(fields, kinds[0]))


def field(fields: Message, number: int) -> bytes:
    """The single length-delimited field ``number`` (b'' when absent)."""
    values = fields.get(number, [b""])
    if len(values) != 1:
        raise ValueError(f"field {number} repeated")
    return as_bytes(values[0])


def as_bytes(value: int | bytes) -> bytes:
    """A length-delimited field's bytes; ValueError for a varint or fixed field."""
    if not isinstance(value, bytes):
        raise ValueError("expected a length-delimited field")
    return value


def text(value: bytes) -> str:
    """A string field's text."""
    return value.decode("utf-8")


def message(data: bytes) -> Message:
    """Protobuf wire format: field number -> values (varints as int, the rest as bytes)."""
    fields: Message = {}
    index = 0
    while index < len(data):
        key, index = _varint(data, index)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, index = _varint(data, index)
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, index = data[index : index + width], index + width
        elif wire == 2:
            length, index = _varint(data, index)
            value, index = data[index : index + length], index + length
        else:
            raise ValueError(f"wire type {wire}")
        if index > len(data):
            raise ValueError("truncated")
        fields.setdefault(number, []).append(value)
    return fields


def _varint(data: bytes, index: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if index >= len(data):
            raise ValueError("truncated varint")
        byte = data[index]
        index += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, index

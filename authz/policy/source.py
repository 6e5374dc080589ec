"""Bundle sources: the YAML documents of a bundle, with the position of every node.

Positions are what make bundle errors useful: every value read from a document
can be traced back to ``file:line:column`` through its YAML path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from authz.errors import PolicyError

__all__ = ["Document", "Path", "format_path", "parse_documents"]

Path = tuple[str | int, ...]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def format_path(path: Path) -> str:
    """``("spec", "rules", 0, "from")`` → ``spec.rules[0].from``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass(slots=True)
class Document:
    """One YAML document: its plain value and where each of its nodes starts."""

    file: str
    value: Any
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def error(self, path: Path, message: str) -> PolicyError:
        """A PolicyError at the closest known position of ``path``."""
        probe = path
        while probe not in self.positions and probe:
            probe = probe[:-1]
        line, column = self.positions.get(probe, (1, 1))
        return PolicyError(self.file, line, column, format_path(path), message)


def parse_documents(file: str, text: str) -> tuple[list[Document], list[PolicyError]]:
    """Every document of one YAML file; syntax errors become PolicyErrors."""
    documents: list[Document] = []
    errors: list[PolicyError] = []
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            document = Document(file, None)
            document.value = _convert(loader, node, (), document, errors)
            documents.append(document)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = getattr(exc, "problem", None) or str(exc)
        errors.append(PolicyError(file, line, column, "", f"YAML syntax error: {problem}"))
    finally:
        loader.dispose()
    return documents, errors


def _convert(
    loader: Any, node: Any, path: Path, document: Document, errors: list[PolicyError]
) -> Any:
    document.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                errors.append(document.error(path, f"mapping key {key!r} must be a string"))
                continue
            if key in result:
                document.positions[(*path, key)] = _start(key_node)
                errors.append(document.error((*path, key), f"duplicate key {key!r}"))
                continue
            result[key] = _convert(loader, value_node, (*path, key), document, errors)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(loader, item, (*path, index), document, errors)
            for index, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)


def _start(node: Any) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1

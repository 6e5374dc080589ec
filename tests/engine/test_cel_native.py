"""Simple conditions evaluated in Python (authz/cel_native.py) answer exactly as CEL does.

Differential: for generated expressions of the subset and for every condition of the
example bundle, on random data (values that collide, missing variables, values of the
wrong type), whenever the Python closure answers, CEL gives the same answer; with
complete, well-typed data it always answers. Outside the subset there is no closure.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import pytest

from authz.cel import Condition, compile_condition
from authz.policy.bundle import load_bundle

ROOT = Path(__file__).resolve().parents[2]
STRINGS = ["tenant", "request.auth.tenant", "request.path", "request.method", "source.principal"]
LISTS = ["request.auth.roles", "request.auth.audiences"]
POOL = ["acme", "globex", "", "a", "ac", "/api/v1/vendors/acme", "ACME", "ü", 'q"uote', "ac me"]


def _literal(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _string(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return rng.choice(STRINGS)
    return _literal(rng.choice(POOL))


def _boolean(rng: random.Random, depth: int) -> str:
    leaves = [
        lambda: f"{_string(rng)} == {_string(rng)}",
        lambda: f"{_string(rng)} != {_string(rng)}",
        lambda: f"{_string(rng)} in {rng.choice(LISTS)}",
        lambda: f"{_string(rng)}.startsWith({_string(rng)})",
        lambda: f"{_string(rng)}.endsWith({_string(rng)})",
        lambda: f"{_string(rng)}.contains({_string(rng)})",
        lambda: rng.choice(["true", "false"]),
    ]
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(leaves)()
    left, right = _boolean(rng, depth - 1), _boolean(rng, depth - 1)
    return rng.choice([f"({left} && {right})", f"({left} || {right})", f"!({left})"])


def _data(rng: random.Random, *, complete: bool) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in STRINGS:
        data[name] = rng.choice(POOL)
    for name in LISTS:
        data[name] = rng.sample(POOL, rng.randint(0, 3))
    if not complete:
        for name in rng.sample([*STRINGS, *LISTS], rng.randint(1, 3)):
            wrong: list[Any] = [None, 7, ["acme"], {"a": "b"}, 1.5, [1, 2], ["acme", 3]]
            data[name] = rng.choice(wrong)
            if data[name] is None:
                del data[name]
    return data


def _cel_only(condition: Condition) -> Condition:
    return dataclasses.replace(condition, native=None)


def _agree(condition: Condition, data: dict[str, Any]) -> bool | None:
    """The closure's answer (None: it left the call to CEL), checked against CEL's."""
    assert condition.native is not None
    answer = condition.native(data)
    if answer is not None:
        assert answer == _cel_only(condition).evaluate(data), (condition.source, data)
    return answer


def test_generated_conditions_of_the_subset_answer_as_cel_does() -> None:
    rng = random.Random(20261128)
    sources = {_boolean(rng, 3) for _ in range(300)}
    answered = 0
    for source in sorted(sources):
        condition = compile_condition(source)
        assert condition.native is not None, source
        for _ in range(10):
            assert _agree(condition, _data(rng, complete=True)) is not None, source
            answered += 1
        for _ in range(10):
            _agree(condition, _data(rng, complete=False))
    assert answered == 10 * len(sources)


def test_missing_or_mistyped_variables_are_left_to_cel() -> None:
    condition = compile_condition("request.auth.tenant == tenant")
    assert condition.native is not None
    assert condition.native({"tenant": "acme"}) is None
    assert condition.native({"tenant": "acme", "request.auth.tenant": 7}) is None
    roles = compile_condition('"vendor:staff" in request.auth.roles')
    assert roles.native is not None
    assert roles.native({"request.auth.roles": ["vendor:staff", 3]}) is None
    assert roles.native({"request.auth.roles": ("vendor:staff",)}) is None
    # ... and CEL then reports the error, which fails the rule closed.
    assert isinstance(condition.evaluate({"tenant": "acme"}), str)


@pytest.mark.parametrize(
    "source",
    [
        "request.auth.claims.sub == tenant",
        '"x-change-ticket" in request.headers',
        'request.headers["x-a"] == "b"',
        "size(request.path) > 3",
        'request.path.matches("^/api")',
        "source.port == 8080",
        "request.time < now",
        'request.auth.roles.exists(r, r == "admin")',
        "request.auth.tenant == tenant ? true : false",
        '"a" + tenant == "aacme"',
        "request.auth.roles == []",
        "has(request.query.q)",
        "dyn(tenant) == tenant",
    ],
)
def test_anything_else_stays_with_cel(source: str) -> None:
    assert compile_condition(source).native is None


def test_the_example_bundles_simple_conditions_are_native_and_agree() -> None:
    snapshot = load_bundle(ROOT / "policies")
    conditions = {rule.condition for rule in snapshot.rules.rules if rule.condition is not None}
    native = [condition for condition in conditions if condition.native is not None]
    assert "request.auth.tenant == tenant" in {condition.source for condition in native}
    rng = random.Random(7)
    for condition in native:
        for _ in range(50):
            data = _data(rng, complete=rng.random() < 0.7)
            for name in condition.variables:
                if name not in data and rng.random() < 0.8:
                    data[name] = rng.choice(POOL)
            _agree(condition, data)

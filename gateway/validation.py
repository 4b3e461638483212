"""Strict JSON body checking: unknown fields, wrong types and missing fields are refused whole.

A tiny declarative schema is enough for our bodies and keeps each error's code stable
(``unknown_field``, ``missing_field``, ``wrong_type``, ``invalid_value``); all problems found are
listed in ``errors`` so an integrator fixes them in one round.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import Problem

Check = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Field:
    kind: type | tuple[type, ...]
    required: bool = False
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    item_kind: type | None = None
    max_items: int | None = None
    # Domain check: returns the normalised value or raises Problem (e.g. invalid_legal_id).
    check: Check | None = None


_TYPE_NAMES = {str: "string", int: "integer", bool: "boolean", list: "array", dict: "object"}


def _type_ok(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False  # JSON true is not an integer here
    return isinstance(value, kinds)


def _name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)


def parse_object(
    body: Any, fields: Mapping[str, Field], *, partial: bool = False
) -> dict[str, Any]:
    """Validate ``body`` against ``fields``; ``partial`` (PATCH) makes nothing required.

    One pass over the fields the body has (a send carries 3-5 of a dozen); at the first doubt
    the full pass below runs and lists every problem in the fields' order, as before. The fast
    pass only ever accepts what the full pass accepts (the send path spent ~8% of its CPU here).
    """
    if not isinstance(body, dict):
        raise Problem("wrong_type", "the body must be a JSON object")
    out: dict[str, Any] = {}
    for name, value in body.items():
        spec = fields.get(name)
        if spec is None:
            return _parse_all(body, fields, partial)
        if value is None:
            continue
        kind = spec.kind
        if kind is str and type(value) is str:
            if spec.max_length is not None and len(value) > spec.max_length:
                return _parse_all(body, fields, partial)
        elif kind is bool and type(value) is bool:
            pass
        elif not _type_ok(value, kind) or _limits(name, value, spec) is not None:
            return _parse_all(body, fields, partial)
        if spec.check is not None:
            try:
                value = spec.check(value)
            except Problem:
                return _parse_all(body, fields, partial)
        out[name] = value
    if not partial:
        for name, spec in fields.items():
            if spec.required and name not in out:
                return _parse_all(body, fields, partial)
    return out


def _parse_all(body: dict[str, Any], fields: Mapping[str, Field], partial: bool) -> dict[str, Any]:
    errors: list[dict[str, str]] = []
    for name in body:
        if name not in fields:
            errors.append({"field": name, "code": "unknown_field", "message": "unknown field"})
    out: dict[str, Any] = {}
    for name, spec in fields.items():
        if name not in body or body[name] is None:
            if spec.required and not partial:
                errors.append({"field": name, "code": "missing_field", "message": "required"})
            continue
        value = body[name]
        if not _type_ok(value, spec.kind):
            errors.append(
                {"field": name, "code": "wrong_type", "message": f"must be {_name(spec.kind)}"}
            )
            continue
        problem = _limits(name, value, spec)
        if problem:
            errors.append(problem)
            continue
        if spec.check is not None:
            try:
                value = spec.check(value)
            except Problem as exc:
                errors.append({"field": name, "code": exc.code, "message": exc.detail})
                continue
        out[name] = value
    if errors:
        first = errors[0]
        raise Problem(first["code"], f"{first['field']}: {first['message']}", errors=errors)
    return out


def _limits(name: str, value: Any, spec: Field) -> dict[str, str] | None:
    def bad(message: str) -> dict[str, str]:
        return {"field": name, "code": "invalid_value", "message": message}

    if isinstance(value, str) and spec.max_length is not None and len(value) > spec.max_length:
        return bad(f"at most {spec.max_length} characters")
    if isinstance(value, int) and not isinstance(value, bool):
        if spec.minimum is not None and value < spec.minimum:
            return bad(f"must be >= {spec.minimum}")
        if spec.maximum is not None and value > spec.maximum:
            return bad(f"must be <= {spec.maximum}")
    if isinstance(value, list):
        if spec.max_items is not None and len(value) > spec.max_items:
            return bad(f"at most {spec.max_items} items")
        if spec.item_kind is not None and not all(_type_ok(v, spec.item_kind) for v in value):
            return {"field": name, "code": "wrong_type", "message": "items must be strings"}
    return None

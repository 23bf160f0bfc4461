"""A tiny, safe evaluator for claim expectations like ``oom_kills >= 1``.

Expressions are comparisons over recorded figures and the profile's values
(``peak_memory_bytes >= 0.98 * profile.memory_limit_bytes``). Only names,
numbers, strings, booleans, arithmetic, comparisons, ``and``/``or``/``not``,
``in``, and the functions abs/min/max/len are allowed: nothing else can run.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ExpectationError", "MissingFigure", "check", "names_in"]

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_CMPOPS: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_FUNCS: dict[str, Callable[..., Any]] = {"abs": abs, "min": min, "max": max, "len": len}


class ExpectationError(ValueError):
    """The expression itself is not allowed or does not parse."""


class MissingFigure(KeyError):
    """The expression names a figure the probe did not record."""


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None


def names_in(expr: str) -> list[str]:
    """Figure names an expression uses, in order (``profile.x`` included)."""
    tree = _parse(expr)
    out: list[str] = []
    for node in ast.walk(tree):
        name = _name(node) if isinstance(node, ast.expr) else None
        if name and name not in _FUNCS and name not in out and not _is_inner(tree, node):
            out.append(name)
    return out


def _is_inner(tree: ast.AST, node: ast.AST) -> bool:
    """A Name that is only the ``profile`` part of ``profile.x``."""
    return any(isinstance(n, ast.Attribute) and n.value is node for n in ast.walk(tree))


def _parse(expr: str) -> ast.expr:
    try:
        return ast.parse(expr, mode="eval").body
    except SyntaxError as exc:
        raise ExpectationError(f"cannot parse {expr!r}: {exc.msg}") from None


def _eval(node: ast.expr, values: Mapping[str, Any]) -> Any:
    name = _name(node)
    if name is not None:
        if name in values:
            return values[name]
        raise MissingFigure(name)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [_eval(e, values) for e in node.elts]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand, values)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _eval(node.operand, values)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_eval(node.left, values), _eval(node.right, values))
    if isinstance(node, ast.BoolOp):
        results = [bool(_eval(v, values)) for v in node.values]
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, values)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _eval(right_node, values)
            if type(op) not in _CMPOPS or not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCS
        and not node.keywords
    ):
        return _FUNCS[node.func.id](*(_eval(a, values) for a in node.args))
    raise ExpectationError(f"not allowed in an expectation: {ast.unparse(node)!r}")


def check(expr: str, values: Mapping[str, Any]) -> bool:
    """Evaluate ``expr``; raises MissingFigure or ExpectationError."""
    return bool(_eval(_parse(expr), values))

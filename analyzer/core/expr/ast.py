"""AST of the expr-lang subset. Every node knows its source offset for error columns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Node:
    pos: int


@dataclass(frozen=True, slots=True)
class Const(Node):
    value: Any


@dataclass(frozen=True, slots=True)
class Name(Node):
    name: str


@dataclass(frozen=True, slots=True)
class Pointer(Node):
    """``#`` (the current element in a predicate) or ``#index``."""

    name: str


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Conditional(Node):
    cond: Node
    then: Node
    other: Node


@dataclass(frozen=True, slots=True)
class Member(Node):
    obj: Node
    prop: Node
    optional: bool


@dataclass(frozen=True, slots=True)
class Slice(Node):
    obj: Node
    lo: Node | None
    hi: Node | None


@dataclass(frozen=True, slots=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Closure(Node):
    body: Node


@dataclass(frozen=True, slots=True)
class Array(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class MapLit(Node):
    pairs: tuple[tuple[Node, Node], ...]

"""AST of expr-lang (the node kinds of expr's ast package). Every node knows its rune offset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Node:
    pos: int


@dataclass(frozen=True, slots=True)
class Const(Node):
    """A literal: int, float, str, bool, bytes or None (nil)."""

    value: Any


@dataclass(frozen=True, slots=True)
class Name(Node):
    name: str


@dataclass(frozen=True, slots=True)
class Pointer(Node):
    """``#`` (name ``""``) or ``#index`` / ``#acc`` inside a predicate; ``.x`` is ``#.x``."""

    name: str


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str  # "!" (also for "not"), "-", "+"
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str  # normalised: "&&" "||" "**" for and/or/^
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Conditional(Node):
    cond: Node
    then: Node
    other: Node
    elvis: bool = False  # "a ?: b": then is the very same node as cond


@dataclass(frozen=True, slots=True)
class Chain(Node):
    """Marks the extent of an optional chain: a nil met by ``?.`` inside makes the chain nil."""

    node: Node


@dataclass(frozen=True, slots=True)
class Member(Node):
    obj: Node
    prop: Node
    optional: bool
    method: bool = False


@dataclass(frozen=True, slots=True)
class Slice(Node):
    obj: Node
    lo: Node | None
    hi: Node | None


@dataclass(frozen=True, slots=True)
class Call(Node):
    """A call of something that is not a builtin: an environment function or a method."""

    callee: Node
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Builtin(Node):
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Predicate(Node):
    body: Node


@dataclass(frozen=True, slots=True)
class Array(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class MapLit(Node):
    pairs: tuple[tuple[Node, Node], ...]


@dataclass(frozen=True, slots=True)
class Let(Node):
    name: str
    value: Node
    body: Node


@dataclass(frozen=True, slots=True)
class Sequence(Node):
    nodes: tuple[Node, ...]

"""Fidelity table for the expression language: expr-lang v1.17.8 as Argo's EvalCondition runs it.

Every expectation was derived from expr-lang's source (parser/lexer, checker, optimizer, vm and
vm/runtime, builtin) and Argo's utils/evaluate/evaluate.go: ``T``/``F`` is the bool the
condition yields, ``CERR`` a compile-time error (expr's checker or parser rejects it, Argo
compiles with the concrete ``result`` in the environment), ``RERR`` an error while running
(including Argo's "expected bool, but got ..." for a non-bool outcome).

Result shapes follow the conformance files: a Prometheus vector is a list of floats, a
scalar a float, JSON decoded values use ints where YAML would (normalised to float64), a
non-JSON web body is a string, and ``None`` is a nil result.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

import analyzer
from analyzer.core.expressions import ExpressionError, check, compile_for, evaluate

# The public API (wall clock for now(), as in Argo); the core's own takes `now` as an argument.
evaluate_condition = analyzer.evaluate_condition

T, F, CERR, RERR = True, False, "compile error", "runtime error"
NAN, INF = math.nan, math.inf


def vec(*xs: float) -> list[float]:
    return [float(x) for x in xs]


V3 = vec(1, 2, 3)
ITEMS = {"items": [{"ok": True, "v": 1}, {"ok": True, "v": 2}]}

CASES: list[tuple[str, Any, Any]] = [
    # ---- literals: integers, floats, underscores, bases, exponents
    ("0x1F == 31", None, T),
    ("0X1f == 31", None, T),
    ("0o17 == 15", None, T),
    ("0b101 == 5", None, T),
    ("017 == 17", None, T),  # a leading zero is not octal
    ("1_000_000 == 1000000", None, T),
    ("1__0 == 10", None, T),  # expr strips every underscore before parsing
    ("1e3 == 1000", None, T),
    ("1E3 == 1000.0", None, T),
    ("2.5e-1 == 0.25", None, T),
    ("1e+2 == 100", None, T),
    (".5 == 0.5", None, T),
    ("1. == 1", None, T),
    ("-.5 < 0", None, T),
    ("9223372036854775807 > 0", None, T),
    ("9223372036854775808 > 0", None, CERR),  # integer literal out of range
    ("0x == 0", None, CERR),
    ("1e == 1", None, CERR),
    ("5a == 5", None, CERR),  # bad number syntax
    ("1.5.2 == 1", None, CERR),
    ("1.a", None, CERR),
    ("len(1..3) == 3", None, T),  # not "1." followed by ".3"
    # ---- literals: strings and escapes
    ('"a\\tb" == "a" + "\\t" + "b"', None, T),
    ('"\\x41" == "A"', None, T),
    ('"\\101" == "A"', None, T),
    ('"\\u00e9" == "é"', None, T),
    ('"\\U0001F600" == "😀"', None, T),
    ('"\\u{1F600}" == "😀"', None, T),
    ("'it\\'s' == \"it's\"", None, T),
    ('"say \\"hi\\"" == \'say "hi"\'', None, T),
    ("'single' == \"single\"", None, T),
    ('"\\\\" == `\\`', None, T),
    ("`raw\\n` == \"raw\\\\n\"", None, T),  # backtick strings have no escapes
    ("`a``b` == \"a`b\"", None, T),  # a doubled backtick is a backtick
    ("`two\nlines` contains \"\\n\"", None, T),
    ('"\\q" == "q"', None, CERR),  # unknown escape
    ("\"\\'\" == \"'\"", None, CERR),  # \' only inside single quotes
    ("'\\\"' == '\"'", None, CERR),  # \" only inside double quotes
    ('"\\0" == ""', None, CERR),  # octal escapes need three digits
    ('"abc', None, CERR),
    ('"line\nbreak" == ""', None, CERR),  # quoted strings cannot span lines
    ('len("héllo") == 5', None, T),  # runes, not bytes
    ("len('北京') == 2", None, T),
    # ---- comments
    ("1 /* one */ + 1 == 2", None, T),
    ("true // trailing comment", None, T),
    ("true /* unclosed", None, CERR),
    # ---- precedence and associativity
    ("1 + 2 * 3 == 7", None, T),
    ("(1 + 2) * 3 == 9", None, T),
    ("10 - 2 - 3 == 5", None, T),
    ("100 / 10 / 2 == 5", None, T),
    ("7 % 3 * 2 == 2", None, T),
    ("2 * 3 % 4 == 2", None, T),
    ("2 ** 3 ** 2 == 512", None, T),  # ** is right-associative
    ("(2 ** 3) ** 2 == 64", None, T),
    ("2 ^ 3 ^ 2 == 512", None, T),
    ("-2 ** 2 == -4", None, T),  # unary minus binds looser than **
    ("(-2) ** 2 == 4", None, T),
    ("-2 ** 2 == 4", None, F),
    ("-(2-5)**3-2/(+4-3)+-2 == 23", None, T),
    ("len(1 + 2 .. 5) == 3", None, T),  # .. binds looser than +
    ("true || false && false", None, T),
    ("(true || false) && false", None, F),
    ("not true or true", None, T),
    ("not (true or true)", None, F),
    ("!true == false", None, T),
    ("1 < 2 == true", None, T),
    ("1 == 1 == true", None, T),
    ("1 < 2 < 3", None, T),  # comparison chains: 1 < 2 && 2 < 3
    ("3 > 2 > 1", None, T),
    ("1 < 3 < 2", None, F),
    ("1 <= 1 < 2", None, T),
    ("1 < 2 < 3 > 2", None, T),
    ("true and false or true", None, T),
    ("result[0] > 0.5 and result[0] < 1", vec(0.7), T),
    ("not result[0] > 1", vec(2), CERR),  # (not result[0]) > 1
    ("not (result[0] > 1)", vec(2), F),
    ("not result.a == 1", {"a": 1}, CERR),  # (not result.a) == 1: bool vs int
    ("!(result.a == 1)", {"a": 1}, F),
    # ---- ternary, elvis, nil coalescing
    ("(true ? (false ? 1 : 2) : 3) == 2", None, T),
    ("(false ? 1 : true ? 2 : 3) == 2", None, T),
    ("true ? 1 : 2 == 1", None, RERR),  # ?: binds loosest: the outcome is the int 1
    ("(true ? 1 : 2) == 1", None, T),
    ("(true ? 1 : 'a') == 1", None, T),
    ("result[0] > 1 ? true : false", vec(2), T),
    ("1 ? true : false", None, CERR),
    ("result ? true : false", vec(1), CERR),
    ("result.x ? true : false", {"x": 1}, RERR),
    ("result.x ? true : false", {"x": True}, T),
    ("result.b ?: false", {"b": True}, T),
    ("false ?: true", None, T),
    ("result.b ?: true", {}, RERR),  # ?: tests a bool, nil is not one
    ("result.missing ?? true", {}, T),
    ("(result.missing ?? 5) == 5", {}, T),
    ("(result.a ?? 1) == 0", {"a": 0}, T),
    ("result.f ?? true", {"f": False}, F),
    ("(nil ?? nil) == nil", None, T),
    ("(nil ?? 1) == 1", None, T),
    ("(result ?? 1) == 1", None, T),
    ("result.x ?? 0 > 5", {"x": 10}, CERR),  # ?? cannot be mixed with other operators
    ("nil ?? 1 == 1", None, CERR),
    ("1 == nil ?? 1", None, T),  # right operand of == is (nil ?? 1)
    ("(result.a ?? result.b ?? 3) == 3", {}, T),
    # ---- optional chaining
    ("result?.a?.b == nil", {"a": None}, T),
    ("result.a?.b == nil", {"a": None}, T),
    ("result.x?.y.z == nil", {}, T),  # the whole chain is nil
    ("result.a.b == nil", {"a": None}, RERR),  # member of nil
    ("result?.a.b == nil", {"a": None}, RERR),
    ("result.list?.[0] == 1", {"list": [1]}, T),
    ("result.list?.[5] == 1", {"list": [1]}, RERR),  # ?. only guards nil
    ("result.missing?.[0] == nil", {}, T),
    ("result?.a == nil", None, CERR),  # nil result: type nil has no field a
    ("[nil, 3, 4]?.[0]?.[1] == nil", None, T),
    ("[[1, 2], 3]?.[0]?.[1] == 2", None, T),
    # ---- ranges
    ("1..3 == [1, 2, 3]", None, T),
    ("len(1..0) == 0", None, T),
    ("len(-2..2) == 5", None, T),
    ("3 in 1..5", None, T),
    ("6 in 1..5", None, F),
    ("2.5 in 1..5", None, F),
    ("4 in 5..1", None, F),
    ("(0..10)[5] == 5", None, T),
    ("1..2.0", None, CERR),
    ("len(1..2000000) > 0", None, RERR),  # memory budget
    # ---- slices and indexes
    ("[1, 2, 3, 4][1:3] == [2, 3]", None, T),
    ("[1, 2, 3][-2:] == [2, 3]", None, T),
    ("[1, 2, 3][:-1] == [1, 2]", None, T),
    ("[1, 2, 3][:] == [1, 2, 3]", None, T),
    ("[1, 2, 3][5:] == []", None, T),  # bounds are clamped
    ("[1, 2, 3][2:1] == []", None, T),
    ("[1, 2, 3][-10:1] == [1]", None, T),
    ('"hello"[1:3] == "el"', None, T),
    ('"hello"[:-1] == "hell"', None, T),
    ('"hello"[7:9] == ""', None, T),
    ("[1, 2, 3][1.5:]", None, CERR),
    ("(true)[:]", None, CERR),
    ("result[1:] == [2, 3]", V3, T),
    ("result[:2] == [1, 2]", V3, T),
    ("result[-1] == 3", V3, T),
    ("result[-3] == 1", V3, T),
    ("result[-4] == 1", V3, RERR),
    ("result[3] > 0", V3, RERR),
    ("result[0] > 0", [], RERR),
    ("result[0.0] > 0", V3, CERR),
    ("result['0'] > 0", V3, CERR),
    ("result.a > 0", V3, CERR),
    ("result[1.5] == 1", {"x": 1}, CERR),
    ("[1, 2, 3][0] == 1", None, T),
    ("[1, 2, 3][-1] == 3", None, T),
    ('"abc"[0] == "a"', None, CERR),  # strings are not indexable when their type is known
    ("result.s[0] == 97", {"s": "abc"}, T),  # ... and give a byte when it is not
    ("result.arr[1] == 2", {"arr": [1, 2]}, T),
    ("result.arr[-1] == 2", {"arr": [1, 2]}, T),
    ("result.arr[2] == 2", {"arr": [1, 2]}, RERR),
    ("result.arr[1.9] == 2", {"arr": [1, 2]}, T),  # unknown base: the float index is truncated
    ("result.arr[result.i] == 2", {"arr": [1, 2], "i": 1}, T),  # float index truncated at run time
    # ---- member access on maps, missing keys, nil
    ("result.a == 1", {"a": 1}, T),
    ('result["a"] == 1', {"a": 1}, T),
    ('result["a-b"] == 2', {"a-b": 2}, T),
    ("result.missing == nil", {"a": 1}, T),
    ("result.a.b.c == 1", {"a": {"b": {"c": 1}}}, T),
    ("result.a.b", {"a": 1}, RERR),  # cannot fetch b from float64
    ("result[0] == 1", {"a": 1}, CERR),  # int key on map[string]interface {}
    ("result.a[0] == 1", {"a": {"b": 1}}, RERR),
    ("result.a.in == 1", {"a": {"in": 1}}, T),  # operator words are valid property names
    ("result.a == nil", None, CERR),  # nil result
    ("result[0] == nil", None, CERR),
    ("result == nil", None, T),
    ("result != nil", None, F),
    ("result.a", 1.0, CERR),  # float64 has no field a
    ("result[0] == 1", 1.0, CERR),
    ("result.a", "body", CERR),
    ("result[0] == 't'", "text", CERR),
    ("result.x", True, CERR),
    ("result.flag", {"flag": True}, T),
    ("result.count + 1 == 3", {"count": 2}, T),  # JSON numbers are float64
    ("result.count % 2 == 0", {"count": 2}, RERR),  # % needs ints
    ("result.count == 2.0", {"count": 2}, T),
    ("result.x == '1'", {"x": 1}, F),  # no coercion
    ("result.data.items[1].v == 2", {"data": {"items": [{"v": 1}, {"v": 2}]}}, T),
    ("$env.result[0] == 1", V3, T),
    ("'result' in $env", V3, T),
    ("$env.nothing == nil", V3, CERR),
    ("$env?.nothing == nil", V3, T),
    # ---- Argo's example conditions
    ("result[0] >= 0.99", vec(0.995), T),
    ("len(result) > 0 && result[0] < 5", [], F),
    ("len(result) == 0 || result[0] < 1", [], T),
    ("result[0] > 0.9 || result[0] < 0.1", vec(NAN), F),
    ("result[0] >= 0.9 || isNaN(result[0])", vec(NAN), T),
    ("result > 1", vec(2), CERR),
    ("result == 10", 10.0, T),
    ("result > 1", 5.0, T),
    ("result.a >= 2 && result.b && all(result.c, {# < 5}) && result.d == nil",
     {"a": 1, "b": True, "c": [1, 2, 3, 4], "d": None}, F),
    ("result.a >= 1 && result.b && all(result.c, {# < 5}) && result.d == nil",
     {"a": 1, "b": True, "c": [1, 2, 3, 4], "d": None}, T),
    ("result == 'test: notJson'", "test: notJson", T),
    ("trim(result) == 'OK'", "OK\n", T),
    ("result < 5", None, CERR),
    ("result == true", True, T),
    ("a == true", True, CERR),
    ("result.ok", {"ok": "yes"}, RERR),  # expected bool, but got string
    ("asFloat(result) == '1.1'", "1.1", CERR),
    # ---- more Argo-style conditions per result kind
    ("(result.a ?? 'x') == 'x'", {}, T),
    ("len(result.list) > 0 && result.list[0].ok", {"list": [{"ok": True}]}, T),
    ("result['status'] in ['ok', 'healthy']", {"status": "healthy"}, T),
    ("lower(result.status) == 'ok'", {"status": "OK"}, T),
    ("result.value > 0.5", {"value": "0.7"}, RERR),
    ("float(result.value) > 0.5 && asFloat(result.value) > 0.5", {"value": "0.7"}, T),
    ("result == nil ? true : false", None, T),
    ("!result", True, F),
    ("not result", False, T),
    ("result || false", False, F),
    ("result ? result : false", True, T),
    ("result != '' && result startsWith 'OK'", "OK: fine", T),
    ("int(result) > 100", "123", T),
    ("int(result) > 100", "abc", RERR),
    ("result in ['OK', 'ok']", "ok", T),
    ("split(result, ',')[1] == 'b'", "a,b", T),
    ("result matches '^[0-9]+$'", "123", T),
    ("mean(result) > 0.5 && median(result) < 100", vec(0.7, 0.9), T),
    ("sum(result) / len(result) > 0.5", vec(0.7, 0.9), T),
    ("sum(result) / len(result) > 0.5", [], F),  # 0 / 0 is NaN
    ("count(result, # > 0.5) >= len(result) / 2", vec(0.7, 0.1), T),
    ("filter(result, # > 0.5) == result", vec(0.7, 0.9), T),
    ("map(result, round(#)) == [1, 2]", vec(0.7, 1.6), T),
    ("int(result[0] * 100) == 99", vec(0.995), T),
    ("string(result[0]) == '0.995'", vec(0.995), T),
    ("result in [1, 2, 3]", 2.0, T),
    ("result in 1..10", 2.5, F),
    ("int(result) % 2 == 0", 4.0, T),
    ("round(result) == 5 && abs(result) < 10", 4.6, T),
    ("string(result) == 'NaN' && !isInf(result)", NAN, T),
    ("string(result) == '+Inf'", INF, T),
    ("result > 1e3", 1e4, T),
    # ---- compile-time type errors even in branches that never run
    ("true || result > 1", vec(2), CERR),
    ("false && result[0] == 'x'", vec(2), CERR),
    ("len(result) == 0 || result[0] == 'x'", [], CERR),
    ("true || result.a > 'x'", {"a": 1}, T),  # unknown type: checked at run time only
    ("false && result.a.b.c", {}, F),
    ("isNil(result) || result > 1", None, CERR),
    ("result == nil || result.x > 1", None, CERR),
    ("result != nil && result[0] > 1", None, CERR),
    ("true || foo", None, CERR),
    ("false ? result.x : true", {}, T),
    # ---- the optimizer folds constants
    ("result[5] > 0 && false", vec(1), F),  # x && false is false without evaluating x
    ("result[5] > 0 || true", vec(1), T),
    ("false || result[5] > 0", vec(1), RERR),
    ("result[5] > 0 && 1 == 2", vec(1), F),
    ("result[5] > 0 && 1 != 1", vec(1), RERR),  # != is not folded
    ("(result.x && true) == true", {"x": "yes"}, F),  # x && true is x: no bool assertion on x
    ("(result.x && true) == true", {"x": True}, T),
    ("(result.x && true) == 5", {"x": 5}, CERR),  # ... but the && node is still a bool for the checker
    ("all(result, # < 1) && all(result, # > 'a')", [0.5, 2, "x"], RERR),  # merged: all(x, p && q)
    ("all(result, # < 1) && all(result[:], # > 'a')", [0.5, 2, "x"], F),  # different collections
    ("any(result, # > 5) || any(result, # > 'a')", [9, "x"], T),
    ("none(result, # > 5) && none(result, # > 'a')", [1, "x"], RERR),
    ("1 % 0 == 0", None, CERR),  # folded: integer divide by zero
    ("9223372036854775807 + 1 < 0", None, T),  # int64 wrap-around
    # ---- non-bool outcomes
    ("result", V3, RERR),
    ("result[0]", V3, RERR),
    ("1 + 1", None, RERR),
    ("'true'", None, RERR),
    ("nil", None, RERR),
    ("result", True, T),
    ("result", False, F),
    ("", None, CERR),
    ("1; true", None, T),
    ("let x = result[0]; x > 0.5", vec(0.7), T),
    ("let x = 1; let y = x + 1; y == 2", None, T),
    ("let result = 1; true", None, CERR),
    ("let len = 1; true", None, CERR),
    ("if result[0] > 0.5 { true } else { false }", vec(0.7), T),
    ("if false { 1 } else if true { true } else { 2 }", None, T),
    # ---- pipes
    ("result | len() == 3", V3, T),
    ("result | filter(# > 1) | len() == 2", V3, T),
    ("'ABC' | lower() == 'abc'", None, T),
    ("result | all(# > 0)", V3, T),
    # ---- predicates: all any none one, {# ...}, bare #, .field, #index
    ("all(result, {# > 0.9})", [], T),
    ("any(result, {# > 0.9})", [], F),
    ("none(result, {# > 0.9})", [], T),
    ("one(result, {# > 0.9})", [], F),
    ("all(result, {# > 0})", V3, T),
    ("all(result, # > 1)", V3, F),
    ("any(result, # > 2)", V3, T),
    ("any(result, {# > 6})", [1, 2, 3, 4, 5, 6], F),
    ("none(result, # > 3)", V3, T),
    ("one(result, # > 2)", V3, T),
    ("one(result, # > 1)", V3, F),
    ("all(result.items, .ok)", ITEMS, T),
    ("all(result.items, {.v > 1})", ITEMS, F),
    ("any(result.items, #.v == 2)", ITEMS, T),
    ("all(result, {# > 0; true})", V3, T),
    ("all(result, # > 0; true)", V3, CERR),  # wrap predicate with brackets
    ("all([[1, 2], [3]], all(#, # > 0))", None, T),
    ("all(result, #index < 5)", V3, CERR),  # #index only in map() and reduce()
    ("map(result, #index) == [0, 1, 2]", V3, T),
    ("reduce(result, #acc + #, 0) == 6", V3, T),
    ("reduce([1, 2, 3], #acc + #) == 6", None, T),
    ("reduce([], #acc + #) == 0", None, RERR),
    ("# > 1", V3, CERR),  # pointer outside a predicate
    (".a == 1", {"a": 1}, CERR),
    ("all(result, #)", V3, CERR),  # predicate should return boolean
    ("all(result, # > 'a')", V3, CERR),
    ("any(result, # > 'a')", [1, "b"], RERR),  # []interface {}: checked at run time
    ("all(result, # > 0)", {"a": 1}, CERR),  # builtin all takes only array
    ("all(result.list, # > 0)", {}, RERR),  # nil collection
    ("all(result.list, # > 0)", {"list": {}}, T),  # an empty map iterates zero times
    ("all(result.list, #)", {"list": [True, 1]}, RERR),
    ("any(result.list, #)", {"list": [True, 1]}, T),  # stops at the first true
    ("all(1, # > 0)", None, CERR),
    # ---- filter, map, count, sum, find*
    ("filter(result, # > 1) == [2, 3]", V3, T),
    ("len(filter(result, # > 1)) == 2", V3, T),
    ("map(result, # * 2) == [2, 4, 6]", V3, T),
    ("map(result.items, .v) == [1, 2]", ITEMS, T),
    ("filter(result.items, .v > 1)[0].v == 2", ITEMS, T),
    ("count(result, # > 1) == 2", V3, T),
    ("count(result, # > 1) > 0", V3, T),
    ("count([true, false, true]) == 2", None, T),
    ("count(result, # > 1) >= 2", [1, 2, 3, "x"], T),  # stops once the threshold is met
    ("count(result, # > 1) == 2", [1, 2, 3, "x"], RERR),
    ("find(result, # > 1) == 2", V3, T),
    ("find(result, # > 5) == nil", V3, T),
    ("findIndex(result, # > 1) == 1", V3, T),
    ("findIndex(result, # > 5) == nil", V3, T),  # nil, not -1
    ("findIndex(result, # > 5) == -1", V3, RERR),  # int == int asserts both are ints
    ("(findIndex(result, # > 5) ?? -1) == -1", V3, T),
    ("findIndex(result, # > 5) > 0", V3, RERR),
    ("findIndex(result, # > 5) in [0, 1]", V3, T),  # map[int] lookup of nil finds 0
    ("findIndex(result, # > 1) in [0, 1]", V3, T),
    ("findIndex(result, # > 2) in [0, 1]", V3, F),
    ("get(1..3, 5) == 0", None, RERR),
    ("get(split('a', ','), 5) == 'x'", None, RERR),
    ("asInt('1') == findIndex(result, # > 5)", V3, F),  # asInt is int64: plain ==
    ("findLast(result, # < 3) == 2", V3, T),
    ("findLastIndex(result, # < 3) == 1", V3, T),
    ("filter(result, # > 5)[0] > 0", V3, RERR),
    ("filter(result, # > 1)[-1] == 3", V3, T),
    ("first(filter(result, # > 5)) == nil", V3, T),
    ("first(result) == 1 && last(result) == 3", V3, T),
    ("first([]) == nil && last([]) == nil", None, T),
    ("first(result)", 1.0, CERR),
    ("sum(result) == 6", V3, T),
    ("sum(result, # * 2) == 12", V3, T),
    ("sum([]) == 0", None, T),
    ("sum([0.1, 0.2, 0.3]) == 0.6000000000000001", None, T),  # accumulated left to right
    ("sum(['a', 'b']) == 'ab'", None, RERR),
    ("sortBy([3, 1, 2], #) == [1, 2, 3]", None, T),
    ("sortBy([3, 1, 2], #, 'desc') == [3, 2, 1]", None, T),
    ("sortBy([3, 1, 2], #, 'up') == [1]", None, RERR),
    ("groupBy([1, 2, 3], # % 2 == 0)[true] == [2]", None, T),
    ("sort([3, 1, 2]) == [1, 2, 3]", None, T),
    ("sort(result, 'desc') == [3, 2, 1]", V3, T),
    ("uniq([1, 1, 2]) == [1, 2]", None, T),
    ("concat([1], [2, 3]) == [1, 2, 3]", None, T),
    ("flatten([1, [2, [3]]]) == [1, 2, 3]", None, T),
    ("reverse(result) == [3, 2, 1]", V3, T),
    ("take(result, 2) == [1, 2]", V3, T),
    ("keys(result) == ['a']", {"a": 1}, T),
    ("values(result) == [1]", {"a": 1}, T),
    ("get(result, 'a') == 1 && get(result, 'b') == nil", {"a": 1}, T),
    ("get(result, 5) == nil", V3, T),
    ("get(result, -1) == 3", V3, T),
    ("get(result, 'x')", V3, CERR),
    # ---- aggregates
    ("max(result) == 3 && min(result) == 1", V3, T),
    ("max(result) < 100", vec(11, 12, 13, 14), T),
    ("max(1, 2.5) == 2.5", None, T),
    ("max([]) == nil", None, T),
    ("max(result) == 5", 5.0, T),
    ("max('a') == 'a'", None, CERR),
    ("max(result.s) == 'abc'", {"s": "abc"}, T),  # a lone non-number argument is returned
    ("isNaN(max(result))", vec(NAN, 1), T),
    ("max(result) == 1", vec(1, NAN), T),
    ("mean(result) == 2", V3, T),
    ("mean([]) == 0", None, T),
    ("mean(1, 2) == 1.5", None, T),
    ("mean(1, 2) == 1", None, RERR),  # the checker types mean(int, ...) as int: OpEqualInt
    ("max(1, 2.5) == 2", None, RERR),
    ("mean(1, 2) < 2", None, T),
    ("median([3, 1, 2]) == 2", None, T),
    ("median([1, 2, 3, 4]) == 2.5", None, T),
    ("abs(result[0] - result[1]) < 0.1", vec(0.5, 0.55), T),
    ("abs(-1.5) == 1.5 && abs(-2) == 2", None, T),
    ("ceil(1.2) == 2 && floor(-1.2) == -2", None, T),
    ("round(2.5) == 3 && round(-2.5) == -3 && round(2.4) == 2", None, T),  # half away from zero
    ("ceil(1) == 1", None, T),
    ("round('1')", None, CERR),
    # ---- conversions
    ("int(2.9) == 2 && int(-2.9) == -2", None, T),
    ("int('42') == 42", None, T),
    ("int('4.2') == 4", None, RERR),
    ("int(' 42') == 42", None, RERR),
    ("int(result) == 5", 5.7, T),
    ("int(true) == 1", None, CERR),
    ("float('1.5') == 1.5", None, T),
    ("float('abc') == 0", None, RERR),
    ("float(2) / 4 == 0.5", None, T),
    ("string(1.5) == '1.5'", None, T),
    ("string(2.0) == '2'", None, T),
    ("string(1e6) == '1e+06'", None, T),  # fmt's %v
    ("string(123456.0) == '123456'", None, T),
    ("string(0.000001) == '1e-06'", None, T),
    ("string(true) == 'true' && string(nil) == '<nil>'", None, T),
    ("string([1, 'a']) == '[1 a]'", None, T),
    ("string(result) == '[1 2.5]'", vec(1, 2.5), T),
    ("string({b: 2, a: 1}) == 'map[a:1 b:2]'", None, T),
    ("string(result) == '5'", 5.0, T),
    ("type(result) == 'array' && type(result[0]) == 'float'", V3, T),
    ("type(1) == 'int' && type(nil) == 'nil' && type({}) == 'map'", None, T),
    ("toJSON({a: 1, b: [true, nil]}) contains '\"b\": [\\n'", None, T),
    ("fromJSON('{\"a\": 1}').a == 1", None, T),
    ("toBase64('hi') == 'aGk=' && fromBase64('aGk=') == 'hi'", None, T),
    # ---- strings
    ("trim('  x  ') == 'x' && trim('__x__', '_') == 'x'", None, T),
    ("trimPrefix('foobar', 'foo') == 'bar' && trimSuffix('foobar', 'bar') == 'foo'", None, T),
    ("upper('abc') == 'ABC' && lower('ABC') == 'abc'", None, T),
    ("split('a,b,c', ',') == ['a', 'b', 'c']", None, T),
    ("split('a,b,c', ',', 2) == ['a', 'b,c']", None, T),
    ("split('abc', '') == ['a', 'b', 'c']", None, T),
    ("splitAfter('a,b', ',') == ['a,', 'b']", None, T),
    ("replace('aaa', 'a', 'b') == 'bbb' && replace('aaa', 'a', 'b', 2) == 'bba'", None, T),
    ("repeat('ab', 3) == 'ababab'", None, T),
    ("repeat('a', -1) == ''", None, RERR),
    ("join(['a', 'b'], '-') == 'a-b' && join(split('a b', ' '), ',') == 'a,b'", None, T),
    ("join(result)", V3, CERR),
    ("indexOf('hello', 'l') == 2 && lastIndexOf('hello', 'l') == 3 && indexOf('hello', 'z') == -1", None, T),
    ("hasPrefix('hello', 'he') && hasSuffix('hello', 'lo')", None, T),
    ("upper(1) == '1'", None, CERR),
    ("upper(result.n) == '1'", {"n": 1}, RERR),
    ("upper(result.s) == 'AB'", {"s": "ab"}, T),
    ("upper(nil)", None, CERR),
    ("'foobar' contains 'oba'", None, T),
    ("'foobar' startsWith 'foo' && 'foobar' endsWith 'bar'", None, T),
    ("'foobar' not contains 'x'", None, T),
    ("'foobar' not startsWith 'bar'", None, T),
    ("'a' + 'b' == 'ab'", None, T),
    ("'abc' < 'abd' && 'b' > 'a'", None, T),
    ("'a' * 2", None, CERR),
    ("'a' + 1", None, CERR),
    ("1 contains 'a'", None, CERR),
    ("result contains 'OK'", "status: OK", T),
    ("result.s contains 'x'", {}, F),  # nil on either side is false
    ("result.s startsWith 'x'", {"s": None}, F),
    ("result.n contains 'x'", {"n": 1}, RERR),
    ("result contains 'x'", V3, CERR),
    # ---- matches (Go RE2)
    ("'abc' matches '^a.c$'", None, T),
    ("'abc' matches 'b'", None, T),  # unanchored
    ("'ABC' matches '(?i)abc'", None, T),
    ("'abc\\n' matches 'abc$'", None, F),  # $ is end of text
    ("'a\\nb' matches '(?m)^b$'", None, T),
    ("'a1' matches '\\\\d'", None, T),
    ("'x' matches '[[:alpha:]]'", None, T),
    ("'x' matches '[+'", None, CERR),  # a literal pattern is compiled by the checker
    ("result.s matches '['", {"s": "x"}, CERR),
    ("result.s matches result.p", {"s": "x", "p": "["}, RERR),
    ("result.missing matches 'a'", {}, F),
    ("'abc' not matches 'z'", None, T),
    ("'foo' matches '(?=o)'", None, CERR),  # no look-around in RE2
    ("'aa' matches '(a)\\\\1'", None, CERR),  # no back-references
    ("result matches '^ok'", "ok then", T),
    ("result matches 'x'", 1.0, CERR),
    ("1 matches 'x'", None, CERR),
    # ---- in / not in
    ("2 in result", V3, T),
    ("5 not in result", V3, T),
    ("'a' in result", V3, CERR),
    ("'a' in ['a', 'b']", None, T),
    ("'c' not in ['a', 'b']", None, T),
    ("42 in ['a', 'b']", None, CERR),
    ("1 in [1, 2] && 1.0 in [1, 2]", None, T),
    ("1 in [1.5] || 1 not in [1]", None, F),
    ("result[0] in [1, 2]", V3, T),
    ("result.s in ['a', 'b']", {"s": "a"}, T),
    ("result.s in ['a', 'b']", {"s": 1}, RERR),  # the optimizer's map[string] lookup
    ("result.s in ['a', 'b']", {}, F),
    ("result.s in ['a', 1]", {"s": 1}, T),  # not all strings: element-wise ==
    ("nil in ['', 'a']", None, T),  # nil looks up the zero string
    ("result.s not in ['x']", {"s": "a"}, T),
    ("'a' in result", {"a": 1}, T),
    ("'b' in result", {"a": 1}, F),
    ("1 in result", {"a": 1}, CERR),
    ("result.k in result", {"k": 1}, RERR),
    ("'x' in {x: 1}", None, T),
    ("1 in 'abc'", None, CERR),
    ("result.s in 'abc'", {"s": "a"}, RERR),  # in is not defined on strings
    ("nil in result", V3, F),
    ("1 in result.missing", {}, F),
    # ---- Argo's isNaN isInf isNil default asInt asFloat
    ("isNaN(result)", NAN, T),
    ("isNaN(result)", 1.0, F),
    ("isNaN(result[0])", vec(NAN), T),
    ("isNaN(result)", V3, CERR),
    ("isNaN(1)", None, F),  # int literals become float64 for a float64 parameter
    ("isNaN(1 + 2 * 3)", None, F),
    ("isNaN(len(result))", V3, RERR),  # ... but a computed int does not
    ("isNaN(len(result) + 1)", V3, F),  # the literal 1 became 1.0, int + float is float
    ("isNaN(5 % 2)", None, RERR),
    ("isNaN(0 / 0)", None, T),
    ("isNaN(result.x)", {"x": 1.5}, F),
    ("isNaN(result.x)", {}, RERR),
    ("isNaN(nil)", None, CERR),
    ("isNaN('1')", None, CERR),
    ("isNaN()", None, CERR),
    ("isNaN(1, 2)", None, CERR),
    ("isNaN(asInt('1'))", None, RERR),
    ("isInf(result)", INF, T),
    ("isInf(result)", -INF, T),
    ("isInf(result)", 1.0, F),
    ("isInf(1 / 0)", None, T),
    ("isInf(result[0])", vec(-INF), T),
    ("isNil(result)", None, T),
    ("isNil(result)", [], F),
    ("isNil(result)", 0.0, F),
    ("isNil(result)", {}, F),
    ("isNil(result.foo)", {"a": 1}, F),  # the argument is ignored
    ("isNil(nil)", 1.0, F),
    ("isNil(1)", None, T),
    ("isNil()", None, CERR),
    ("default(result, 5) == 5", None, T),
    ("default(result, 5) == 5", 3.0, F),
    ("default(result, 0) > 1", 5.0, T),
    ("default(result, 0) > 1", None, F),
    ("default(result, 0) > 1", vec(2), RERR),  # returns the whole vector
    ("default(result.foo, 5) == 5", {"a": 1}, F),  # returns the whole map
    ("default(result.foo, 5) == result", {"a": 1}, T),
    ("default(1)", None, CERR),
    ("asInt('42') == 42", None, T),
    ("asInt('+7') == 7 && asInt('-7') == -7", None, T),
    ("asInt('4.2') == 4", None, RERR),
    ("asInt(' 7') == 7", None, RERR),
    ("asInt('1e3') == 1000", None, RERR),
    ("asInt('99999999999999999999') > 0", None, RERR),
    ("asInt(4.9) == 4 && asInt(-4.9) == -4", None, T),
    ("asInt(result) == 5", 5.7, T),
    ("asInt(result.s) == 12", {"s": "12"}, T),
    ("asInt(true) == 1", None, RERR),
    ("asInt(nil) == 0", None, RERR),
    ("asInt(result) == 1", None, RERR),
    ("asInt(result) == 1", V3, RERR),
    ("asInt(1, 2)", None, CERR),
    ("asInt('8') % 3 == 2", None, T),
    ("asInt('8') % 0 == 0", None, RERR),  # integer divide by zero at run time
    ("asFloat('1.5') == 1.5", None, T),
    ("asFloat('NotANum') == 0", None, RERR),
    ("isNaN(asFloat('NaN'))", None, T),
    ("asFloat('1e3') == 1000", None, T),
    ("asFloat('inf') > 0 && asFloat('-Inf') < 0", None, T),
    ("asFloat('0x1p-2') == 0.25", None, T),
    ("asFloat('1_000.5') == 1000.5", None, T),
    ("asFloat(' 1') == 1", None, RERR),
    ("asFloat('1e400') > 0", None, RERR),  # out of range
    ("asFloat(3) == 3", None, T),
    ("asFloat(result) == 1.1", "1.1", T),
    ("asFloat(result) > 0", vec(1), RERR),
    ("asFloat(nil) == 0", None, RERR),
    # ---- int vs float
    ("1 / 2 == 0.5", None, T),  # / is always float
    ("4 / 2 == 2", None, T),
    ("7 % 2 == 1 && -7 % 2 == -1", None, T),  # Go truncates toward zero
    ("7.0 % 2 == 1", None, CERR),
    ("result[0] % 2 == 0", V3, CERR),
    ("1 + 1.5 == 2.5 && 3 * 0.5 == 1.5", None, T),
    ("2 ** 0.5 > 1.41", None, T),
    ("2 ** -1 == 0.5", None, T),
    ("0 ** -1 > 1e308", None, T),
    ("isNaN((-8) ** (1 / 3))", None, T),
    ("5 / 0 > 1e308 && -5 / 0 < -1e308", None, T),
    ("result[0] / 0 > 1e308", vec(1), T),
    ("result[0] / result[1] > 0.5", vec(3, 4), T),
    ("result[0] + 1 == 2", vec(1), T),
    ("result + 1 == 2", vec(1), CERR),
    ("result * 2 == 10", 5.0, T),
    ("-result < 0", 5.0, T),
    ("-result < 0", "5", CERR),
    ("+'a' == 'a'", None, CERR),
    ("1 + true", None, CERR),
    ("1 - nil", None, CERR),
    # ---- NaN and Inf
    ("result[0] == result[0]", vec(NAN), F),
    ("result[0] != result[0]", vec(NAN), T),
    ("result == result", vec(NAN), F),
    ("result[0] >= 0", vec(NAN), F),
    ("!(result[0] < 1)", vec(NAN), T),
    ("result[0] in result", vec(NAN), F),
    ("0 / 0 == 0 / 0", None, F),
    ("result > 0 && result == result", INF, T),
    ("result < 0", -INF, T),
    ("result - result == 0", INF, F),
    # ---- equality across types
    ("1 == 1.0", None, T),
    ("'1' == 1", None, CERR),
    ("true == 1", None, CERR),
    ("nil == false", None, F),
    ("nil == 0", None, F),
    ("result == nil", V3, F),
    ("result == []", [], T),
    ("result == [1, 2]", vec(1, 2), T),
    ("result == [1, 2]", vec(1, 3), F),
    ("result == 'x'", V3, CERR),
    ("result == 1", V3, CERR),
    ("[1, 2] == [1.0, 2.0]", None, T),
    ("[1, 'a'] == [1, 'a']", None, T),
    ("[1] == [[1]]", None, F),
    ("{a: 1} == {a: 1}", None, T),
    ("result == {a: 1}", {"a": 1}, F),  # maps compare deeply by type: float64 1 != int 1
    ("result == {a: 1.0}", {"a": 1}, T),
    ("'a' != nil", None, T),
    ("result == 'true'", True, CERR),
    ("result == true", "true", CERR),
    ("result.a == result.b", {"a": [1, 2], "b": [1, 2]}, T),
    ("date('2021-01-01') == date('2021-01-01T00:00:00Z')", None, T),
    # ---- time and duration
    ("now() > date('2020-01-01')", None, T),
    ("date('2021-01-02') > date('2021-01-01')", None, T),
    ("date('2021-01-01') + duration('24h') == date('2021-01-02')", None, T),
    ("date('2021-01-02') - date('2021-01-01') == duration('24h')", None, T),
    ("date('2021-03-04 05:06:07') < date('2021-03-04T05:06:08Z')", None, T),
    ("date('04/03/2021', '02/01/2006') == date('2021-03-04')", None, T),
    ("date('not a date') > now()", None, RERR),
    ("duration('1h') > duration('30m') && duration('1h') == duration('60m')", None, T),
    ("duration('1d') > duration('1h')", None, RERR),
    ("duration('1h') * 2 == duration('2h') && 2 * duration('1h') == duration('2h')", None, T),
    ("duration('90m').Hours() == 1.5", None, T),
    ("now().Year() >= 2024", None, T),
    ("now() - duration('1h') < now()", None, T),
    ("now() > 1", None, CERR),
    ("duration('1h') / 2", None, CERR),
    ("string(duration('90s')) == '1m30s'", None, T),
    # ---- syntax errors
    ("result[0] >", vec(1), CERR),
    ("1 +* 2", None, CERR),
    ("(1 + 2", None, CERR),
    ("[1, 2", None, CERR),
    ("{a: 1", None, CERR),
    ("a not b", None, CERR),
    ("1 = 1", None, CERR),
    ("1 & 2", None, CERR),
    ("@", None, CERR),
    ("true[0]", None, CERR),
    ("nil.a", None, CERR),
    ("len", None, RERR),  # a builtin's name compiles, but is nil in Argo's environment
    ("len == nil", None, T),
    ("isNaN == nil", None, F),  # Argo's functions are in the environment
    ("result.d == null", {"d": None}, CERR),  # nil, not null
    ("True", None, CERR),
    ("1 === 1", None, CERR),
    ("1 <> 2", None, CERR),
    ("result[0] => 1", vec(1), CERR),
    ("foo(1)", None, CERR),
    ("result()", V3, CERR),
    ("result()", None, CERR),
    ("len()", None, CERR),
    ("len(1, 2)", None, CERR),
    ("all(result)", V3, CERR),
    ("{a: 1, , b: 2}", None, CERR),
    ("[1, 2,] == [1, 2]", None, T),  # trailing commas are allowed
    ("{a: 1,} == {a: 1}", None, T),
    ("len([1,],) == 1", None, T),
    ("{1: 'x'}['1'] == 'x'", None, T),  # number keys are strings
    ("{(1 + 1): 'x'}", None, RERR),  # a computed key must be a string
]


def _kind(expected: Any) -> str:
    return expected if isinstance(expected, str) else "bool"


@pytest.mark.parametrize(("expr", "result", "expected"), CASES,
                         ids=[f"{i:03d}:{c[0][:60]}" for i, c in enumerate(CASES)])
def test_condition(expr: str, result: Any, expected: Any) -> None:
    if expected == CERR:
        with pytest.raises(ExpressionError):
            compile_for(expr, result)
        with pytest.raises(ExpressionError):
            evaluate_condition(expr, result)
        return
    compile_for(expr, result)  # compiles
    if expected == RERR:
        with pytest.raises(ExpressionError):
            evaluate_condition(expr, result)
        return
    assert evaluate_condition(expr, result) is expected


def test_table_is_unique() -> None:
    seen = set()
    for expr, result, _ in CASES:
        key = (expr, repr(result))
        assert key not in seen, key
        seen.add(key)


# ---- the EvalCondition cases of Argo's utils/evaluate/evaluate_test.go

APDEX = {"service_apdex": {"label": None, "values": {"values": [2.0, 2.0]}}}


@pytest.mark.parametrize(("result", "expr", "expected"), [
    (APDEX, "all(result.service_apdex.values.values, {# > 1})", T),
    (vec(2, 2), "2 in result", T),
    (5.0, "result > 1", T),
    (True, "result.Name() == 'hi'", CERR),
    ("1.1", "asInt(result) == 1.1", RERR),
    ("1", "asInt(result) == 1", T),
    (1, "asInt(result) == 1", T),
    (1.123, "asInt(result) == 1", T),
    ("NotANum", "asFloat(result) == 1.1", RERR),
    ("1.1", 'asFloat(result) == "1.1"', CERR),
    ("1.1", "asFloat(result) == 1.1", T),
    ("1.1", "asFloat(result) >= 1.1", T),
    ("1.1", "asFloat(result) <= 1.1", T),
    (1.1, "asFloat(result) == 1.1", T),
    (1, "asFloat(result) == 1", T),
    (1, "asFloat(result) >= 1", T),
    (True, "result == true", T),
    (True, "result == false", F),
    (True, "1", RERR),
    (True, "invalidVariable", CERR),
    (True, "a == true", CERR),
    (None, "result[0] >= 0.95", CERR),
    ([], "result[0] >= 0.95", RERR),
])
def test_argo_go_tests(result: Any, expr: str, expected: Any) -> None:
    test_condition(expr, result, expected)


def test_argo_eval_time() -> None:
    from datetime import UTC, datetime

    got = evaluate('date("2023-08-14 00:00:00", "2006-01-02 15:04:05", "UTC") - duration("1h")', {})
    assert got == datetime(2023, 8, 13, 23, 0, tzinfo=UTC)
    with pytest.raises(ExpressionError):
        evaluate("now() -- ?", {})


# ---- values (evaluate), where the outcome is not a bool

VALUES: list[tuple[str, Any]] = [
    ("1", 1),
    ("-.5", -0.5),
    ("8 % 3", 2),
    ("2 ** 8", 256.0),
    ("1 / 2", 0.5),
    ("1 + 2.0", 3.0),
    ("'hello' + ' ' + 'world'", "hello world"),
    ("(true ? 0+1 : 2+3) + (false ? -1 : -2)", -1),
    ("filter(1..9, {# > 7})", [8, 9]),
    ("map(1..3, {# * #})", [1, 4, 9]),
    ("count(1..30, {# % 3 == 0})", 10),
    ("4..0", []),
    ("[1, 2, 3]?.[0]", 1),
    ("if 1 > 2 { 333 * 2 + 1 } else { 444 }", 444),
    ("1; 2; 3", 3),
    ("map(1..2, let x = #; map(2..3, let y = #; x + y))", [[3, 4], [4, 5]]),
    ("findLast(1..9, # % 2 == 0)", 8),
    ("findLastIndex(1..9, # % 2 == 0)", 7),
    ("bitnot(10)", -11),
    ("bitushr(-100, 5)", 576460752303423484),
    ("{foo: 0, bar: 1}", {"foo": 0, "bar": 1}),
    ("split('a,b', ',')", ["a", "b"]),
    ("string(100000000.0)", "1e+08"),
    ("string(0.1 + 0.2)", "0.30000000000000004"),
    ("string(-0.0)", "-0"),
    ("int(-0.5)", 0),
    ("toJSON([1, 1.5, 'x'])", '[\n  1,\n  1.5,\n  "x"\n]'),
    ("9223372036854775807 * 2", -2),
    ("groupBy([1, 2, 3], # % 2)", {1: [1, 3], 0: [2]}),
    ("reduce(1..4, #acc * #, 1)", 24),
    ("sortBy([{v: 2}, {v: 1}], .v)", [{"v": 1}, {"v": 2}]),
]


@pytest.mark.parametrize(("expr", "expected"), VALUES, ids=[v[0] for v in VALUES])
def test_value(expr: str, expected: Any) -> None:
    got = evaluate(expr)
    assert got == expected
    assert type(got) is type(expected)


def test_now_is_injectable() -> None:
    from datetime import UTC, datetime

    now = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert evaluate("now() - duration('1h')", now=now) == datetime(2024, 5, 6, 6, 8, 9, tzinfo=UTC)


def test_core_reads_no_clock() -> None:
    from datetime import UTC, datetime

    from analyzer.core.expressions import evaluate_condition as core_evaluate_condition

    with pytest.raises(ExpressionError, match="no evaluation time"):
        core_evaluate_condition("now() > date('2020-01-01')", None)
    when = datetime(2019, 1, 1, tzinfo=UTC)
    assert core_evaluate_condition("now() < date('2020-01-01')", None, now=when) is True


# ---- error messages


@pytest.mark.parametrize(("expr", "result", "message", "column"), [
    ("result[0] >", vec(1), "unexpected token EOF", 12),  # just past the end
    ("1 +* 2", None, 'unexpected token Operator("*")', 4),
    ("a not b", None, 'unexpected token Identifier("b")', 7),
    ("'abc", None, "literal not terminated", 5),
    ("@", None, "unrecognized character: U+0040 '@'", 1),
    ("1 ?? 2 + 3", None, "Operator (+) and coalesce expressions (??) cannot be mixed. Wrap either by parentheses.", 8),
    ("result > 1", vec(1), "invalid operation: > (mismatched types []float64 and int)", 8),
    ("result < 5", None, "invalid operation: < (mismatched types unknown and int)", 8),
    ("foo == 1", None, "unknown name foo", 1),
    ("result.a", None, "type nil has no field a", 8),
])
def test_compile_error_message_and_column(expr: str, result: Any, message: str, column: int) -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate_condition(expr, result)
    assert info.value.message == message
    assert info.value.column == column
    assert f"column {column}" in str(info.value)


@pytest.mark.parametrize(("expr", "result", "message"), [
    ("result", vec(1), "expected bool, but got []float64"),
    ("result.ok", {"ok": "yes"}, "expected bool, but got string"),
    ("result.x", {}, "expected bool, but got <nil>"),
    ("1", None, "expected bool, but got int"),
    ("result[1] > 0", vec(1), "index out of range: 1 (array length is 1)"),
    ("result[-2] > 0", vec(1), "index out of range: -1 (array length is 1)"),
    ("result.a.b == 1", {"a": None}, "cannot fetch b from <nil>"),
    ("asInt('1.1') == 1", None, 'strconv.ParseInt: parsing "1.1": invalid syntax'),
    ("asFloat('NotANum') == 1", None, 'strconv.ParseFloat: parsing "NotANum": invalid syntax'),
    ("asInt(true) == 1", None, "asInt() not supported on bool true"),
    ("isNaN(result.x)", {}, "interface conversion: interface {} is nil, not float64"),
])
def test_runtime_error_message(expr: str, result: Any, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate_condition(expr, result)
    assert info.value.message == message


def test_errors_are_cached_but_fresh() -> None:
    for _ in range(3):
        with pytest.raises(ExpressionError) as info:
            evaluate_condition("result >", vec(1))
        assert info.value.__traceback__ is not None
        assert info.value.message == "unexpected token EOF"


def test_check_without_result() -> None:
    check("result.a.b > 1 && all(result.c, # > 0)")  # unknown result type: no type errors
    with pytest.raises(ExpressionError):
        check("result >")
    with pytest.raises(ExpressionError):
        check("unknownName > 1")


def test_result_is_not_modified() -> None:
    result = {"a": [1, 2], "b": {"c": 3}}
    assert evaluate_condition("result.a[1] == 2 && result.b.c == 3", result)
    assert result == {"a": [1, 2], "b": {"c": 3}}
    assert type(result["a"][0]) is int  # type: ignore[index]


def test_list_types() -> None:
    assert evaluate_condition("result[1] == 2", (1.0, 2.0))
    assert evaluate_condition("result[0] == 'x' || true", [1, "a"])  # []interface {}: no compile-time check
    for numbers in ([1.0, 2.0], [1, 2], [1, 2.5], []):  # []float64
        with pytest.raises(ExpressionError):
            evaluate_condition("result[0] == 'x' || true", numbers)
    assert evaluate_condition("result[0] + 1 == 2 && result == [1, 2]", [1, 2])

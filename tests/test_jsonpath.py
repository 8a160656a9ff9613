"""client-go JSONPath port: the argo-semantics.md §13 table plus the wider syntax."""

from __future__ import annotations

import json
from typing import Any

import pytest

from analyzer.providers.jsonpath import INVALID, JsonPathError, parse


def go_decode(body: str) -> Any:
    """``json.Unmarshal`` into ``any``: Argo hands the evaluator float64 numbers."""
    return json.loads(body, parse_int=float)


def first(template: str, body: str) -> list[Any]:
    return parse(template).first_matches(go_decode(body))


def error_of(template: str, body: str) -> str:
    with pytest.raises(JsonPathError) as info:
        parse(template).find_results(go_decode(body))
    return str(info.value)


# --- argo-semantics.md §13, one case per table row ---------------------------------------------


@pytest.mark.parametrize(
    ("template", "body", "expected"),
    [
        ("{$}", '{"a": 1, "d": null}', {"a": 1.0, "d": None}),
        ("{$.key[0].key2.value}", '{"key":[{"key2":{"value":"1"}}]}', "1"),
        ("{.status}", '{"status":"ok"}', "ok"),
        ("{$.items[*].value}", '{"items":[{"value":1},{"value":2}]}', 1.0),
        ("{$.a}{$.b}", '{"a":1,"b":2}', 1.0),
        ("{$.items}", '{"items":[]}', []),
        ("{$.d}", '{"d": null}', None),
        ("$.a", '{"a":1}', "$.a"),
        ("{$.a}", '{"a": 12345678901234567890}', 12345678901234567890.0),
    ],
)
def test_table_rows_with_a_value(template: str, body: str, expected: Any) -> None:
    matches = first(template, body)
    assert matches and matches[0] == expected
    assert type(matches[0]) is type(expected)


@pytest.mark.parametrize(
    ("template", "body"),
    [
        ("{$.items[*].value}", '{"items":[]}'),
        ('{$.items[?(@.name=="x")].v}', '{"items":[{"name":"y","v":1}]}'),
    ],
)
def test_table_rows_without_a_value(template: str, body: str) -> None:
    assert first(template, body) == []


@pytest.mark.parametrize(
    ("template", "body", "message"),
    [
        ("{$.missing}", '{"a":1}', "missing is not found"),
        ("{$.a[5]}", '{"a":[1]}', "array index out of bounds: index 5, length 1"),
    ],
)
def test_table_rows_not_found(template: str, body: str, message: str) -> None:
    assert error_of(template, body) == message


def test_table_row_unclosed_action_fails_at_parse_time() -> None:
    with pytest.raises(JsonPathError, match="^unclosed action$"):
        parse("{$.a")


def test_all_segments_are_evaluated_and_reported() -> None:
    path = parse("{$.a}{$.b}")
    assert path.find_results(go_decode('{"a":1,"b":2}')) == [[1.0], [2.0]]
    assert path.first_matches(go_decode('{"a":1,"b":2}')) == [1.0]
    # An error in a later segment still fails the whole path, as in FindResults.
    assert error_of("{$.a}{$.nope}", '{"a":1}') == "nope is not found"
    # Argo takes the first value of the first segment that matched anything.
    assert first("{$.items[*]}{$.b}", '{"items":[],"b":2}') == [2.0]


def test_text_around_actions_is_its_own_segment() -> None:
    assert parse("value: {.a}").find_results({"a": 1.0}) == [["value: "], [1.0]]
    assert parse("no braces at all").find_results({}) == [["no braces at all"]]
    assert parse("").find_results({}) == []


def test_null_document_is_the_invalid_value() -> None:
    assert parse("{$}").first_matches(None) == [INVALID]
    assert error_of("{$.a}", "null") == "a is not found"


def test_first_matches_is_empty_when_nothing_matched() -> None:
    assert parse("{$.items[*]}").first_matches({"items": []}) == []


# --- field access ---------------------------------------------------------------------------------


def test_dotted_fields_dollar_optional_and_at_root() -> None:
    doc = go_decode('{"a":{"b":{"c":"x"}}}')
    for template in ("{$.a.b.c}", "{.a.b.c}", "{@.a.b.c}", "{ .a.b.c }"):
        assert parse(template).first_matches(doc) == ["x"], template


def test_field_names_keep_dashes_slashes_and_escaped_dots() -> None:
    doc = {"labels": {"k8s-app": "a", "web/html": "b", "app.kubernetes.io/name": "c"}}
    assert parse("{.labels.k8s-app}").first_matches(doc) == ["a"]
    assert parse("{.labels.web/html}").first_matches(doc) == ["b"]
    assert parse(r"{.labels.app\.kubernetes\.io/name}").first_matches(doc) == ["c"]


def test_quoted_keys() -> None:
    doc = {"a-b": 1.0, "a": {"b": 2.0}, "x y": 3.0, "app.kubernetes.io/name": "c"}
    assert parse("{$['a-b']}").first_matches(doc) == [1.0]
    assert parse("{['a']['b']}").first_matches(doc) == [2.0]
    # client-go re-parses the key as `.key`: dots split it, unless escaped.
    assert parse(r"{['app\.kubernetes\.io/name']}").first_matches(doc) == ["c"]
    with pytest.raises(JsonPathError, match="^app is not found$"):
        parse("{['app.kubernetes.io/name']}").find_results(doc)
    with pytest.raises(JsonPathError, match='^invalid array index "a-b"$'):
        parse('{["a-b"]}')


def test_field_on_non_objects_is_not_found() -> None:
    assert error_of("{.a.b}", '{"a":[1]}') == "b is not found"
    assert error_of("{.a.b}", '{"a":"text"}') == "b is not found"
    assert error_of("{.a.b}", '{"a":null}') == "b is not found"


# --- array indexes and slices ---------------------------------------------------------------------

ARRAY = '{"a":[10,11,12,13]}'


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        ("[0]", [10.0]),
        ("[3]", [13.0]),
        ("[-1]", [13.0]),
        ("[-4]", [10.0]),
        ("[1:3]", [11.0, 12.0]),
        ("[1:]", [11.0, 12.0, 13.0]),
        ("[:2]", [10.0, 11.0]),
        ("[-2:]", [12.0, 13.0]),
        ("[0:-1]", [10.0, 11.0, 12.0]),
        ("[::2]", [10.0, 12.0]),
        ("[1::2]", [11.0, 13.0]),
        ("[*]", [10.0, 11.0, 12.0, 13.0]),
        ("[1:1]", []),
    ],
)
def test_indexes_and_slices(index: str, expected: list[float]) -> None:
    assert parse("{.a" + index + "}").find_results(go_decode(ARRAY)) == [expected]


@pytest.mark.parametrize(
    ("index", "message"),
    [
        ("[4]", "array index out of bounds: index 4, length 4"),
        ("[-5]", "array index out of bounds: index -1, length 4"),
        ("[0:9]", "array index out of bounds: index 8, length 4"),
        ("[3:1]", "starting index 3 is greater than ending index 1"),
        ("[::0]", "step must be > 0"),
    ],
)
def test_index_errors(index: str, message: str) -> None:
    assert error_of("{.a" + index + "}", ARRAY) == message


def test_index_on_empty_array_and_non_arrays() -> None:
    assert error_of("{.a[0]}", '{"a":[]}') == "array index out of bounds: index 0, length 0"
    assert error_of("{.a[-1]}", '{"a":[]}') == "array index out of bounds: index -1, length 0"
    assert error_of("{.a[0]}", '{"a":{"b":1}}') == "map[string]interface {} is not array or slice"
    assert error_of("{.a[0]}", '{"a":"text"}') == "string is not array or slice"
    assert error_of("{.a[0]}", '{"a":1}') == "float64 is not array or slice"
    assert first("{.a[0]}", '{"a":null}') == []  # nil is skipped, not an error


def test_union() -> None:
    assert first("{.a[0,2]}", ARRAY) == [10.0, 12.0]
    assert first("{.a[0, -1]}", ARRAY) == [10.0, 13.0]
    assert first("{$['x','y']}", '{"x":1,"y":2}') == [1.0, 2.0]
    assert error_of("{$['x','z']}", '{"x":1,"y":2}') == "z is not found"


# --- wildcards and recursive descent --------------------------------------------------------------


def test_wildcards() -> None:
    body = '{"items":[{"v":1},{"v":2},{"w":3}],"m":{"x":1,"y":"s"}}'
    assert first("{.items[*].v}", body) == [1.0, 2.0]
    assert first("{.m.*}", body) == [1.0, "s"]  # document order (Go: random map order)
    assert first("{.items.*}", body) == [{"v": 1.0}, {"v": 2.0}, {"w": 3.0}]
    assert first("{.items[*].*}", body) == [1.0, 2.0, 3.0]


def test_recursive_descent() -> None:
    body = '{"a":[{"v":1},{"b":{"v":2}}],"v":0,"c":{"d":[{"v":3}]}}'
    # Pre-order over containers (the root first), then `.v` on each of them.
    assert first("{..v}", body) == [0.0, 1.0, 2.0, 3.0]
    assert first("{$..v}", body) == [0.0, 1.0, 2.0, 3.0]
    assert first("{$..d[0].v}", body) == [3.0]
    assert error_of("{..nope}", body) == "nope is not found"
    # `..` alone yields every container (not the scalars), outermost first.
    assert parse("{..}").first_matches([1.0, 2.0]) == [[1.0, 2.0]]
    with pytest.raises(JsonPathError, match="^invalid multiple recursive descent$"):
        parse("{.....v}")


# --- filters -----------------------------------------------------------------------------------

ITEMS = (
    '{"items":[{"name":"a","v":1,"ok":true},{"name":"b","v":2.5,"ok":false},{"name":"c","v":4,"ok":true}]}'
)


@pytest.mark.parametrize(
    ("flt", "names"),
    [
        ('@.name=="b"', ["b"]),
        ("@.name=='b'", ["b"]),
        ('@.name!="b"', ["a", "c"]),
        ('@.name < "b"', ["a"]),
        ('@.name >= "b"', ["b", "c"]),
        ("@.v>1.0", ["b", "c"]),
        ("@.v >= 2.5", ["b", "c"]),
        ("@.v<2.5", ["a"]),
        ("@.v<=2.5", ["a", "b"]),
        ("@.v==4.0", ["c"]),
        ("@.ok==true", ["a", "c"]),
        ("@.ok!=true", ["b"]),
        ("@.v==@.v", ["a", "b", "c"]),
    ],
)
def test_comparison_filters(flt: str, names: list[str]) -> None:
    assert first("{.items[?(" + flt + ")].name}", ITEMS) == names


def test_integer_literal_against_json_number_is_a_go_type_error() -> None:
    # Go decodes JSON numbers as float64 and parses `1` as int: kinds differ, so client-go refuses.
    assert error_of("{.items[?(@.v>1)].name}", ITEMS) == "incompatible types for comparison"
    assert error_of('{.items[?(@.v=="1")].name}', ITEMS) == "incompatible types for comparison"
    assert error_of("{.items[?(@.ok<true)].name}", ITEMS) == "invalid type for comparison"
    assert error_of("{.items[?(@.v<>1.0)].name}", ITEMS) == "unrecognized filter operator <>"


def test_exists_filter() -> None:
    body = '{"p":[{"id":"i1"},{"id":"i2","z":1},{"id":"i3","z":null},{"id":"i4","z":false}]}'
    assert first("{.p[?(@.z)].id}", body) == ["i2", "i3", "i4"]  # presence, not truthiness
    assert first("{.p[?(@.nope)].id}", body) == []


def test_exists_filter_counts_a_failing_index_like_go() -> None:
    # client-go's evalArray returns its input alongside the error; "exists" only looks at that.
    assert first("{.p[?(@.a[5])].id}", '{"p":[{"id":"x","a":[1]}]}') == ["x"]


def test_comparison_filter_over_item_missing_the_field_fails() -> None:
    # Argo does not set AllowMissingKeys, so the missing field is an error, not a non-match.
    assert error_of('{.p[?(@.name=="x")]}', '{"p":[{"name":"x"},{"id":2}]}') == "name is not found"


def test_filter_on_non_array() -> None:
    body = '{"m":{"b":1.5,"c":[1,"x"],"d":null,"e":1234567}}'
    assert error_of("{.m[?(@.x)]}", body) == (
        "map[b:1.5 c:[1 x] d:<nil> e:1.234567e+06] is not array or slice and cannot be filtered"
    )
    assert error_of("{.n[?(@.x)]}", '{"n":null}') == "<nil> is not array or slice and cannot be filtered"


def test_filter_with_nested_path_and_recursive_left_side() -> None:
    body = '{"items":[{"m":{"l":{"host":"h1"}},"k":"A"},{"m":{"l":{"host":"h2"}},"k":"B"}]}'
    assert first('{.items[?(@.m.l.host=="h2")].k}', body) == ["B"]
    assert first('{.items[?(@..host=="h1")].k}', body) == ["A"]


# --- range, literals and identifiers ----------------------------------------------------------------


def test_range_end() -> None:
    path = parse("{range .items[*]}{.v}{end}")
    assert path.find_results(go_decode('{"items":[{"v":1},{"v":2}]}')) == [[1.0], [2.0]]
    # client-go walks the body once on nil when the range is empty, which fails the lookup.
    with pytest.raises(JsonPathError, match="^v is not found$"):
        path.find_results(go_decode('{"items":[]}'))
    with pytest.raises(JsonPathError, match="^not in range, nothing to end$"):
        parse("{.a}{end}").find_results({"a": 1.0})


def test_literals_and_identifiers() -> None:
    assert parse('{"quoted \\"text\\""}').first_matches({}) == ['quoted "text"']
    assert parse("{'single'}").first_matches({}) == ["single"]
    assert parse("{'\\x41\\u00e9\\101'}").first_matches({}) == ["Aé" + "A"]
    assert parse("{1}").first_matches({}) == [1]
    assert parse("{1.5}").first_matches({}) == [1.5]
    assert parse("{true}").first_matches({}) == [True]
    with pytest.raises(JsonPathError, match="^unrecognized identifier items$"):
        parse("{items}").find_results({"items": []})


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{", "unclosed action"),
        ("{.a\n}", "unclosed action"),
        ("{.a[0}", "unterminated array"),
        ("{.a[x]}", "invalid array index x"),
        ("{.a[-]}", "array index - is not a number"),
        ("{.a[?(@.x}", "unterminated filter"),
        ("{.a[?(@.x)}", "unclosed array expect ]"),
        ("{'abc}", "unterminated quoted string"),
        ("{'\\q'}", "unquote string '\\q' error invalid syntax"),
        ("{#}", "unrecognized character in action: U+0023 '#'"),
        ("{1.2.3}", "cannot parse number 1.2.3"),
    ],
)
def test_parse_errors(template: str, message: str) -> None:
    with pytest.raises(JsonPathError) as info:
        parse(template)
    assert str(info.value) == message


def test_closing_brace_outside_an_action_is_text() -> None:
    assert parse("a}b").find_results({}) == [["a}b"]]

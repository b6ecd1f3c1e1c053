from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lineage_types import (
    Chain,
    Encoding,
    Explicit,
    Key,
    LineageTypeError,
    Passthrough,
    encoding_from_json,
)

ENCODINGS: list[Encoding] = [
    Passthrough(),
    Key(("carrier",)),
    Key(()),
    Key(("a", "b")),
    Explicit("mappings/op_3"),
    Chain((Key(("k",)), Explicit("t"))),
    Chain((Explicit("t1"), Explicit("t2"), Key(()))),
]

simple_encodings = st.sampled_from(
    [Passthrough(), Key(("k",)), Key(()), Explicit("t1"), Explicit("t2")]
)
encodings = st.lists(simple_encodings, max_size=4).map(Chain.of)


@pytest.mark.parametrize("encoding", ENCODINGS, ids=repr)
def test_every_encoding_round_trips_through_json_text(encoding: Encoding) -> None:
    text = json.dumps(encoding.to_json())
    back = encoding_from_json(json.loads(text))
    assert back == encoding
    assert type(back).from_json(json.loads(text)) == encoding


def test_json_forms_are_tagged_by_kind() -> None:
    assert [e.to_json()["kind"] for e in ENCODINGS] == [
        "passthrough", "key", "key", "key", "explicit", "chain", "chain",
    ]
    assert Key(("a", "b")).to_json() == {"kind": "key", "keys": ["a", "b"]}


def test_key_accepts_a_list_and_stores_a_tuple() -> None:
    assert Key(["a", "b"]) == Key(("a", "b"))  # type: ignore[arg-type]
    assert hash(Key(["a"])) == hash(Key(("a",)))  # type: ignore[arg-type]


def test_key_order_matters() -> None:
    assert Key(("a", "b")) != Key(("b", "a"))


def test_key_refuses_a_bare_string_that_would_split_into_letters() -> None:
    with pytest.raises(LineageTypeError, match="sequence of column names"):
        Key("carrier")  # type: ignore[arg-type]


def test_key_refuses_repeated_columns() -> None:
    with pytest.raises(LineageTypeError, match=re.escape("duplicate key columns `a`")):
        Key(("a", "b", "a"))


def test_explicit_refuses_an_empty_table_name() -> None:
    with pytest.raises(LineageTypeError, match="non-empty str"):
        Explicit("")


def test_chain_of_drops_passthrough_steps() -> None:
    assert Chain.of([Passthrough(), Key(("k",)), Passthrough(), Explicit("t")]) == Chain(
        (Key(("k",)), Explicit("t"))
    )


def test_chain_of_flattens_nested_chains() -> None:
    inner = Chain.of([Key(("a",)), Key(("b",))])
    assert Chain.of([Explicit("t"), inner, Key(())]) == Chain(
        (Explicit("t"), Key(("a",)), Key(("b",)), Key(()))
    )


def test_chain_of_one_step_is_that_step_and_of_none_is_passthrough() -> None:
    assert Chain.of([Passthrough(), Explicit("t")]) == Explicit("t")
    assert Chain.of([Passthrough(), Passthrough()]) == Passthrough()
    assert Chain.of([]) == Passthrough()


def test_chain_constructor_refuses_a_form_that_chain_of_would_normalize() -> None:
    nested = Chain.of([Key(()), Key(())])
    for steps in [(Key(("k",)),), (Passthrough(), Key(("k",))), (Key(()), nested)]:
        with pytest.raises(LineageTypeError, match=re.escape("build one with `Chain.of(steps)`")):
            Chain(steps)  # type: ignore[arg-type]


def test_chain_of_refuses_what_is_not_an_encoding() -> None:
    with pytest.raises(LineageTypeError, match="not an encoding: 'key'"):
        Chain.of([Key(("k",)), "key"])  # type: ignore[list-item]


def test_an_unknown_encoding_kind_is_named_with_the_known_ones() -> None:
    with pytest.raises(
        LineageTypeError,
        match=re.escape("unknown encoding kind `hash`; known kinds are "
                        "`passthrough`, `key`, `explicit`, `chain`"),
    ):
        encoding_from_json({"kind": "hash"})


def test_from_json_of_one_encoding_refuses_another_kind() -> None:
    with pytest.raises(LineageTypeError, match=re.escape("must have kind `key`, got `explicit`")):
        Key.from_json(Explicit("t").to_json())


def test_from_json_refuses_a_value_that_is_not_an_object() -> None:
    with pytest.raises(LineageTypeError, match="must be a JSON object, got list"):
        encoding_from_json([])  # type: ignore[arg-type]


@given(encodings, encodings, encodings)
def test_chaining_encodings_is_associative(a: Encoding, b: Encoding, c: Encoding) -> None:
    assert Chain.of([Chain.of([a, b]), c]) == Chain.of([a, Chain.of([b, c])])


@given(encodings)
def test_passthrough_is_neutral_on_both_sides(a: Encoding) -> None:
    assert Chain.of([Passthrough(), a]) == a == Chain.of([a, Passthrough()])

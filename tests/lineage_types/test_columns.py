from __future__ import annotations

import json
import pickle
import re

import pytest

from lineage_types import ColumnMapping, ColumnRef, LineageTypeError


def refs(*pairs: tuple[int, str]) -> frozenset[ColumnRef]:
    return frozenset(ColumnRef(i, c) for i, c in pairs)


def via_json_text(mapping: ColumnMapping) -> ColumnMapping:
    return ColumnMapping.from_json(json.loads(json.dumps(mapping.to_json())))


# The running example: select carrier, arr_delay, dep_delay + arr_delay as total_delay
# from flights; keep rows with total_delay > 15; group by carrier, avg(arr_delay).
PROJECT = ColumnMapping(
    {
        "carrier": refs((0, "carrier")),
        "arr_delay": refs((0, "arr_delay")),
        "total_delay": refs((0, "dep_delay"), (0, "arr_delay")),
    }
)
FILTER = ColumnMapping.identity(["carrier", "arr_delay", "total_delay"]).with_influencing(
    ["total_delay"]
)
AGGREGATE = ColumnMapping(
    {"carrier": refs((0, "carrier")), "avg_delay": refs((0, "arr_delay"))},
    influencing=refs((0, "carrier")),
)


def test_column_ref_round_trips_through_json_text() -> None:
    ref = ColumnRef(1, "tailnum")
    assert ColumnRef.from_json(json.loads(json.dumps(ref.to_json()))) == ref


@pytest.mark.parametrize("bad_input", [-1, True, "0", 1.0])
def test_column_ref_rejects_an_input_index_that_is_not_a_natural_number(bad_input: object) -> None:
    with pytest.raises(LineageTypeError, match="non-negative int"):
        ColumnRef(bad_input, "a")  # type: ignore[arg-type]


def test_column_ref_from_json_names_a_missing_field() -> None:
    with pytest.raises(LineageTypeError, match=re.escape("has no `column` field")):
        ColumnRef.from_json({"input": 0})


def test_output_columns_keep_the_given_order() -> None:
    assert PROJECT.output_columns == ("carrier", "arr_delay", "total_delay")


def test_mappings_with_the_same_columns_in_another_order_are_equal_and_hash_alike() -> None:
    reordered = ColumnMapping(dict(reversed(list(PROJECT.contributing.items()))))
    assert reordered == PROJECT
    assert hash(reordered) == hash(PROJECT)
    assert reordered.output_columns != PROJECT.output_columns


def test_a_mapping_cannot_be_changed_through_its_contributing_dict() -> None:
    source = {"a": {ColumnRef(0, "a")}}
    mapping = ColumnMapping(source)  # type: ignore[arg-type]
    source["b"] = {ColumnRef(0, "b")}
    assert mapping.output_columns == ("a",)
    with pytest.raises(TypeError):
        mapping.contributing["b"] = refs((0, "b"))  # type: ignore[index]


def test_a_mapping_survives_pickling() -> None:
    assert pickle.loads(pickle.dumps(AGGREGATE)) == AGGREGATE


def test_sources_of_returns_every_referenced_input_column() -> None:
    assert PROJECT.sources_of("total_delay") == refs((0, "dep_delay"), (0, "arr_delay"))


def test_sources_of_an_unknown_column_names_it_and_lists_the_outputs() -> None:
    with pytest.raises(
        LineageTypeError,
        match=re.escape("unknown output column `delay`; the output columns are "
                        "`carrier`, `arr_delay`, `total_delay`"),
    ):
        PROJECT.sources_of("delay")


def test_identity_maps_each_column_to_the_same_named_column_of_the_given_input() -> None:
    mapping = ColumnMapping.identity(["a", "b"], input=2)
    assert dict(mapping.contributing) == {"a": refs((2, "a")), "b": refs((2, "b"))}
    assert mapping.influencing == frozenset()
    assert mapping.inputs == {2}


def test_identity_refuses_repeated_column_names() -> None:
    with pytest.raises(LineageTypeError, match=re.escape("duplicate column names `a`")):
        ColumnMapping.identity(["a", "b", "a"])


def test_a_mapping_refuses_sources_that_are_not_column_refs() -> None:
    with pytest.raises(LineageTypeError, match=re.escape("sources of output column `x`")):
        ColumnMapping({"x": {"a"}})  # type: ignore[dict-item]


def test_to_json_sorts_refs_and_keeps_column_order() -> None:
    assert AGGREGATE.with_influencing(["avg"]).to_json() == {
        "contributing": {
            "carrier": [{"input": 0, "column": "carrier"}],
            "avg_delay": [{"input": 0, "column": "arr_delay"}],
        },
        "influencing": [{"input": 0, "column": "avg"}, {"input": 0, "column": "carrier"}],
    }
    assert PROJECT.to_json()["contributing"]["total_delay"] == [
        {"input": 0, "column": "arr_delay"},
        {"input": 0, "column": "dep_delay"},
    ]


@pytest.mark.parametrize("mapping", [PROJECT, FILTER, AGGREGATE, ColumnMapping({})])
def test_mapping_round_trips_through_json_text_with_its_column_order(
    mapping: ColumnMapping,
) -> None:
    back = via_json_text(mapping)
    assert back == mapping
    assert back.output_columns == mapping.output_columns


def test_from_json_names_a_malformed_field() -> None:
    with pytest.raises(LineageTypeError, match=re.escape("field `influencing` has the wrong type")):
        ColumnMapping.from_json({"contributing": {}, "influencing": "a"})


def test_three_steps_compose_to_the_source_cells_of_each_output_column() -> None:
    composite = PROJECT.then(FILTER).then(AGGREGATE)
    assert dict(composite.contributing) == {
        "carrier": refs((0, "carrier")),
        "avg_delay": refs((0, "arr_delay")),
    }
    assert composite.influencing == refs((0, "dep_delay"), (0, "arr_delay"), (0, "carrier"))


def test_composition_keeps_the_first_mappings_input_indices() -> None:
    right_side = ColumnMapping({"y": refs((1, "y")), "k": refs((1, "k"))}, refs((1, "k")))
    composite = right_side.then(ColumnMapping({"y2": refs((0, "y"))}, refs((0, "k"))))
    assert dict(composite.contributing) == {"y2": refs((1, "y"))}
    assert composite.influencing == refs((1, "k"))


def test_composing_onto_a_missing_column_names_it_and_lists_what_exists() -> None:
    with pytest.raises(
        LineageTypeError,
        match=re.escape("reads column `dep_delay`, which this mapping does not produce; "
                        "it produces `carrier`, `arr_delay`, `total_delay`"),
    ):
        PROJECT.then(ColumnMapping({"d": refs((0, "dep_delay"))}))


def test_composing_onto_a_missing_influencing_column_is_refused() -> None:
    with pytest.raises(LineageTypeError, match=re.escape("influencing columns reads column `x`")):
        PROJECT.then(ColumnMapping({}, refs((0, "x"))))


def test_composing_a_two_input_mapping_on_top_is_refused() -> None:
    join = ColumnMapping({"a": refs((0, "carrier")), "b": refs((1, "carrier"))})
    with pytest.raises(LineageTypeError, match=re.escape("reads input 1; restrict it with `along")):
        PROJECT.then(join)


def test_along_keeps_one_inputs_refs_renumbered_as_input_zero() -> None:
    join = ColumnMapping(
        {"k": refs((0, "k")), "x": refs((0, "x")), "y": refs((1, "y"), (0, "x"))},
        influencing=refs((0, "k"), (1, "k")),
    )
    assert join.along(1) == ColumnMapping(
        {"k": frozenset(), "x": frozenset(), "y": refs((0, "y"))}, refs((0, "k"))
    )
    right = ColumnMapping.identity(["k", "y"], input=0)
    assert dict(right.then(join.along(1)).contributing)["y"] == refs((0, "y"))

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lineage_types import (
    Chain,
    ColumnMapping,
    ColumnRef,
    Encoding,
    Explicit,
    Identity,
    Key,
    LineageType,
    LineageTypeError,
    ManyToMany,
    ManyToOne,
    OneToMany,
    OneToOne,
    Passthrough,
    compose,
    compose_path,
    lineage_type_from_json,
)

COLUMNS = ["a", "b"]
KINDS: list[type[LineageType]] = [Identity, OneToOne, OneToMany, ManyToOne, ManyToMany]

# Row-cardinality algebra, written out by hand: EXPECTED[first][i] is the kind of
# compose(first, second) for second = KINDS[i].
EXPECTED: dict[type[LineageType], list[type[LineageType]]] = {
    Identity: [Identity, OneToOne, OneToMany, ManyToOne, ManyToMany],
    OneToOne: [OneToOne, OneToOne, OneToMany, ManyToOne, ManyToMany],
    OneToMany: [OneToMany, OneToMany, OneToMany, ManyToMany, ManyToMany],
    ManyToOne: [ManyToOne, ManyToOne, ManyToMany, ManyToOne, ManyToMany],
    ManyToMany: [ManyToMany] * 5,
}


def of_kind(kind: type[LineageType], encoding: Encoding | None = None) -> LineageType:
    return kind(ColumnMapping.identity(COLUMNS), encoding or Passthrough())


def refs(*columns: str, input: int = 0) -> frozenset[ColumnRef]:
    return frozenset(ColumnRef(input, c) for c in columns)


@pytest.mark.parametrize("first", KINDS, ids=lambda k: k.__name__)
@pytest.mark.parametrize("second", KINDS, ids=lambda k: k.__name__)
def test_composing_two_kinds_follows_the_cardinality_table(
    first: type[LineageType], second: type[LineageType]
) -> None:
    result = compose(of_kind(first), of_kind(second))
    assert type(result) is EXPECTED[first][KINDS.index(second)]
    assert result.columns == ColumnMapping.identity(COLUMNS)
    assert result == of_kind(first).then(of_kind(second))


def test_a_one_to_one_with_identity_columns_is_not_an_identity() -> None:
    plain = OneToOne(ColumnMapping.identity(COLUMNS), Passthrough())
    assert plain != Identity.of(COLUMNS)
    assert type(compose(plain, Identity.of(COLUMNS))) is OneToOne


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (Passthrough(), Passthrough(), Passthrough()),
        (Passthrough(), Key(("a",)), Key(("a",))),
        (Key(("a",)), Passthrough(), Key(("a",))),
        (Key(("a",)), Key(()), Chain((Key(("a",)), Key(())))),
        (Explicit("t"), Key(("b",)), Chain((Explicit("t"), Key(("b",))))),
        (Chain((Key(("a",)), Explicit("t"))), Explicit("u"),
         Chain((Key(("a",)), Explicit("t"), Explicit("u")))),
    ],
    ids=repr,
)
def test_the_encoding_of_a_composite_chains_the_non_passthrough_steps(
    first: Encoding, second: Encoding, expected: Encoding
) -> None:
    assert compose(of_kind(ManyToMany, first), of_kind(OneToOne, second)).encoding == expected


def test_project_filter_aggregate_composes_to_a_many_to_one_on_the_source_cells() -> None:
    project = OneToOne(
        ColumnMapping({
            "carrier": refs("carrier"),
            "arr_delay": refs("arr_delay"),
            "total_delay": refs("dep_delay", "arr_delay"),
        }),
        Passthrough(),
    )
    keep_late = OneToOne(
        ColumnMapping.identity(["carrier", "arr_delay", "total_delay"]).with_influencing(
            ["total_delay"]
        ),
        Passthrough(),
    )
    by_carrier = ManyToOne(
        ColumnMapping({"carrier": refs("carrier"), "avg_delay": refs("arr_delay")},
                      influencing=refs("carrier")),
        Key(("carrier",)),
    )
    path = compose_path([project, keep_late, by_carrier])
    assert path == ManyToOne(
        ColumnMapping({"carrier": refs("carrier"), "avg_delay": refs("arr_delay")},
                      influencing=refs("carrier", "dep_delay", "arr_delay")),
        Key(("carrier",)),
    )
    assert path.columns.output_columns == ("carrier", "avg_delay")


@pytest.mark.parametrize(
    "lineage_type",
    [
        Identity.of(["a", "b"], input=1),
        Identity.of([]),
        OneToOne(ColumnMapping({"x": refs("a", "b")}, refs("c")), Passthrough()),
        OneToMany(ColumnMapping({"item": refs("items"), "id": refs("id")}), Passthrough()),
        ManyToOne(ColumnMapping({"n": frozenset()}), Key(())),
        ManyToMany(ColumnMapping.identity(["a"]), Chain((Key(("a",)), Explicit("t")))),
        ManyToMany(ColumnMapping({"x": refs("x"), "y": refs("y", input=1)}), Explicit("t")),
    ],
    ids=lambda t: t.kind,
)
def test_every_lineage_type_round_trips_through_json_text(lineage_type: LineageType) -> None:
    data = json.loads(json.dumps(lineage_type.to_json()))
    back = lineage_type_from_json(data)
    assert back == lineage_type
    assert type(back) is type(lineage_type)
    assert back.columns.output_columns == lineage_type.columns.output_columns
    assert LineageType.from_json(data) == type(lineage_type).from_json(data) == lineage_type


def test_to_json_names_the_kind() -> None:
    assert [of_kind(k).to_json()["kind"] for k in KINDS] == [
        "identity", "one_to_one", "one_to_many", "many_to_one", "many_to_many",
    ]


def test_from_json_on_a_subclass_refuses_another_kind() -> None:
    message = "expected a ManyToOne, the JSON holds `one_to_many`"
    with pytest.raises(LineageTypeError, match=re.escape(message)):
        ManyToOne.from_json(of_kind(OneToMany).to_json())


def test_an_unknown_kind_is_named_with_the_known_ones() -> None:
    data = {**of_kind(OneToOne).to_json(), "kind": "one_to_few"}
    with pytest.raises(
        LineageTypeError,
        match=re.escape("unknown lineage type kind `one_to_few`; known kinds are `one_to_one`, "
                        "`one_to_many`, `many_to_one`, `many_to_many`, `identity`"),
    ):
        lineage_type_from_json(data)


def test_the_abstract_base_cannot_be_instantiated() -> None:
    with pytest.raises(TypeError, match="LineageType is abstract"):
        LineageType(ColumnMapping.identity(COLUMNS), Passthrough())


def test_a_lineage_type_refuses_a_non_encoding() -> None:
    with pytest.raises(LineageTypeError, match="encoding must be an Encoding"):
        OneToOne(ColumnMapping.identity(COLUMNS), "passthrough")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("columns", "encoding", "message"),
    [
        (ColumnMapping.identity(COLUMNS), Key(("a",)), "an Identity's encoding is Passthrough"),
        (ColumnMapping.identity(COLUMNS).with_influencing(["a"]), Passthrough(),
         "an Identity has no influencing columns, got `a`"),
        (ColumnMapping({"a": refs("b")}), Passthrough(), "output column `a` comes from `0.b`"),
        (ColumnMapping({"a": refs("a"), "b": refs("b", input=1)}), Passthrough(),
         "same-named column of one input"),
    ],
)
def test_identity_refuses_what_is_not_an_identity(
    columns: ColumnMapping, encoding: Encoding, message: str
) -> None:
    with pytest.raises(LineageTypeError, match=re.escape(message)):
        Identity(columns, encoding)


def test_composing_onto_a_column_the_first_step_drops_is_refused() -> None:
    message = "reads column `c`, which this mapping does not produce; it produces `a`, `b`"
    with pytest.raises(LineageTypeError, match=re.escape(message)):
        compose(Identity.of(COLUMNS), Identity.of(["c"]))


def test_composing_an_empty_path_is_refused() -> None:
    with pytest.raises(LineageTypeError, match="cannot compose an empty path"):
        compose_path([])


def test_a_path_of_one_step_is_that_step() -> None:
    only = of_kind(OneToMany, Explicit("t"))
    assert compose_path([only]) is only


def test_compose_refuses_what_is_not_a_lineage_type() -> None:
    with pytest.raises(LineageTypeError, match=re.escape("`second` must be a LineageType")):
        compose(Identity.of(COLUMNS), ColumnMapping.identity(COLUMNS))  # type: ignore[arg-type]


# --- property tests against a brute-force oracle -------------------------------------

NAMES = "abcde"
SHAPES = [OneToOne, OneToMany, ManyToOne, ManyToMany]
STEP_ENCODINGS = [Passthrough(), Key(("a",)), Key(()), Explicit("t1"), Explicit("t2")]

# A plain step: (kind, encoding, contributing name -> set of names, influencing names).
PlainStep = tuple[type[LineageType], Encoding, dict[str, set[str]], set[str]]


@st.composite
def plain_chains(
    draw: st.DrawFn, min_steps: int = 1, max_steps: int = 5
) -> tuple[int, list[PlainStep]]:
    """A source input index and a chain of random single-input steps over small schemas."""
    schema = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=5, unique=True))
    steps: list[PlainStep] = []
    for _ in range(draw(st.integers(min_steps, max_steps))):
        out = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=5, unique=True))
        contributing = {name: draw(st.sets(st.sampled_from(schema))) for name in out}
        influencing = draw(st.sets(st.sampled_from(schema)))
        steps.append((draw(st.sampled_from(SHAPES)), draw(st.sampled_from(STEP_ENCODINGS)),
                      contributing, influencing))
        schema = out
    return draw(st.integers(0, 2)), steps


def to_types(source_input: int, steps: list[PlainStep]) -> list[LineageType]:
    types = []
    for position, (kind, encoding, contributing, influencing) in enumerate(steps):
        input = source_input if position == 0 else 0
        columns = ColumnMapping(
            {name: refs(*sources, input=input) for name, sources in contributing.items()},
            refs(*influencing, input=input),
        )
        types.append(kind(columns, encoding))
    return types


def brute_force(source_input: int, steps: list[PlainStep]) -> LineageType:
    """Compose a chain by walking every column back to the source with plain sets."""

    def back_to_source(names: set[str], before_step: int) -> set[str]:
        for _, _, contributing, _ in reversed(steps[:before_step]):
            walked: set[str] = set()
            for name in names:
                walked |= contributing[name]
            names = walked
        return names

    last = len(steps) - 1
    contributing = {
        name: back_to_source(set(sources), last) for name, sources in steps[last][2].items()
    }
    influencing: set[str] = set()
    for position, (_, _, _, step_influencing) in enumerate(steps):
        influencing |= back_to_source(set(step_influencing), position)

    fans_out = any(kind in (OneToMany, ManyToMany) for kind, *_ in steps)
    fans_in = any(kind in (ManyToOne, ManyToMany) for kind, *_ in steps)
    kind = {(False, False): OneToOne, (True, False): OneToMany,
            (False, True): ManyToOne, (True, True): ManyToMany}[(fans_out, fans_in)]
    stored = [encoding for _, encoding, _, _ in steps if encoding != Passthrough()]
    if not stored:
        encoding: Encoding = Passthrough()
    elif len(stored) == 1:
        encoding = stored[0]
    else:
        encoding = Chain(tuple(stored))
    return kind(
        ColumnMapping(
            {name: refs(*sources, input=source_input) for name, sources in contributing.items()},
            refs(*influencing, input=source_input),
        ),
        encoding,
    )


@given(plain_chains())
def test_compose_path_equals_walking_each_column_back_through_the_chain(
    chain: tuple[int, list[PlainStep]],
) -> None:
    source_input, steps = chain
    composite = compose_path(to_types(source_input, steps))
    assert composite == brute_force(source_input, steps)
    assert composite.columns.output_columns == tuple(steps[-1][2])
    assert lineage_type_from_json(json.loads(json.dumps(composite.to_json()))) == composite


@given(plain_chains(min_steps=3, max_steps=3))
def test_composition_is_associative(chain: tuple[int, list[PlainStep]]) -> None:
    a, b, c = to_types(*chain)
    assert compose(compose(a, b), c) == compose(a, compose(b, c))


@given(plain_chains(min_steps=1, max_steps=3))
def test_identity_is_neutral_on_both_sides(chain: tuple[int, list[PlainStep]]) -> None:
    source_input, steps = chain
    step = compose_path(to_types(source_input, steps))
    assert compose(step, Identity.of(step.columns.output_columns)) == step
    # Only a single-input step can follow an identity, so read input 0 here.
    step = compose_path(to_types(0, steps))
    read = step.columns.influencing.union(*step.columns.contributing.values())
    assert compose(Identity.of(sorted({ref.column for ref in read})), step) == step


def test_a_declaration_by_key_has_a_key_encoding_and_no_column_mapping_yet():
    declared = OneToOne(key="id")
    assert declared.encoding == Key(("id",)) and declared.declared
    assert ManyToOne(key=["carrier", "origin"]).encoding == Key(("carrier", "origin"))
    full = declared.with_columns(ColumnMapping.identity(["id"]))
    assert not full.declared and full.encoding == Key(("id",))
    assert OneToOne.from_json(full.to_json()) == full
    with pytest.raises(LineageTypeError, match="no column mapping"):
        declared.to_json()
    with pytest.raises(LineageTypeError, match="does not compose"):
        declared.then(full)
    with pytest.raises(LineageTypeError, match="not both"):
        OneToOne(encoding=Passthrough(), key="id")
    with pytest.raises(LineageTypeError, match="columns must be a ColumnMapping"):
        OneToOne()

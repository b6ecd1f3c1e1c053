"""TrackedDataFrame: pyspark's DataFrame transformations, with lineage recorded.

Each method runs the same pyspark transformation on a DataFrame that also carries
hippo's hidden columns (the row id and the slots of :mod:`hippo.recorded.state`), then
reads the step's lineage off the analyzed plan (:mod:`hippo.capture.plan`). Methods
only plumb the hidden columns through; none of them says what its lineage is.

Transformations not listed here raise :class:`~hippo.errors.UnsupportedStepError`
rather than silently losing lineage; actions (count, collect, show, ...) run on the
user's columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from hippo.errors import HippoError, UnsupportedStepError
from hippo.py4j_lists import renamed, selected
from hippo.recorded.ids import ID, content_hash, derived_id, is_hidden, pos_name, quoted
from hippo.recorded.state import LineageState

if TYPE_CHECKING:
    from hippo.capture.recorder import Recorder

__all__ = ["TrackedDataFrame", "TrackedGroupedData", "TrackedNaFunctions", "check_tracked"]

_ACTIONS = {
    "count", "collect", "show", "take", "head", "first", "toPandas", "toLocalIterator",
    "schema", "dtypes", "printSchema", "explain", "isEmpty", "describe", "summary",
    "toArrow", "write", "writeTo", "rdd", "storageLevel", "isLocal", "sparkSession",
    "foreach", "foreachPartition", "createOrReplaceTempView", "createTempView",
}


_NO_VALUE = object()  # replace() called without ``value``


def check_tracked(recorder: Recorder, other: Any, step: str) -> TrackedDataFrame:
    """``other`` if it is a TrackedDataFrame of ``recorder``'s run, else a HippoError."""
    if not isinstance(other, TrackedDataFrame):
        raise HippoError(f"{step} needs a TrackedDataFrame from `run.source(...)`, got "
                         f"{type(other).__name__}; read it with `run.source(name, df)`")
    if other.recorder is not recorder:
        raise HippoError(f"{step}: the DataFrame belongs to run `{other.recorder.run_id}`, "
                         f"not to this run `{recorder.run_id}`")
    return other


def _flatten(items: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        out.extend(item if isinstance(item, list | tuple) else [item])
    return out


def _positional_select(df: DataFrame, positions: list[int], names: list[str]) -> DataFrame:
    """Select columns by position (names may repeat) and name them."""
    tmp = renamed(df, [f"__p{i}" for i in range(len(df.columns))])
    return renamed(selected(tmp, [f"__p{p}" for p in positions]), names)


class TrackedDataFrame:
    """A DataFrame whose transformations record cell-level lineage into a run.

    Use it like a pyspark DataFrame; ``.df`` is the plain DataFrame of your columns.

    Examples
    --------
    >>> flights = run.source("flights", "data/flights")  # doctest: +SKIP
    >>> late = flights.filter(F.col("dep_delay") > 15).select("carrier", "dep_delay")
    """

    def __init__(self, recorder: Recorder, df: DataFrame, state: LineageState,
                 op_id: int) -> None:
        self._run = recorder
        self._df = df
        self._state = state
        self._op_id = op_id

    # -- plain access ------------------------------------------------------------------
    @property
    def df(self) -> DataFrame:
        """The DataFrame without hippo's hidden columns."""
        return self._df.drop(*self._hidden())

    @property
    def columns(self) -> list[str]:
        return [c for c in self._df.columns if not is_hidden(c)]

    @property
    def op_id(self) -> int:
        """The id of the step that produced this DataFrame in its run."""
        return self._op_id

    @property
    def frame(self) -> DataFrame:
        """The DataFrame with hippo's hidden columns (row id and slots)."""
        return self._df

    @property
    def lineage_state(self) -> LineageState:
        """The lineage this DataFrame's rows carry (slots and cell lineage)."""
        return self._state

    @property
    def recorder(self) -> Recorder:
        """The recorder of the run this DataFrame belongs to."""
        return self._run

    def __getattr__(self, name: str) -> Any:
        if name in _ACTIONS:
            return getattr(self.df, name)
        if name.startswith("_") or not hasattr(DataFrame, name):
            raise AttributeError(name)
        raise UnsupportedStepError(
            f"`{name}` is not tracked yet; use `.df.{name}(...)` for untracked work, or "
            "declare its lineage (see README, 'Supported steps')"
        )

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, str):
            return self._df[item]
        if isinstance(item, Column):
            return self.filter(item)
        if isinstance(item, list | tuple):
            return self.select(*item)
        raise TypeError(f"unexpected item type: {type(item)}")

    def __repr__(self) -> str:
        cols = ", ".join(self.columns)
        return f"TrackedDataFrame[{cols}] (run step {self._op_id})"

    def _hidden(self) -> list[str]:
        return [c for c in self._df.columns if is_hidden(c)]

    def _derive(
        self,
        new: DataFrame,
        step: str,
        inputs: list[TrackedDataFrame] | None = None,
        states: list[LineageState] | None = None,
        **extra: Any,
    ) -> TrackedDataFrame:
        inputs = inputs or [self]
        states = states or [t._state for t in inputs]
        return TrackedDataFrame(self._run, *self._run.record_step(new, step, inputs, states,
                                                                  **extra))

    # -- one-to-one and generators -------------------------------------------------------
    # Each passes ``remake``, the same call on another DataFrame: a step with a window
    # function is made again over its input plus a key slot (Recorder.record_step).
    def select(self, *cols: Any) -> TrackedDataFrame:
        def remake(df: DataFrame) -> DataFrame:
            return _dedupe_hidden(df.select(*_flatten(cols), *_hidden_of(df)))

        return self._derive(remake(self._df), "select", remake=remake)

    def selectExpr(self, *exprs: str) -> TrackedDataFrame:  # noqa: N802 (pyspark's name)
        def remake(df: DataFrame) -> DataFrame:
            return _dedupe_hidden(df.selectExpr(*_flatten(exprs),
                                                *[f"`{h}`" for h in _hidden_of(df)]))

        return self._derive(remake(self._df), "selectExpr", remake=remake)

    def withColumn(self, name: str, col: Column) -> TrackedDataFrame:  # noqa: N802
        return self._derive(self._df.withColumn(name, col), "withColumn",
                            remake=lambda df: df.withColumn(name, col))

    def withColumns(self, *mapping: dict[str, Column]) -> TrackedDataFrame:  # noqa: N802
        return self._derive(self._df.withColumns(*mapping), "withColumns",
                            remake=lambda df: df.withColumns(*mapping))

    def withColumnRenamed(self, existing: str, new: str) -> TrackedDataFrame:  # noqa: N802
        return self._derive(self._df.withColumnRenamed(existing, new), "withColumnRenamed")

    def withColumnsRenamed(self, mapping: dict[str, str]) -> TrackedDataFrame:  # noqa: N802
        return self._derive(self._df.withColumnsRenamed(mapping), "withColumnsRenamed")

    def drop(self, *cols: Any) -> TrackedDataFrame:
        return self._derive(self._df.drop(*cols), "drop")

    def filter(self, condition: Column | str) -> TrackedDataFrame:
        return self._derive(self._df.filter(condition), "filter")

    where = filter

    def orderBy(self, *cols: Any, **kwargs: Any) -> TrackedDataFrame:  # noqa: N802
        return self._derive(self._df.orderBy(*cols, **kwargs), "orderBy")

    sort = orderBy

    def sortWithinPartitions(self, *cols: Any, **kwargs: Any) -> TrackedDataFrame:  # noqa: N802
        return self._derive(self._df.sortWithinPartitions(*cols, **kwargs), "sortWithinPartitions")

    def repartition(self, *args: Any) -> TrackedDataFrame:
        return self._derive(self._df.repartition(*args), "repartition")

    def coalesce(self, n: int) -> TrackedDataFrame:
        return self._derive(self._df.coalesce(n), "coalesce")

    def alias(self, name: str) -> TrackedDataFrame:
        return self._derive(self._df.alias(name), "alias")

    def sample(self, *args: Any, **kwargs: Any) -> TrackedDataFrame:
        """pyspark's ``sample``: the rows it keeps are recorded (explicit encoding), as
        recomputing it may keep others."""
        return self._derive(self._df.sample(*args, **kwargs), "sample")

    def randomSplit(self, weights: list[float], seed: int | None = None  # noqa: N802
                    ) -> list[TrackedDataFrame]:
        """pyspark's ``randomSplit``: each split a recorded sample of the rows."""
        return [self._derive(part, "randomSplit") for part in self._df.randomSplit(weights, seed)]

    def limit(self, n: int) -> TrackedDataFrame:
        return self._derive(self._df.limit(n), "limit", replay_exact=False)

    def dropDuplicates(self, subset: list[str] | None = None) -> TrackedDataFrame:  # noqa: N802
        if not subset:
            return self.distinct()
        # The kept row carries its own slots, so its lineage is exact; which row is kept
        # is up to Spark, so a replay may keep another one.
        return self._derive(self._df.dropDuplicates(subset), "dropDuplicates", replay_exact=False)

    drop_duplicates = dropDuplicates

    # -- missing values, renaming all columns, user functions ------------------------------
    def _user_columns(self, subset: Any, step: str) -> list[str]:
        """``subset`` (a name or names; None: every column) as the user's column names."""
        if subset is None:
            return self.columns
        names = [subset] if isinstance(subset, str) else list(subset)
        hidden = [n for n in names if not isinstance(n, str) or is_hidden(n)]
        if hidden:
            raise HippoError(f"{step}: {hidden[0]!r} is not a column of this DataFrame; "
                             f"columns: {', '.join(self.columns)}")
        return names

    def _named(self, subset: Any, step: str) -> list[str]:
        """``subset`` as Spark's ``na`` functions resolve names: as given, or (None) every
        user column quoted, so a name with a dot is one column."""
        cols = self._user_columns(subset, step)
        return [quoted(c) for c in cols] if subset is None else cols

    def fillna(self, value: Any, subset: Any = None) -> TrackedDataFrame:
        if isinstance(value, dict):
            self._user_columns(list(value), "fillna")
            return self._derive(self._df.fillna(value), "fillna")
        return self._derive(self._df.fillna(value, self._named(subset, "fillna")), "fillna")

    def dropna(self, how: str = "any", thresh: int | None = None,
               subset: Any = None) -> TrackedDataFrame:
        """pyspark's ``dropna``, as a filter hippo can record and rebuild (Spark's own plan
        calls an internal function that no SQL text names)."""
        if how not in ("any", "all", None):  # None: as pyspark, at least one value
            raise HippoError(f"dropna: how must be 'any' or 'all', not {how!r}")
        cols = self._user_columns(subset, "dropna")
        types = dict(self._df.dtypes)
        missing = [c for c in cols if c not in types]
        if missing:
            raise HippoError(f"dropna: unknown column `{missing[0]}`; columns: "
                             f"{', '.join(self.columns)}")
        need = thresh if thresh is not None else (len(cols) if how == "any" else 1)

        def present(c: str) -> Column:  # as Spark counts: neither null nor NaN
            value = F.col(quoted(c))
            if types[c] in ("float", "double"):
                return value.isNotNull() & ~F.isnan(value)
            return value.isNotNull()

        if need <= 0 or not cols:
            return self._derive(self._df.filter(F.lit(True)), "dropna")
        if need == len(cols):
            cond = present(cols[0])
            for c in cols[1:]:
                cond = cond & present(c)
        else:
            count = F.when(present(cols[0]), 1).otherwise(0)
            for c in cols[1:]:
                count = count + F.when(present(c), 1).otherwise(0)
            cond = count >= need
        return self._derive(self._df.filter(cond), "dropna")

    def replace(self, to_replace: Any, value: Any = _NO_VALUE,
                subset: Any = None) -> TrackedDataFrame:
        cols = self._named(subset, "replace")
        if value is _NO_VALUE:
            return self._derive(self._df.replace(to_replace, subset=cols), "replace")
        return self._derive(self._df.replace(to_replace, value, cols), "replace")

    @property
    def na(self) -> TrackedNaFunctions:
        """``df.na.fill / drop / replace``, tracked."""
        return TrackedNaFunctions(self)

    def toDF(self, *cols: str) -> TrackedDataFrame:  # noqa: N802
        user = [i for i, c in enumerate(self._df.columns) if not is_hidden(c)]
        if len(cols) != len(user):
            raise HippoError(f"toDF: {len(cols)} names for {len(user)} columns "
                             f"({', '.join(self.columns)})")
        bad = [c for c in cols if not isinstance(c, str) or is_hidden(c)]
        if bad:
            raise HippoError(f"toDF: {bad[0]!r} cannot name a column (hippo's hidden columns "
                             "start with `__hippo`)")
        hidden = [i for i, c in enumerate(self._df.columns) if is_hidden(c)]
        out = _positional_select(self._df, user + hidden,
                                 [*cols, *[self._df.columns[i] for i in hidden]])
        return self._derive(out, "toDF")

    def transform(self, func: Any, *args: Any, **kwargs: Any) -> TrackedDataFrame:
        """``func(self, *args, **kwargs)``, which must build on this TrackedDataFrame with
        tracked steps (each is recorded as its own step); or a pyspark.ml transformer or
        model applied to the rows (:mod:`hippo.capture.models`)."""
        from pyspark.ml import Transformer

        if isinstance(func, Transformer):
            from hippo.capture.models import transform

            return transform(self, func)
        out = func(self, *args, **kwargs)
        if not isinstance(out, TrackedDataFrame):
            raise HippoError(
                f"transform: `{getattr(func, '__name__', func)}` returned "
                f"{type(out).__name__}, not a TrackedDataFrame: build its result with "
                "tracked steps, or declare the lineage of opaque code")
        return check_tracked(self._run, out, "transform")

    # -- declared lineage (code Spark cannot see into) -----------------------------------
    def apply(self, fn: Any, lineage: Any = None) -> TrackedDataFrame:
        """``fn(self.df)`` for any ``DataFrame -> DataFrame`` function, with its lineage
        declared: ``lineage=OneToOne(key="id")``, ``OneToMany(key=...)``,
        ``ManyToOne(key=[...])`` or ``ManyToMany(key=[...])`` from ``lineage_types``
        (:mod:`hippo.capture.declared`)."""
        from hippo.capture.declared import apply

        return apply(self, fn, _declared(lineage, "apply", "df.apply(fn, lineage=...)"))

    def mapInPandas(self, func: Any, schema: Any, lineage: Any = None,  # noqa: N802
                    **kwargs: Any) -> TrackedDataFrame:
        from hippo.capture.declared import apply

        lineage = _declared(lineage, "mapInPandas", "df.mapInPandas(func, schema, lineage=...)")
        return apply(self, lambda df: df.mapInPandas(func, schema, **kwargs), lineage,
                     "mapInPandas")

    def mapInArrow(self, func: Any, schema: Any, lineage: Any = None,  # noqa: N802
                   **kwargs: Any) -> TrackedDataFrame:
        from hippo.capture.declared import apply

        lineage = _declared(lineage, "mapInArrow", "df.mapInArrow(func, schema, lineage=...)")
        return apply(self, lambda df: df.mapInArrow(func, schema, **kwargs), lineage,
                     "mapInArrow")

    # -- many-to-one -------------------------------------------------------------------
    def groupBy(self, *cols: Any) -> TrackedGroupedData:  # noqa: N802
        return TrackedGroupedData(self, _flatten(cols))

    groupby = groupBy

    def cube(self, *cols: Any) -> TrackedGroupedData:
        """pyspark's ``cube``: ``agg`` is tracked as one aggregate per grouping set,
        unioned (:mod:`hippo.capture.reshape`)."""
        return TrackedGroupedData(self, _flatten(cols), sets=("cube", None))

    def rollup(self, *cols: Any) -> TrackedGroupedData:
        """pyspark's ``rollup``, tracked as ``cube`` is."""
        return TrackedGroupedData(self, _flatten(cols), sets=("rollup", None))

    def groupingSets(self, groupingSets: Any, *cols: Any  # noqa: N802, N803
                     ) -> TrackedGroupedData:
        """pyspark's ``groupingSets``, tracked as ``cube`` is."""
        return TrackedGroupedData(self, _flatten(cols),
                                  sets=("groupingSets", [list(s) for s in groupingSets]))

    def unpivot(self, ids: Any, values: Any, variableColumnName: str,  # noqa: N803
                valueColumnName: str) -> TrackedDataFrame:  # noqa: N803
        """pyspark's ``unpivot``: one projection per value column, unioned
        (:mod:`hippo.capture.reshape`); each value cell comes from its own column."""
        from hippo.capture.reshape import unpivot

        return unpivot(self, ids, values, variableColumnName, valueColumnName)

    melt = unpivot

    def agg(self, *exprs: Any) -> TrackedDataFrame:
        return self.groupBy().agg(*exprs)

    def distinct(self) -> TrackedDataFrame:
        user = self.columns
        out = _with_key_slot(self._run, self.df.distinct(), len(user))
        full = [i for i, c in enumerate(self._df.columns) if not is_hidden(c)]
        return self._derive(out, "distinct", key_sql=[quoted(pos_name(p)) for p in full],
                            key_count=len(user))

    # -- several inputs ------------------------------------------------------------------
    def join(self, other: TrackedDataFrame, on: Any = None, how: str | None = None) -> TrackedDataFrame:
        other = check_tracked(self._run, other, "join")
        taken = set(self._state.slots)
        renames = {s: self._run.new_slot() for s in other._state.slots if s in taken}
        right = other._df.withColumnsRenamed({**renames, ID: "__hippo_r"})
        left = self._df.withColumnRenamed(ID, "__hippo_l")
        joined = left.join(right, on=on, how=how)
        match = None
        if "__hippo_r" in joined.columns:
            joined = joined.withColumn(
                ID, derived_id("join", "__hippo_l", "__hippo_r")
            ).drop("__hippo_l", "__hippo_r")
        elif (how or "").lower().replace("_", "") in ("leftsemi", "semi"):
            # The right rows a kept row matched are found again at query time by
            # re-pairing the two inputs (nothing stored): a "match" slot keyed by the
            # left row's id.
            match = {"slot": self._run.new_slot(), "renames": renames}
            joined = joined.withColumnRenamed("__hippo_l", ID).withColumn(
                match["slot"], F.col(ID))
        else:  # anti joins keep the left row; no right row contributed to it
            joined = joined.withColumnRenamed("__hippo_l", ID)
        return self._derive(
            joined, "join", [self, other], [self._state, other._state.renamed(renames)],
            match=match,
        )

    def crossJoin(self, other: TrackedDataFrame) -> TrackedDataFrame:  # noqa: N802
        return self.join(other, how="cross")

    def union(self, other: TrackedDataFrame) -> TrackedDataFrame:
        return self._union(other, by_name=False, allow_missing=False)

    unionAll = union

    def unionByName(  # noqa: N802
        self, other: TrackedDataFrame, allowMissingColumns: bool = False  # noqa: N803
    ) -> TrackedDataFrame:
        return self._union(other, by_name=True, allow_missing=allowMissingColumns)

    def _union(self, other: TrackedDataFrame, by_name: bool, allow_missing: bool) -> TrackedDataFrame:
        other = check_tracked(self._run, other, "union")
        taken = set(self._state.slots)
        renames = {s: self._run.new_slot() for s in other._state.slots if s in taken}
        right_state = other._state.renamed(renames)
        slots = sorted(set(self._state.slots) | set(right_state.slots))
        sides = []
        for side, (tdf, ren) in enumerate([(self, {}), (other, renames)]):
            df = tdf._df.withColumnsRenamed(ren) if ren else tdf._df
            df = df.withColumn(ID, derived_id(f"union{side}", ID))
            for slot in slots:
                if slot not in df.columns:
                    df = df.withColumn(slot, F.lit(None).cast("long"))
            user = [i for i, c in enumerate(df.columns) if not is_hidden(c)]
            hidden = [ID, *slots]
            positions = user + [df.columns.index(h) for h in hidden]
            sides.append(_positional_select(df, positions, [df.columns[i] for i in user] + hidden))
        if by_name:
            out = sides[0].unionByName(sides[1], allowMissingColumns=allow_missing)
        else:
            out = sides[0].union(sides[1])
        return self._derive(out, "union", [self, other], [self._state, right_state])


class TrackedNaFunctions:
    """``TrackedDataFrame.na``: ``fill``, ``drop`` and ``replace``, tracked."""

    def __init__(self, parent: TrackedDataFrame) -> None:
        self._parent = parent

    def fill(self, value: Any, subset: Any = None) -> TrackedDataFrame:
        return self._parent.fillna(value, subset)

    def drop(self, how: str = "any", thresh: int | None = None,
             subset: Any = None) -> TrackedDataFrame:
        return self._parent.dropna(how, thresh, subset)

    def replace(self, to_replace: Any, value: Any = _NO_VALUE,
                subset: Any = None) -> TrackedDataFrame:
        return self._parent.replace(to_replace, value, subset)


class TrackedGroupedData:
    """``TrackedDataFrame.groupBy(...)``: aggregations that record key-encoded lineage."""

    def __init__(self, parent: TrackedDataFrame, keys: list[Any],
                 sets: tuple[str, Any] | None = None,
                 pivot: tuple[str, list[Any] | None] | None = None) -> None:
        self._parent = parent
        self._keys = keys
        self._sets = sets  # ("cube" | "rollup" | "groupingSets", the sets given)
        self._pivot = pivot  # (pivot column, its values or None)

    def agg(self, *exprs: Any) -> TrackedDataFrame:
        from hippo.capture import reshape

        cols = reshape.agg_exprs(exprs)
        if self._sets is not None:
            return reshape.grouping_sets(self, cols)
        if self._pivot is not None:
            return reshape.pivot_agg(self, *self._pivot, cols)
        keys = self._keys
        return self._agg(lambda df: df.groupBy(*keys).agg(*cols), "groupBy.agg")

    def _agg(self, make: Any, step: str) -> TrackedDataFrame:
        """Record ``make(frame)``, an aggregate by this object's keys (first in its
        output), with a key slot. Hidden columns stay in the aggregate's input
        (unreferenced), so the recorded group keys are expressions over the input as it
        is replayed at query time."""
        parent = self._parent
        out = _with_key_slot(parent._run, make(parent._df), len(self._keys))
        return parent._derive(out, step, key_count=len(self._keys))

    def pivot(self, pivot_col: str, values: list[Any] | None = None) -> TrackedGroupedData:
        """pyspark's ``pivot``: then ``agg`` (or a shortcut) makes one column per value
        and aggregate (:mod:`hippo.capture.reshape`)."""
        if self._sets is not None or self._pivot is not None:
            raise UnsupportedStepError("pivot is tracked after groupBy only, once")
        if not isinstance(pivot_col, str):
            raise HippoError(f"pivot: the pivot column is named by a string, not {pivot_col!r}")
        return TrackedGroupedData(self._parent, self._keys,
                                  pivot=(pivot_col, None if values is None else list(values)))

    def count(self) -> TrackedDataFrame:
        return self.agg(F.count(F.lit(1)).alias("count"))

    def applyInPandas(self, func: Any, schema: Any, lineage: Any = None  # noqa: N802
                      ) -> TrackedDataFrame:
        """pyspark's ``applyInPandas``: each output row comes from the rows of its group
        (``ManyToMany`` by the group keys, which the output must hold), unless
        ``lineage`` declares otherwise."""
        from lineage_types import ManyToMany

        from hippo.capture.declared import apply

        keys = self._keys
        if self._sets is not None or self._pivot is not None:
            raise UnsupportedStepError("applyInPandas is tracked after groupBy only")
        if lineage is None:
            if not all(isinstance(k, str) for k in keys):
                raise UnsupportedStepError(
                    "applyInPandas over computed group keys: declare its lineage with "
                    "lineage=ManyToMany(key=[...]) over columns its output holds")
            lineage = ManyToMany(key=list(keys))
        return apply(self._parent, lambda df: df.groupBy(*keys).applyInPandas(func, schema),
                     lineage, "applyInPandas")

    def _numeric(self, fn: str, cols: tuple[str, ...]) -> TrackedDataFrame:
        if not cols:
            numeric = ("int", "bigint", "smallint", "tinyint", "float", "double")
            cols = tuple(
                name for name, dtype in self._parent.df.dtypes
                if dtype in numeric or dtype.startswith("decimal")
            )
        label = "avg" if fn == "mean" else fn
        return self.agg(*[getattr(F, label)(c).alias(f"{label}({c})") for c in cols])

    def sum(self, *cols: str) -> TrackedDataFrame:
        return self._numeric("sum", cols)

    def avg(self, *cols: str) -> TrackedDataFrame:
        return self._numeric("avg", cols)

    def mean(self, *cols: str) -> TrackedDataFrame:
        return self._numeric("mean", cols)

    def min(self, *cols: str) -> TrackedDataFrame:
        return self._numeric("min", cols)

    def max(self, *cols: str) -> TrackedDataFrame:
        return self._numeric("max", cols)


def _declared(lineage: Any, step: str, how: str) -> Any:
    if lineage is None:
        raise UnsupportedStepError(
            f"`{step}` runs code Spark cannot see into, so hippo cannot type its lineage; "
            f"declare it: {how} with lineage=OneToOne(key='id') (each output row is the "
            "input row of its key), OneToMany(key=...), ManyToOne(key=[...]) or "
            "ManyToMany(key=[...]) from lineage_types")
    return lineage


def _with_key_slot(run: Recorder, grouped: DataFrame, n_keys: int) -> DataFrame:
    """Add the group's key hash as a new slot and as the row id."""
    slot = run.new_slot()
    keys = [quoted(c) for c in grouped.columns[:n_keys]]
    return grouped.withColumn(slot, content_hash(keys, "key")).withColumn(ID, F.col(slot))


def _hidden_of(df: DataFrame) -> list[str]:
    return [c for c in df.columns if is_hidden(c)]


def _dedupe_hidden(df: DataFrame) -> DataFrame:
    """Keep the first of repeated hidden columns (a ``*`` plus the ones hippo appends)."""
    names = df.columns
    seen: set[str] = set()
    keep: list[int] = []
    for i, name in enumerate(names):
        if is_hidden(name):
            if name in seen:
                continue
            seen.add(name)
        keep.append(i)
    if len(keep) == len(names):
        return df
    return _positional_select(df, keep, [names[i] for i in keep])


"""pyspark.ml inside a run: fitting estimators and applying transformers, as steps.

A fit is an aggregate over its training rows with no group key: the model is one
"row" made by every training row, from the columns the estimator reads. It gets a key
slot with an empty key (every training row hashes to it), so queries find a model's
training rows the way they find an aggregate's group. A transform keeps every input
column and row (its rows pass their ids through) and appends columns computed from
the columns the stage reads in the row itself and, for a model fitted in the run, from
the model's training rows and columns: the transformed rows carry the model's key slot.

Models and estimators are saved into the store with pyspark.ml's own persistence
(``models/<run id>/op<step>/``), so a replay applies the very model the run applied
and a removal refits the estimator on the cleaned training rows.

Which columns a stage reads is taken from its params (``inputCol(s)``, ``featuresCol``,
and for a fit ``labelCol``/``weightCol``); a stage whose output changes or drops an
input column is refused, as the row could no longer pass through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lineage_types import ColumnMapping, ColumnRef, Key, ManyToOne, OneToOne, Passthrough

from hippo.capture.recorder import code_location
from hippo.errors import HippoError, UnsupportedStepError, first_line
from hippo.recorded import spec as S
from hippo.recorded.ids import content_hash, is_hidden, pos_name
from hippo.recorded.state import KeySlot, LineageState
from hippo.recorded.steps import Step

if TYPE_CHECKING:
    from hippo.capture.tracked import TrackedDataFrame

__all__ = ["FittedModel", "fit", "transform"]

_FIT_READS = ("inputCol", "inputCols", "featuresCol", "labelCol", "weightCol")
_TRANSFORM_READS = ("inputCol", "inputCols", "featuresCol")


@dataclass(frozen=True)
class FittedModel:
    """A model fitted in the run: its fit step, key slot and saved forms."""

    model: Any  # kept alive: the run finds it again by identity
    op_id: int
    slot: str
    estimator: str
    estimator_class: str
    model_path: str
    model_class: str
    reads: tuple[int, ...]  # user positions of the training columns the fit read


def _class_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _reads(stage: Any, params: tuple[str, ...], columns: list[str]) -> list[str]:
    """The columns of ``columns`` that ``stage``'s params name, in column order."""
    named: set[str] = set()
    for name in params:
        if not stage.hasParam(name):
            continue
        param = stage.getParam(name)
        if stage.isDefined(param):
            value = stage.getOrDefault(param)
            named.update(value if isinstance(value, list | tuple) else [value])
    return [c for c in columns if c in named]


def _save_later(recorder: Any, stage: Any, path: str, what: str) -> str:
    """Save ``stage`` at ``path`` on the run's background thread (the run's commit waits
    for it, so no run is visible without its models), from a copy: the user may change
    the stage's params after this step."""
    recorder.later(_saved, stage.copy(), path, what)
    return path


def _saved(stage: Any, path: str, what: str) -> str:
    try:
        stage.write().overwrite().save(path)
    except Exception as err:  # noqa: BLE001 -- any stage pyspark.ml cannot persist
        raise UnsupportedStepError(
            f"{what} `{_class_name(stage)}` cannot be saved with pyspark.ml's persistence "
            f"({first_line(err)}); hippo records models and transformers it can save, so "
            "a replay applies the same one") from err
    return path


def fit(recorder: Any, estimator: Any, data: TrackedDataFrame) -> Any:
    """``estimator.fit`` on ``data``'s rows, recorded into ``recorder``'s run; a Pipeline
    stage by stage."""
    from pyspark.ml import Estimator, Pipeline, PipelineModel, Transformer

    if isinstance(estimator, Pipeline):
        stages = estimator.getStages()
        fitted: list[Any] = []
        current = data
        for i, stage in enumerate(stages):
            if isinstance(stage, Estimator):
                stage = fit(recorder, stage, current)
            elif not isinstance(stage, Transformer):
                raise HippoError(f"pipeline stage {i} ({_class_name(stage)}) is neither an "
                                 "Estimator nor a Transformer")
            fitted.append(stage)
            if i < len(stages) - 1:
                current = transform(current, stage)
        return PipelineModel(fitted)
    if not isinstance(estimator, Estimator):
        raise HippoError(f"run.fit needs a pyspark.ml Estimator or Pipeline, got "
                         f"{type(estimator).__name__}")
    recorder.check_open()
    if not data.lineage_state.replay_exact:
        recorder.refuse(f"`fit` at {code_location()} trains on rows chosen by an earlier "
                        "limit, dropDuplicates or nondeterministic step; lineage through "
                        "its model would not be exact")
    model = estimator.fit(data.df)
    op_id = recorder.next_op
    folder = _folder_of(recorder, op_id)
    est_path = _save_later(recorder, estimator, f"{folder}/estimator", "estimator")
    model_path = _save_later(recorder, model, f"{folder}/model", "model")
    user = data.columns
    reads = tuple(user.index(c) for c in _reads(estimator, _FIT_READS, user))
    slot = recorder.new_slot()
    state = LineageState({slot: KeySlot(op_id, data.op_id, ())},
                         (frozenset((slot, u) for u in reads),),
                         replay_exact=data.lineage_state.replay_exact)
    lineage = ManyToOne(ColumnMapping({pos_name(0): frozenset(
        ColumnRef(0, pos_name(u)) for u in reads)}), Key(()))
    spec = S.Fit(S.Input(0), tuple(data.frame.columns), est_path, _class_name(estimator),
                 model_path, _class_name(model))
    recorder.add(Step(op_id, "fit", (data.op_id,), ("Fit",), lineage, spec, state,
                      ("model",), True, code_location()))
    recorder.models[id(model)] = FittedModel(model, op_id, slot, est_path,
                                             _class_name(estimator), model_path,
                                             _class_name(model), reads)
    return model


def transform(data: TrackedDataFrame, stage: Any) -> TrackedDataFrame:
    """``stage.transform`` on ``data``'s rows, recorded (a PipelineModel stage by
    stage)."""
    from pyspark.ml import PipelineModel

    from hippo.capture.tracked import TrackedDataFrame

    if isinstance(stage, PipelineModel):
        for inner in stage.stages:
            data = transform(data, inner)
        return data
    recorder = data.recorder
    recorder.check_open()
    fitted = recorder.models.get(id(stage))
    if fitted is not None and fitted.model is not stage:
        fitted = None
    base = data.frame
    if fitted is not None:
        base = base.withColumn(fitted.slot, content_hash([], "key"))
    out = stage.transform(base)
    n = len(base.columns)
    added = out.columns[n:]
    user = data.columns
    if out.columns[:n] != base.columns or any(is_hidden(c) for c in added) \
            or set(added) & set(user) or len(set(added)) != len(added):
        raise UnsupportedStepError(
            f"`{_class_name(stage)}` changes, drops or repeats columns; hippo tracks "
            "pyspark.ml stages that keep every column and append new ones")
    op_id = recorder.next_op
    folder = _folder_of(recorder, op_id)
    model_path = fitted.model_path if fitted else _save_later(
        recorder, stage, f"{folder}/model", "transformer")
    state = data.lineage_state
    reads = _reads(stage, _TRANSFORM_READS, user)
    own = frozenset().union(*[state.contrib[user.index(c)] for c in reads])
    if fitted is not None:
        own |= frozenset((fitted.slot, u) for u in fitted.reads)
    slots = dict(state.slots)
    if fitted is not None:
        slots[fitted.slot] = KeySlot(fitted.op_id, _training_op(recorder, fitted), ())
    new_state = LineageState(
        slots, state.contrib + tuple(own for _ in added), state.influence, state.order,
        state.replay_exact, state.keyed, state.id_slot,
        tuple(state.copy_at(u) for u in range(len(user))) + tuple(None for _ in added))
    mapping = ColumnMapping(
        {**{pos_name(u): frozenset({ColumnRef(0, pos_name(u))}) for u in range(len(user))},
         **{pos_name(len(user) + j): frozenset(ColumnRef(0, pos_name(user.index(c)))
                                               for c in reads) for j in range(len(added))}})
    spec = S.Transform(S.Input(0), tuple(out.columns), model_path, _class_name(stage),
                       fitted is not None, fitted.estimator if fitted else "",
                       fitted.estimator_class if fitted else "",
                       fitted.slot if fitted else "")
    inputs = (data.op_id,) + ((fitted.op_id,) if fitted else ())
    recorder.add(Step(op_id, "transform", inputs, ("Transform",),
                      OneToOne(mapping, Passthrough()), spec, new_state,
                      tuple(user) + tuple(added), True, code_location()))
    return TrackedDataFrame(recorder, out, new_state, op_id)


def _training_op(recorder: Any, fitted: FittedModel) -> int:
    return recorder.steps[fitted.op_id].inputs[0]


def _folder_of(recorder: Any, op_id: int) -> str:
    return f"{recorder.store_root}/models/{recorder.run_id}/op{op_id}"

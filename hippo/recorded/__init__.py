"""The model of a recorded run that capture writes and every reader shares.

Hidden column names and ids (:mod:`~hippo.recorded.ids`), typed and versioned step
specs (:mod:`~hippo.recorded.spec`) and steps (:mod:`~hippo.recorded.steps`), the
lineage state rows carry (:mod:`~hippo.recorded.state`), rebuilding a step's DataFrame
from its spec (:mod:`~hippo.recorded.rebuild`), pinned reads
(:mod:`~hippo.recorded.pinned`), and :class:`~hippo.recorded.run.RecordedRun`, a run's
steps as a networkx DAG.
"""

"""What the projector tells of the runs of events it folds: metrics, and the spans made from them when tracing.

Each event is folded once (a replayed batch folds nothing), so executions are counted and spans made once. Spans
are exported after the batch committed; their node types come from the workflow definitions, read once per version.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from spane_core.errors import SpaneError
from spane_core.events import Envelope
from spane_core.ids import WorkflowId
from spane_core.observe.metrics import Metrics
from spane_core.observe.otel import SpanEmitter
from spane_core.observe.spans import SpanRecord, spans_for
from spane_core.state import ExecutionState
from spane_core.store.executions import WorkflowSource

log = logging.getLogger("spane.projector")
MAX_DEFINITIONS = 1000


class Observer:
    def __init__(self, metrics: Metrics, spans: SpanEmitter | None = None, workflows: WorkflowSource | None = None):
        self.metrics = metrics
        self.spans = spans
        self.workflows = workflows
        self._records: list[SpanRecord] = []
        self._node_types: dict[tuple[str, int], dict[str, str]] = {}

    def folded(self, before: ExecutionState | None, run: list[Envelope]) -> None:
        self.metrics.folded(run)
        self.metrics.projector_events.inc(len(run))
        if self.spans is not None:
            self._records += spans_for(before, run)

    async def flush(self) -> None:
        """Export the spans of the runs folded since the last flush."""
        if self.spans is None or not self._records:
            return
        records, self._records = self._records, []
        await self._load_node_types(records)
        exported = self.spans.emit(records, self._node_type)
        self.metrics.projector_spans.inc(exported)

    async def _load_node_types(self, records: Sequence[SpanRecord]) -> None:
        if self.workflows is None:
            return
        wanted = {(r.workflow_id, r.workflow_version) for r in records if r.kind == "node"} - self._node_types.keys()
        if len(self._node_types) + len(wanted) > MAX_DEFINITIONS:
            self._node_types.clear()
        for workflow_id, version in wanted:
            try:
                workflow = await self.workflows.get(WorkflowId(workflow_id), version)
            except SpaneError as e:  # deleted meanwhile: its spans go without node types
                log.debug("no definition of %s v%d for spans: %s", workflow_id, version, e)
                self._node_types[(workflow_id, version)] = {}
                continue
            self._node_types[(workflow_id, version)] = {n.id: n.type for n in workflow.definition.nodes}

    def _node_type(self, record: SpanRecord) -> str | None:
        return self._node_types.get((record.workflow_id, record.workflow_version), {}).get(record.node_id or "")

    def shutdown(self) -> None:
        if self.spans is not None:
            self.spans.shutdown()

"""The engine: executes a workflow graph for one run (its staged changes are applied later).

A node runs when an edge into it fires. Actions marked `concurrent` (I/O such as HTTP calls)
run in a thread pool, so independent branches overlap; the others run in the run's own thread,
which is the one holding the database connection (and, in test mode, the transaction that is
rolled back). Failed attempts are retried with backoff when the failure is transient (or a
timeout); a node that still fails fires its `error` port when an edge leaves it, else the run
fails. Nothing is written while a graph executes: changes are staged in the RunContext and
applied at the end by `apps.workflows.effects.effects_apply`, in the caller's transaction.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.utils import timezone

from apps.workflows.actions import (
    ERROR_PORT,
    Action,
    ActionError,
    Fire,
    TransientError,
    Wait,
    action_class,
)
from apps.workflows.context import NodeContext, RunContext
from apps.workflows.graph import Graph
from apps.workflows.models import RunStatus
from cdp.errors import DomainError

logger = logging.getLogger(__name__)

# A run stops (failed) after this many node executions: fan-out can't run away.
MAX_NODE_EXECUTIONS = 1000


def json_safe(value: Any) -> Any:
    """The value as JSON would carry it (datetimes and other objects as strings)."""
    return orjson.loads(orjson.dumps(value, default=str))


@dataclass(slots=True)
class NodeRecord:
    """One attempt of one node, as the trace stores it."""

    node_id: str
    action: str
    input: Any
    port: str
    output: Any
    started_at: datetime
    duration_ms: int
    error: str = ""
    attempt: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node_id,
            "action": self.action,
            "input": json_safe(self.input),
            "port": self.port,
            "output": json_safe(self.output),
            "started_at": self.started_at.isoformat(),
            "duration_ms": self.duration_ms,
            "error": self.error,
            "attempt": self.attempt,
        }


@dataclass(slots=True)
class Outcome:
    status: RunStatus
    error: str = ""
    records: list[NodeRecord] = field(default_factory=list)
    # Delayed continuations: {"node", "port", "payload", "due" (ISO time)}.
    pending: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class _Task:
    node_id: str
    payload: Any
    attempt: int = 1
    not_before: float = 0.0


@dataclass(slots=True)
class _Result:
    task: _Task
    action: str
    node: NodeContext
    started_at: datetime
    duration: float
    result: Fire | Wait | list[Fire] | None = None
    error: BaseException | None = None


class Execution:
    """Executes a graph for one RunContext, from given tasks (the start node, or the nodes
    after a delay)."""

    def __init__(self, graph: Graph, run: RunContext) -> None:
        self.graph = graph
        self.run = run
        self.records: list[NodeRecord] = []
        self.pending: list[dict[str, Any]] = []
        self.failure = ""
        self.executions = 0
        self.default_timeout = float(settings.CDP_WORKFLOW_NODE_TIMEOUT)

    # --- entry points ---------------------------------------------------------------------

    def from_start(self, payload: Any) -> Outcome:
        return self._execute([_Task(self.graph.start, payload)])

    def from_ports(self, fired: list[tuple[str, str, Any]]) -> Outcome:
        """Continue after nodes that fired (node id, port, payload): a delay that is due."""
        tasks = [
            _Task(target, payload)
            for node_id, port, payload in fired
            for target in self.graph.next_nodes(node_id, port)
        ]
        return self._execute(tasks)

    # --- the loop -------------------------------------------------------------------------

    def _execute(self, tasks: list[_Task]) -> Outcome:
        ready: deque[_Task] = deque(tasks)
        backoff: list[_Task] = []
        running: dict[Future[_Result], tuple[_Task, float]] = {}
        pool: ThreadPoolExecutor | None = None
        try:
            while (ready or backoff or running) and not self.failure:
                now = time.monotonic()
                for task in [t for t in backoff if t.not_before <= now]:
                    backoff.remove(task)
                    ready.append(task)
                while ready and not self.failure:
                    task = ready.popleft()
                    self.executions += 1
                    if self.executions > MAX_NODE_EXECUTIONS:
                        self.failure = f"more than {MAX_NODE_EXECUTIONS} node executions"
                        break
                    node = self.graph.nodes[task.node_id]
                    cls = action_class(node["action"])
                    if cls is not None and cls.is_concurrent(node.get("config") or {}):
                        if pool is None:
                            pool = ThreadPoolExecutor(
                                max_workers=settings.CDP_WORKFLOW_MAX_PARALLEL,
                                thread_name_prefix="workflow-node",
                            )
                        future = pool.submit(self._attempt, task)
                        running[future] = (task, self._deadline(task))
                    else:
                        self._handle(self._attempt(task), ready, backoff)
                if self.failure:
                    break
                if running:
                    now = time.monotonic()
                    horizon = min(
                        [deadline for _, deadline in running.values()]
                        + [t.not_before for t in backoff]
                    )
                    done, _ = wait(
                        list(running), timeout=max(horizon - now, 0), return_when=FIRST_COMPLETED
                    )
                    for future in done:
                        running.pop(future)
                        self._handle(future.result(), ready, backoff)
                    now = time.monotonic()
                    for future, (task, deadline) in list(running.items()):
                        if deadline <= now and not future.done():
                            # The thread can't be stopped: its result is dropped, and since
                            # the attempt staged its changes apart, it changes nothing.
                            running.pop(future)
                            self._handle(self._timed_out(task), ready, backoff)
                elif backoff and not ready:
                    time.sleep(max(min(t.not_before for t in backoff) - time.monotonic(), 0))
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        if self.failure:
            return Outcome(RunStatus.FAILED, self.failure, self.records, [])
        status = RunStatus.WAITING if self.pending else RunStatus.SUCCEEDED
        return Outcome(status, "", self.records, self.pending)

    def _action(self, task: _Task) -> tuple[type[Action], dict[str, Any]]:
        node = self.graph.nodes[task.node_id]
        cls = action_class(node["action"])
        if cls is None:
            raise ActionError(f"unknown action {node['action']!r}")
        return cls, node.get("config") or {}

    def _deadline(self, task: _Task) -> float:
        try:
            cls, config = self._action(task)
        except ActionError:
            return time.monotonic() + self.default_timeout
        return time.monotonic() + cls(config).timeout_seconds(self.default_timeout)

    def _attempt(self, task: _Task) -> _Result:
        node_ctx = NodeContext(self.run, task.node_id)
        action_name = self.graph.nodes[task.node_id]["action"]
        started_at = timezone.now()
        begin = time.monotonic()
        result = _Result(task, action_name, node_ctx, started_at, 0.0)
        try:
            cls, config = self._action(task)
            action = cls(node_ctx.render(config) if cls.templated else config)
            result.result = action.run(node_ctx, task.payload)
            result.duration = time.monotonic() - begin
            limit = action.timeout_seconds(self.default_timeout)
            if not cls.is_concurrent(config) and result.duration > limit:
                # In-thread actions can't be interrupted: one that overran fails all the same.
                result.result = None
                result.error = TransientError(f"timed out after {limit:g}s")
        except (ActionError, DomainError) as exc:
            result.error = exc
        except Exception as exc:  # an action's bug fails its node, visibly, not the worker
            logger.exception("Workflow %s node %s failed", self.run.workflow_id, task.node_id)
            result.error = exc
        result.duration = time.monotonic() - begin
        return result

    def _timed_out(self, task: _Task) -> _Result:
        cls, config = self._action(task)
        limit = cls(config).timeout_seconds(self.default_timeout)
        return _Result(
            task,
            cls.name,
            NodeContext(self.run, task.node_id),
            timezone.now() - timedelta(seconds=limit),
            limit,
            error=TransientError(f"timed out after {limit:g}s"),
        )

    # --- results --------------------------------------------------------------------------

    def _handle(self, res: _Result, ready: deque[_Task], backoff: list[_Task]) -> None:
        task = res.task
        if res.error is None:
            fires = self._fires(res)
            if fires is not None:
                self.run.merge(res.node)
                self._record(res, ",".join(f.port for f in fires), self._output(res, fires))
                for fire in fires:
                    for target in self.graph.next_nodes(task.node_id, fire.port):
                        ready.append(_Task(target, fire.payload))
                return
        error = res.error or ActionError("unknown failure")
        message = str(error) or type(error).__name__
        if not isinstance(error, ActionError | DomainError):
            message = f"{type(error).__name__}: {message}"
        self._record(res, "", None, message)
        cls = action_class(res.action)
        policy = (
            cls(self.graph.nodes[task.node_id].get("config") or {}).retry_policy() if cls else None
        )
        if isinstance(error, TransientError) and policy and task.attempt < policy.attempts:
            delay = policy.delay_before(task.attempt + 1)
            backoff.append(
                _Task(task.node_id, task.payload, task.attempt + 1, time.monotonic() + delay)
            )
            return
        targets = self.graph.next_nodes(task.node_id, ERROR_PORT)
        if targets:
            self.records[-1].port = ERROR_PORT
            payload = {"error": message, "node": task.node_id, "input": task.payload}
            for target in targets:
                ready.append(_Task(target, payload))
        else:
            self.failure = f"node {task.node_id!r} ({res.action}): {message}"

    def _fires(self, res: _Result) -> list[Fire] | None:
        """The result as fires (None when it was invalid: res.error is set)."""
        raw = res.result
        if isinstance(raw, Wait):
            if self.run.test:
                # A test run doesn't wait: the delay is shown in the trace and skipped.
                res.node.log(f"test mode: skipped a wait of {raw.seconds:g}s")
                raw = Fire(raw.port, raw.payload)
            else:
                due = timezone.now() + timedelta(seconds=raw.seconds)
                self.pending.append(
                    {
                        "node": res.task.node_id,
                        "port": raw.port,
                        "payload": json_safe(raw.payload),
                        "due": due.isoformat(),
                    }
                )
                res.node.log(f"waiting until {due.isoformat()}")
                return []
        fires = [raw] if isinstance(raw, Fire) else list(raw or [])
        cls = action_class(res.action)
        ports = cls.all_ports() if cls else ()
        for fire in fires:
            if not isinstance(fire, Fire) or fire.port not in ports:
                res.error = ActionError(f"the action fired an unknown port: {fire!r}")
                return None
        return fires

    def _output(self, res: _Result, fires: list[Fire]) -> dict[str, Any]:
        node = res.node
        if len(fires) == 1 and fires[0].payload is res.task.payload:
            # Passed through unchanged: the trace's input already holds it.
            output: dict[str, Any] = {"payload_is_input": True}
        elif len(fires) == 1:
            output = {"payload": fires[0].payload}
        else:
            output = {"fired": [{"port": f.port, "payload": f.payload} for f in fires]}
        if node.variables:
            output["variables"] = node.variables
        if node.effects:
            output["changes"] = [effect.as_dict() for effect in node.effects]
        if node.requests:
            output["requests"] = node.requests
        if node.logs:
            output["logs"] = node.logs
        return output

    def _record(self, res: _Result, port: str, output: Any, error: str = "") -> None:
        self.records.append(
            NodeRecord(
                node_id=res.task.node_id,
                action=res.action,
                input=res.task.payload,
                port=port,
                output=output,
                started_at=res.started_at,
                duration_ms=round(res.duration * 1000),
                error=error,
                attempt=res.task.attempt,
            )
        )

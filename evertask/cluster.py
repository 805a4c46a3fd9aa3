"""Cluster membership: this host's node row, its lease, and the rows no live node owns.

Every host with a storage is a node of the cluster formed by the hosts on that database.
It registers a row with a lease and renews it every heartbeat; the rows it will run carry
its id (stamped by the dispatching INSERT, or by a claim). A live node's rows are never
taken. A worker node polls for rows nobody owns (those of dispatch-only nodes, of nodes that
stopped, of dead nodes) and takes them over; alone on a database that sends notices
(PostgreSQL) it waits for one, checking once per heartbeat. A node that cannot renew its
lease starts nothing new until it can; a node whose lease ran out rejoins under a new id
(docs/cluster.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from .clock import Clock
from .events import NODE_EVENT_TYPE, EventBus, EventKind, TaskEvent
from .inflight import InFlight
from .lifecycle import Lifecycle
from .options import EverTaskOptions
from .queues import QueueManager
from .storage.memory import MemoryTaskStorage
from .storage.models import NodeInfo, QueuedTask
from .storage.protocol import NotifyingStorage, TaskStorage

__all__ = ["DEAD_NODE_RETENTION", "NOTICE_CANCEL", "NOTICE_WORK", "Membership", "Node"]

log = logging.getLogger("evertask.cluster")

DEAD_NODE_RETENTION = timedelta(hours=1)
"""How long a dead node stays listed (for monitoring) once nothing pending is its own."""

PAGE_SIZE = 100
"""Most rows one poll claims."""
TAKEOVER_PAGE_SIZE = 1000
"""Most rows one claim of the startup pass (or of a rejoin) takes: each claim is a commit,
and a commit can cost a disk flush."""
NOTICE_WORK = "work"
"""Notice: rows no live node owns are waiting (a dispatch-only node dispatched, a node left)."""
NOTICE_CANCEL = "cancel:"
"""Notice prefix: a task was cancelled (followed by its id)."""

Adopt = Callable[[list[QueuedTask]], Awaitable[None]]
"""Puts claimed rows into this host's engine (the recovery's row handling)."""
CancelHere = Callable[[uuid.UUID], None]
"""Stops what this process holds of a task cancelled on another node."""
_CANCEL_CHECK_CHUNK = 100
"""Ids per cancel-check query: binding them costs the loop a few microseconds each, so a
chunk keeps the loop's stretch short (500 ids held it over 2 ms on SQLite)."""
_BACKLOG_POLL = 0.005
"""Seconds between polls while orphaned rows wait for room in this node's queues."""
_RUNS_PER_LANE = 8


class Node:
    """This host's identity in the cluster (a new id at every start, and after a lost lease)."""

    __slots__ = ("id", "runs_workers")

    def __init__(self, runs_workers: bool = True) -> None:
        self.id = uuid.uuid4()
        self.runs_workers = runs_workers

    @property
    def owner(self) -> uuid.UUID | None:
        """The owner stamped on rows this host dispatches (``None`` on a dispatch-only node:
        any worker node may claim them)."""
        return self.id if self.runs_workers else None


class Membership:
    """Registers the node, heartbeats, and takes over rows no live node owns."""

    def __init__(
        self,
        *,
        node: Node,
        options: EverTaskOptions,
        storage: TaskStorage,
        clock: Clock,
        lifecycle: Lifecycle,
        queues: QueueManager,
        inflight: InFlight,
        events: EventBus | None = None,
    ) -> None:
        self.node = node
        self._events = events
        self._options = options
        self._storage = storage
        self._clock = clock
        self._lifecycle = lifecycle
        self._queues = queues
        # how many runs each queue should hold: a few per lane, so that a node does not
        # hoard what other nodes could run
        self._wanted = [
            (queue, min(queue.capacity, _RUNS_PER_LANE * queue.parallelism))
            for queue in queues.queues.values()
        ]
        self._share = sum(wanted for _, wanted in self._wanted)
        """The most claimed rows this node holds in flight at a time (see ``_room``)."""
        self._inflight = inflight
        self._lease = options.lease_duration
        self._heartbeat = options.effective_heartbeat_interval
        self._poll = options.cluster_poll_interval
        self._adopt: Adopt | None = None
        self._cancel_here: CancelHere | None = None
        self._renewed = 0.0  # time.monotonic() of the last renewal
        self._held = False
        self.claiming = True
        """``False`` while adaptive throttling holds this node: it claims no rows."""
        self._watchdog: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        self._sweep = False
        self._backlog = False  # the last poll left rows behind for want of room
        self._released = 0  # releases here whose claim has not ended (see claim_pending)
        self.on_claimed: Callable[[], None] | None = None
        """Called when a claim that releases here asked for has ended (the host's activity)."""
        self._dead: set[uuid.UUID] = set()  # dead nodes already reported
        self._cancels_due = False
        self._recovered = asyncio.Event()
        self._notifier = storage if isinstance(storage, NotifyingStorage) else None
        # alone, a node polls unless something tells it of new work: notices (a storage that
        # sends them), or rows only this process writes (memory)
        self._listening = isinstance(storage, MemoryTaskStorage)
        self._announcing: set[str] = set()
        self._sending: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.nodes: list[NodeInfo] = []
        """Every registered node, as read at the last heartbeat."""

    @property
    def takes_work(self) -> bool:
        """Whether this node takes new work now: it runs workers, is running, and neither
        adaptive throttling nor a late lease holds it."""
        return (
            self.node.runs_workers and self._lifecycle.running and self.claiming and not self._held
        )

    @property
    def alone(self) -> bool:
        """Whether no other node was registered at the last heartbeat."""
        return all(n.id == self.node.id for n in self.nodes)

    # -- joining and leaving ---------------------------------------------------------------
    async def join(self) -> None:
        """Register this node (at start, before anything is claimed)."""
        started = time.monotonic()
        now = self._clock.now()
        queues = tuple(self._queues.queues) if self.node.runs_workers else ()
        await self._storage.register_node(
            NodeInfo(
                id=self.node.id,
                host_name=socket.gethostname(),
                pid=os.getpid(),
                started_at_utc=now,
                last_heartbeat_utc=now,
                lease_expires_utc=now + self._lease,
                queues=queues,
                runs_workers=self.node.runs_workers,
            )
        )
        self._renewed_at(started)
        await self._read_nodes()
        await self._listen()

    def start(self, adopt: Adopt, cancel_here: CancelHere) -> None:
        """Heartbeat (and, on a worker node, poll for orphaned rows and for cancels made on
        other nodes) in the background."""
        self._adopt = adopt
        self._cancel_here = cancel_here
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._heartbeats(), name="evertask-heartbeat")]
        if self.node.runs_workers:
            self._tasks.append(loop.create_task(self._polls(), name="evertask-cluster-poll"))

    async def leave(self) -> None:
        """A graceful stop: release this node's pending rows to the others, deregister."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._sending, return_exceptions=True)
        self._tasks = []  # (the storage stops listening when it closes, after the notice)
        try:
            released = await self._storage.deregister_node(self.node.id)
        except Exception as exc:
            log.warning(
                "Could not deregister node %s (%r); its tasks move to other nodes when its "
                "lease ends.",
                self.node.id,
                exc,
            )
            return
        if released:
            log.info("Node %s left; %d pending task(s) released.", self.node.id, released)
            self.announce(NOTICE_WORK)
            await asyncio.gather(*self._sending, return_exceptions=True)

    # -- heartbeats ------------------------------------------------------------------------
    async def _heartbeats(self) -> None:
        interval = self._heartbeat.total_seconds()
        due = time.monotonic() + interval
        while True:  # at a fixed rate: a slow heartbeat does not push the next ones back
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            due = max(due + interval, time.monotonic())
            await self.heartbeat()

    async def heartbeat(self) -> None:
        """Renew the lease, read the nodes and the paused queues; rejoin if the lease ran out."""
        started = time.monotonic()
        now = self._clock.now()
        try:
            renewed = await self._storage.renew_lease(self.node.id, now, now + self._lease)
        except Exception as exc:
            log.warning(
                "Node %s could not renew its lease (%r); %.1f s of it left.",
                self.node.id,
                exc,
                self._lease.total_seconds() - (time.monotonic() - self._renewed),
            )
            return
        if not renewed or time.monotonic() >= self._renewed + self._lease.total_seconds():
            # the lease ran out (or ran out while the renewal was on its way: the storage
            # judged it by the time the call began): other nodes may own its rows now
            await self._rejoin()
            return
        self._renewed_at(started)
        try:
            await self._read_nodes()
            await self._read_paused_queues()
            await self._listen()  # (again if the listening connection was lost)
            if any(not n.is_alive(now) for n in self.nodes):
                await self._storage.remove_dead_nodes(now - DEAD_NODE_RETENTION)
        except Exception as exc:
            log.warning("Cluster bookkeeping failed (%r); retrying at the next heartbeat.", exc)

    def _renewed_at(self, started: float) -> None:
        """The lease was renewed by a call begun at ``started`` (monotonic): start tasks
        again, and hold them once less than a heartbeat of this lease is left unless a
        later renewal came first (a renewal can be late for any reason: a slow database,
        a busy event loop), so a node whose rows others may take starts nothing new."""
        self._renewed = started
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        loop = asyncio.get_running_loop()
        deadline = started + self._lease.total_seconds() - self._heartbeat.total_seconds()
        if deadline <= loop.time():  # an answer that came too late to count
            self._hold()
            return
        self._release_hold()
        self._watchdog = loop.call_at(deadline, self._hold)

    async def _read_nodes(self) -> None:
        self.nodes = await self._storage.list_nodes()
        now = self._clock.now()
        for node in self.nodes:
            if node.id != self.node.id and not node.is_alive(now) and node.id not in self._dead:
                self._dead.add(node.id)
                message = (
                    f"Node {node.id} ({node.host_name}, pid {node.pid}) is dead: no heartbeat "
                    f"since {node.last_heartbeat_utc.isoformat()}; its tasks move to the live "
                    "nodes."
                )
                log.warning(message)
                self._publish(EventKind.NODE_DEAD, node, message, "Warning")
        self._dead &= {n.id for n in self.nodes}  # (reported once while listed)
        # polls run while other nodes are registered; alone, one poll per heartbeat takes
        # what a node that came and went between two heartbeats left (a script's
        # dispatch-only host, the last node that stopped)
        self._sweep = self.alone
        self._wake.set()

    async def _read_paused_queues(self) -> None:
        """Apply pauses made on other nodes (and resumes)."""
        paused = await self._storage.get_paused_queues()
        for name, queue in self._queues.queues.items():
            if name in paused and not queue.paused:
                queue.pause()
            elif name not in paused and queue.paused:
                queue.resume()

    def _hold(self) -> None:
        """Less than a heartbeat of the lease is left: start no new task until renewed."""
        self._watchdog = None
        if self._held:
            return
        log.error(
            "Node %s starts no new task until its lease is renewed: other nodes may take its "
            "tasks when the lease ends.",
            self.node.id,
        )
        self._held = True
        for queue in self._queues.queues.values():
            queue.hold()

    def _release_hold(self) -> None:
        if self._held:
            self._held = False
            log.info("Node %s renewed its lease; starting tasks again.", self.node.id)
            for queue in self._queues.queues.values():
                queue.release_hold()

    async def _rejoin(self) -> None:
        """The lease ran out (other nodes may own this node's rows now): drop the runs not
        started yet, rejoin under a new id and claim again what nobody took."""
        old = self.node.id
        dropped = 0
        for queue in self._queues.queues.values():
            for run in queue.take_waiting():
                self._inflight.discard(run.id)
                dropped += 1
        self.node.id = uuid.uuid4()
        log.error(
            "Node %s lost its lease; it rejoins as %s (%d waiting task(s) handed back; "
            "running ones finish, and may also run elsewhere).",
            old,
            self.node.id,
            dropped,
        )
        await self.join()
        self._release_hold()
        await self.claim(due_only=False)

    # -- claiming --------------------------------------------------------------------------
    def recovered(self) -> None:
        """The startup claim is over: polls may begin (so they never race it)."""
        self._recovered.set()

    async def _polls(self) -> None:
        interval = self._poll.total_seconds()
        last_cancel_check = 0.0
        await self._recovered.wait()
        while True:
            if self.alone and self._listening and not self._sweep and not self._backlog:
                # alone, where notices wake this node (a dispatch, a cancel, a node joining)
                await self._nap(None)  # until a heartbeat or a notification
            else:  # a backlog of orphaned rows is taken as fast as the queues make room
                await self._nap(_BACKLOG_POLL if self._backlog else interval)
            self._sweep = False
            if not self._lifecycle.running:
                continue
            try:
                if self._cancels_due or time.monotonic() - last_cancel_check >= interval:
                    self._cancels_due = False
                    last_cancel_check = time.monotonic()
                    await self.check_cancels()
                if self.takes_work:
                    await self.claim(due_only=True)
                else:
                    self._backlog = False  # (no 5 ms polls for room while held)
            except Exception as exc:
                self._backlog = False
                log.warning("Polling the cluster's tasks failed (%r).", exc)

    async def _nap(self, timeout: float | None) -> None:
        """Sleep until ``timeout`` or a nudge (a heartbeat, a notification)."""
        if not self._wake.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
        self._wake.clear()

    # -- notifications (a storage that can wake the other nodes at once) -------------------
    async def _listen(self) -> None:
        notifier = self._notifier
        if notifier is None:
            return
        try:
            await notifier.listen(self._on_notice)
        except Exception as exc:
            self._listening = False
            log.warning("Cannot listen for notifications (%r); polling meanwhile.", exc)
        else:
            self._listening = True

    def _on_notice(self, notice: str) -> None:
        if notice == NOTICE_WORK:
            self._backlog = True
        elif notice.startswith(NOTICE_CANCEL):
            self._cancels_due = True
        self._wake.set()

    def rows_released(self) -> None:
        """Rows nobody owns were just stored or released here (continuations whose parent
        finished): a worker node claims them at once, as the queues make room; a
        dispatch-only node tells the workers, where the storage can."""
        if self.node.runs_workers:
            self._released += 1
            self._on_notice(NOTICE_WORK)
        else:
            self.announce(NOTICE_WORK)

    @property
    def claim_pending(self) -> bool:
        """Rows were released here (continuations, batch members) and this node's claim,
        which takes them, has not run since: the host is not idle yet (while it may claim)."""
        return self._released > 0 and self.claiming and not self._held

    def hand_over(self) -> tuple[uuid.UUID | None, int]:
        """Whom a terminal status write of this host hands the continuations it releases
        to, and at most how many: this node, as many as its claim would take now (it takes
        work, and its queues have room), else nobody (``None``: any node's claim takes
        them)."""
        room = self._room() if self.takes_work else 0
        return (self.node.id if room else None), room

    async def adopt_released(self, rows: list[QueuedTask]) -> None:
        """A terminal status write of this host released ``rows`` (continuations that
        became Queued): those it handed to this node are adopted as the rows a claim takes
        (each waits for its slot); the others are left to the claims."""
        mine = [row for row in rows if row.owner_node == self.node.id]
        if len(mine) < len(rows):
            # more than this node had room for, or it took no work (or it rejoined under a
            # new id since): unowned rows, which the other nodes may take too
            self.announce(NOTICE_WORK)
            self.rows_released()
        if mine:
            assert self._adopt is not None
            await self._adopt(mine)
            self._inflight.mark_claimed(row.id for row in mine)

    def announce(self, notice: str) -> None:
        """Tell the other nodes at once, where the storage can (in the background; a
        notice already on its way is not sent twice)."""
        notifier = self._notifier
        if notifier is None or notice in self._announcing:
            return
        self._announcing.add(notice)

        async def send() -> None:
            try:
                await notifier.notify(notice)
            except Exception as exc:
                log.debug("Could not send notice %r (%r); the nodes poll.", notice, exc)
            finally:
                self._announcing.discard(notice)

        task = asyncio.get_running_loop().create_task(send())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def claim(self, *, due_only: bool) -> int:
        """Claim rows no live node owns, page by page, and adopt them; return how many.

        ``due_only`` (a poll) takes only rows due now and no more than the queues have
        room for; when they fill up first, the poll comes back as soon as there is room.
        Otherwise (the startup pass, a rejoin) it first takes every row not due yet (they
        wait on timers and hold no lane), then the due ones as a poll does: a node that
        starts while a backlog waits takes its share, and the polls of every node the rest.
        """
        assert self._adopt is not None
        total = 0
        self._backlog = False
        released = self._released
        try:
            if not due_only:
                total = await self._claim_pages(later=True, takeover=True)
            total += await self._claim_pages(later=False, takeover=not due_only)
        finally:
            if not self._backlog:  # (else the next poll, as soon as there is room)
                self._released -= released
            elif not due_only:
                self._released += 1  # (the host is busy until the polls took the rest)
            if released and self.on_claimed is not None:
                self.on_claimed()
        return total

    async def _claim_pages(self, *, later: bool, takeover: bool) -> int:
        """Claim the rows scheduled after now (``later``), or those due now as the queues
        have room for them; ``takeover``: the startup pass or a rejoin."""
        assert self._adopt is not None
        total = 0
        while self._lifecycle.running:
            take = TAKEOVER_PAGE_SIZE if later else self._room()
            if take <= 0:
                self._backlog = True
                break
            now = self._clock.now()
            rows = await self._storage.claim_orphans(
                self.node.id,
                now,
                take,
                due_before=None if later else now,
                scheduled_after=now if later else None,
            )
            if rows:
                log.debug("Node %s took over %d task(s).", self.node.id, len(rows))
                if takeover or any(not n.is_alive(now) for n in self.nodes if n.id != self.node.id):
                    # (at start, or while a dead node is listed: not the steady flow of a
                    # dispatch-only node's tasks)
                    self._publish_takeover(len(rows))
                await self._adopt(rows)
                if not later:  # (the rows scheduled for later hold no lane)
                    self._inflight.mark_claimed(row.id for row in rows)
            total += len(rows)
            if len(rows) < take:
                break
        return total

    def _publish(self, kind: EventKind, node: NodeInfo, message: str, severity: str) -> None:
        events = self._events
        if events is None or not events.has_subscribers:
            return
        events.publish(
            TaskEvent(
                task_id=node.id,
                timestamp=self._clock.now(),
                severity=severity,
                kind=kind,
                task_type=NODE_EVENT_TYPE,
                handler_type="",
                parameters=json.dumps(
                    {"nodeId": str(node.id), "hostName": node.host_name, "pid": node.pid}
                ),
                message=message,
                queue_name="",
            )
        )

    def _publish_takeover(self, count: int) -> None:
        me = next((n for n in self.nodes if n.id == self.node.id), None)
        if me is None:
            return
        message = f"Node {me.id} ({me.host_name}, pid {me.pid}) took over {count} task(s)."
        self._publish(EventKind.TAKEOVER, me, message, "Information")

    async def check_cancels(self) -> int:
        """Stop the runs held here whose rows were cancelled elsewhere; return how many."""
        assert self._cancel_here is not None
        found = 0
        for chunk in self._inflight.id_chunks(_CANCEL_CHECK_CHUNK):
            for task_id in await self._storage.cancelled_among(chunk):
                log.info("Task %s was cancelled on another node; stopping it here.", task_id)
                self._cancel_here(task_id)
                found += 1
        return found

    def _room(self) -> int:
        """How many rows a claim should take now: what the queues' free places hold (see
        ``_wanted``), a page at most, and no more than keeps the claimed rows not finished
        here within the node's share of all its queues.

        A claim takes the oldest rows whatever their queue, so the free places of one
        queue (often "recurring", empty) would otherwise let a node take a whole burst
        for another; its own dispatches are not counted there (they were never anyone
        else's), so a queue they fill does not keep its free queues from claiming."""
        free = 0
        for queue, wanted in self._wanted:  # (every Completed write asks: no max() calls)
            short = wanted - queue.active - len(queue)
            if short > 0:
                free += short
        room = min(PAGE_SIZE, free, self._share - self._inflight.claimed)
        return room if room > 0 else 0

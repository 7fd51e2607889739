"""``Link``: every command the Redis broker sends, through redis-py's asyncio client.

The broker decides; the link knows the keys, the scripts and the replies (its ``views`` the
records that cross daemons for ``tail`` and ``emit --wait``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterable, Sequence
from typing import Any

import anyio

from ...bus.delivery import Delivery, DeliveryState, EmitterStats, ListenerStats
from ...config import BackendConfig
from ...errors import BackendError
from ..shared.codec import (
    decode_failed,
    decode_payload,
    encode_failed,
    encode_payload,
    encode_record,
)
from ..shared.counts import bus_stats, pid_alive
from ..shared.link import masked
from ..shared.outbound import Emit
from . import scripts as lua
from .codec import listener_of, stream_of, streams_of
from .views import Views

__all__ = ("Link", "open_link")

logger = logging.getLogger("eventbus.redis")

_GROUP = "eventbus"
_OLDEST = (7, 0)
_ALIVE_MS = 3000  # a daemon whose heartbeat is older than this is not counted as live


async def open_link(config: BackendConfig, name: str) -> Link:
    """Connect and check the server (Redis 7.0 or later) and that no live daemon has this
    daemon's name; a :class:`BackendError` names the URL and what to do. The bus's keys are
    under its prefix in braces (a Redis Cluster hash tag)."""
    url, prefix = masked(config.url), "{" + config.prefix + "}"
    try:
        import asyncio

        asyncio.get_running_loop()
    except RuntimeError:
        raise BackendError(url, "the Redis backend runs on asyncio (redis-py), not on this "
                           "event loop", "serve on asyncio, the default") from None
    try:
        from redis.asyncio import from_url
        from redis.exceptions import RedisError
    except ImportError:
        raise BackendError(url, "redis-py is not installed",
                           "pip install 'eventbus-cli[redis]'") from None
    client = from_url(config.url, socket_connect_timeout=2,
                      socket_timeout=config.command_timeout, health_check_interval=5)
    try:
        info = await client.info("server")
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise BackendError(url, f"cannot reach the server: {str(exc).rstrip('.')}",
                           "start Redis there, or "
                           "fix [backend] url") from None
    version = str(info.get("redis_version", "0"))
    numbers = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    if numbers < _OLDEST:
        await client.aclose()
        raise BackendError(url, f"Redis {version} is too old", "eventbus needs Redis 7.0 or "
                           "later (or Valkey 7.2 or later)")
    try:
        policy = str((await client.info("memory")).get("maxmemory_policy", "noeviction"))
    except (RedisError, OSError):
        policy = "noeviction"  # INFO memory refused (a managed Redis): nothing to check
    if policy != "noeviction":
        await client.aclose()
        raise BackendError(url, f"Redis evicts keys under memory pressure (maxmemory-policy "
                           f"{policy}), which would lose acknowledged deliveries without a "
                           "word", "set maxmemory-policy noeviction in redis.conf (or CONFIG "
                           "SET maxmemory-policy noeviction): Redis then refuses writes when "
                           "full, and eventbus refuses emits with backend_unavailable")
    link = Link(client, url, name, prefix, version)
    try:
        await link.check_name()
    except BaseException:
        await client.aclose()
        raise
    return link


class Link:
    """One daemon's connection to the bus in Redis (a :class:`~..shared.link.Link`)."""

    store = "Redis"

    def __init__(self, client: Any, url: str, name: str, prefix: str, version: str) -> None:
        from redis.exceptions import ConnectionError as LostError
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as SlowError

        self.errors: tuple[type[BaseException], ...] = (RedisError, OSError)
        """What a lost or refusing server raises."""
        self.lost_errors: tuple[type[BaseException], ...] = (LostError, SlowError, OSError)
        """What a lost server raises (the others: a command it refused)."""
        self._redis = client
        self.url = url
        self.name = name
        self.p = prefix
        self.version = version
        self.daemons: list[dict[str, Any]] = []
        self._scripts = {key: client.register_script(getattr(lua, key)) for key in lua.__all__}
        self.views = Views(client, prefix, name, self.errors)
        """Records of the live views (tail, emit --wait) between this daemon and others."""
        self._started = time.time()
        self._sooner = anyio.Event()  # set when this daemon adds to P:due
        self.regrouped = False
        """Set when a read found a listener's stream or group gone (and made it again)."""
        self.pauses: dict[str, float | None] = {}
        """The paused listeners of the bus, as the last beat read them."""

    stream_of = staticmethod(stream_of)
    listener_of = staticmethod(listener_of)

    def foreign(self, exc: BaseException) -> str | None:
        """The key a script refused as foreign (FOREIGN), or a command's WRONGTYPE."""
        text = str(exc)
        if "FOREIGN " in text or "WRONGTYPE" in text:  # the first names the key
            return text.partition("FOREIGN ")[2] or text
        return None

    # -- start and stop ----------------------------------------------------------------------

    async def check_name(self) -> None:
        held = await self._redis.hgetall(f"{self.p}:daemon:{self.name}")
        if not held:
            return
        host, pid = held.get(b"host", b"").decode(), int(held.get(b"pid", b"0"))
        if host == socket.gethostname() and not pid_alive(pid):
            return  # this host's daemon of that name died: this one takes its place
        raise BackendError(self.url, f"a daemon named {self.name!r} runs already (on {host}, "
                           f"pid {pid})", "give this daemon its own [backend] name")

    async def close(self) -> None:
        with anyio.move_on_after(2):
            pipe = self._redis.pipeline(transaction=False)
            pipe.delete(f"{self.p}:daemon:{self.name}")
            pipe.zrem(f"{self.p}:daemons", self.name)
            await _execute(pipe)
        await self._redis.aclose()

    async def mark(self) -> None:
        """Mark the bus as known to this daemon: the mark gone later means Redis lost it."""
        await self._redis.set(f"{self.p}:since", repr(time.time()), nx=True)

    async def fires(self) -> dict[str, float]:
        return _fires(await self._redis.hgetall(f"{self.p}:fires"))

    async def reserve_ids(self, count: int) -> range:
        end = int(await self._scripts["RESERVE"](args=[self.p, count]))
        return range(end - count + 1, end + 1)

    # -- listeners ---------------------------------------------------------------------------

    async def join(self, local: dict[str, tuple[str, ...]], joins: set[str], leaves: set[str],
                   handbacks: Sequence[tuple[str, bytes]] = (), *, keep: int = 0,
                   reason: str = "") -> dict[str, tuple[str, ...]]:
        """Register the listeners ``joins`` as served here, ``leaves`` as no longer; hand
        back entries read but not run; retire listeners no daemon serves any more. Returns
        the bus's routes."""
        redis, p = self._redis, self.p
        await self.create_groups(sorted(joins))
        pipe = redis.pipeline(transaction=False)
        for name in sorted(joins):
            pipe.sadd(f"{p}:hosts:{name}", self.name)
            pipe.hset(f"{p}:routes", name, json.dumps(list(local[name])))
        for name in sorted(leaves):
            pipe.srem(f"{p}:hosts:{name}", self.name)
        await _execute(pipe)
        await self.hand_back(handbacks)
        for name in sorted(leaves):
            moved = 0
            for stream in reversed(streams_of(name)):  # the listener's own name last: routes
                moved += max(0, await self._scripts["RETIRE"](
                    args=[p, stream, keep, f"ListenerRemoved: listener {name} {reason}"]))
            if moved > 0:
                logger.warning("%d waiting deliveries of %s failed: %s", moved, name, reason)
        if joins or leaves:
            await redis.publish(f"{p}:ctl", b"routes")
        return await self.routes()

    async def create_groups(self, names: Iterable[str]) -> None:
        """Each listener's stream and group, where missing. At ``0``: whatever its stream
        holds is its backlog."""
        for stream in (stream for name in names for stream in streams_of(name)):
            try:
                await self._redis.xgroup_create(f"{self.p}:l:{stream}", _GROUP, "0",
                                                mkstream=True)
            except self.errors[0] as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def hosted_here(self, names: set[str]) -> set[str]:
        """Which of these listeners name this daemon among their hosts."""
        pipe = self._redis.pipeline(transaction=False)
        ordered = sorted(names)
        for name in ordered:
            pipe.sismember(f"{self.p}:hosts:{name}", self.name)
        return {name for name, here in zip(ordered, await _execute(pipe), strict=True) if here}

    async def hand_back(self, entries: Sequence[tuple[str, bytes]], idle_ms: int = 10**9) -> None:
        """Entries read but not run: another daemon takes them on its next sweep."""
        by_name: dict[str, list[bytes]] = {}
        for name, entry_id in entries:
            by_name.setdefault(name, []).append(entry_id)
        for name, ids in by_name.items():
            await self._redis.xclaim(f"{self.p}:l:{name}", _GROUP, self.name, 0, ids,
                                     idle=idle_ms, justid=True)

    async def routes(self) -> dict[str, tuple[str, ...]]:
        return _routes(await self._redis.hgetall(f"{self.p}:routes"))

    async def own_pending(self, name: str) -> list[tuple[str, bytes, bytes]]:
        """The entries of ``name`` this daemon read and did not finish before it stopped,
        with their streams."""
        found: list[tuple[str, bytes, bytes]] = []
        for stream in streams_of(name):
            start = "0"
            while True:
                reply = await self._redis.xreadgroup(
                    _GROUP, self.name, {f"{self.p}:l:{stream}": start}, count=1000)
                entries = reply[0][1] if reply else []
                found += [(stream, entry_id, fields[b"d"]) for entry_id, fields in entries
                          if fields]
                if len(entries) < 1000:
                    break
                start = entries[-1][0].decode()
        return found

    # -- the hot path's records --------------------------------------------------------------

    async def send(self, emits: Sequence[Emit], followed: set[int],
                   acks: Sequence[tuple[str, bytes, Delivery, str]],
                   parks: Sequence[tuple[str, bytes, Delivery, float, str]],
                   fails: Sequence[tuple[str, bytes, Delivery, str]], fired: dict[str, float],
                   window_ms: str, keep: int, duplicates: int = 0, max_keys: int = 0,
                   ) -> dict[int, bytes]:
        """One pipeline: the emits, the outcomes, the duplicates answered here, and the
        records for the live views. Returns, by index in ``emits``, the first answer of
        each emit whose dedupe key another emit had taken (those queued nothing)."""
        if not (emits or acks or parks or fails or self.views.records or fired or duplicates):
            return {}
        pipe = self._redis.pipeline(transaction=False)
        p, scripts, me = self.p, self._scripts, self.name
        chunks: list[bytes] = []
        if emits:  # scripts of 500 emits; the first checks every key the round writes
            lines: list[bytes] = []
            streams: set[str] = set()
            keys: list[str] = []
            orders: set[str] = set()
            for index, (key, made, due, answer) in enumerate(emits):
                if index and not index % 500:
                    chunks.append(b"\n".join(lines))
                    lines = []
                claim = ""
                if key is not None:
                    if "\n" in key:  # a line each: a digest stands in
                        key = "sha1:" + hashlib.sha1(key.encode()).hexdigest()
                    claim = json.dumps(answer) + "\t" + key
                    keys.append("k" + key)
                lines.append(f"{len(made)}|{'' if due is None else due}|{claim}".encode())
                for delivery in made:
                    stream = stream_of(delivery.listener, delivery.priority)
                    line = b"%s\t%s" % (stream.encode(), encode_payload(
                        delivery, me if delivery.id in followed else ""))
                    if delivery.order_key is not None:  # its id joins the key's list
                        line = b"\x01%s\t%s" % (delivery.order_key.encode(), line)
                        orders.add(f"o{delivery.listener}\t{delivery.order_key}")
                    lines.append(line)
                streams.update([stream_of(d.listener, d.priority) for d in made])
            chunks.append(b"\n".join(lines))
            checked = "\n".join(["s" + name for name in streams] + keys + sorted(orders))
            for chunk in chunks:
                await scripts["EMIT"](args=[p, window_ms, max_keys, chunk, checked], client=pipe)
        if acks:
            by_name: dict[str, tuple[list[bytes], list[str]]] = {}
            for name, entry_id, delivery, _ in acks:
                ids, keyed = by_name.setdefault(name, ([], []))
                ids.append(entry_id)
                if delivery.order_key is not None:
                    keyed.append(f"{delivery.id}\t{delivery.order_key}")
            args: list[Any] = [p]
            for name, (ids, keyed) in by_name.items():
                args += (name, b" ".join(ids), "\n".join(keyed))
            await scripts["ACK"](args=args, client=pipe)
        if parks:
            args = [p]
            for name, entry_id, delivery, delay, reply_to in parks:
                args += (name, entry_id, delivery.id, int(delay * 1000), encode_payload(
                    delivery, reply_to))  # who waits for it still does after the retry
            await scripts["PARK"](args=args, client=pipe)
        if fails:
            args = [p, keep]
            for name, entry_id, delivery, _ in fails:
                args += (name, entry_id, delivery.id, int((delivery.failed_at or 0) * 1000),
                         encode_failed(delivery), delivery.order_key or "")
            await scripts["FAIL"](args=args, client=pipe)
        if fired:
            pipe.hset(f"{p}:fires", mapping={name: repr(when) for name, when in fired.items()})
        if duplicates:
            pipe.hincrby(f"{p}:stats", "duplicates", duplicates)
        records, self.views.records = self.views.records, []
        if not self.views.publishing:  # those who wait for these outcomes hear of them anyway
            records += [encode_record(me, "finished", None, [delivery])
                        for _, _, delivery, reply_to in (*acks, *fails)
                        if reply_to and reply_to != me]
        for record in records:
            pipe.publish(f"{p}:tail", record)
        replies = await _execute(pipe)
        if parks or any(due is not None for _, _, due, _ in emits):
            self._sooner.set()  # the mover looks again: one of these may be due first
        answers = [first for reply in replies[:len(chunks)] for first in reply] if emits else []
        return {index: first for index, first in enumerate(answers) if first != 0}

    async def read(self, names: Sequence[str], count: int, *,
                   block: bool = True) -> list[tuple[str, bytes, bytes]]:
        """New entries of these listeners' streams, with their streams, highest priority
        first (``block``: waiting up to 250 ms for some)."""
        skip = len(self.p) + 3
        streams = {f"{self.p}:l:{stream}": ">" for name in names for stream in streams_of(name)}
        try:
            reply = await self._redis.xreadgroup(_GROUP, self.name, streams, count=count,
                                                 block=250 if block else None)
        except self.errors[0] as exc:
            if "NOGROUP" not in str(exc) and "UNBLOCKED" not in str(exc):
                raise
            self.regrouped = True
            await self.create_groups(names)
            return []
        return [(stream.decode()[skip:], entry_id, fields[b"d"])
                for stream, entries in reply or () for entry_id, fields in entries if fields]

    # -- keeping up --------------------------------------------------------------------------

    async def beat(self, running: dict[str, int], held: int,
                   ) -> tuple[dict[str, tuple[str, ...]], dict[str, float], bool]:
        """Say this daemon lives, and how many calls of each listener it runs; returns the
        bus's routes and schedule fires, read in the same round trip, and whether the bus's
        keys are still there (False: Redis lost them since the last beat)."""
        p = self.p
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(f"{p}:routes")
        pipe.hgetall(f"{p}:fires")
        pipe.set(f"{p}:since", repr(time.time()), nx=True)
        pipe.hset(f"{p}:daemon:{self.name}", mapping={
            "host": socket.gethostname(), "pid": os.getpid(), "started": self._started,
            "running": json.dumps(running), "held": held})
        pipe.pexpire(f"{p}:daemon:{self.name}", _ALIVE_MS * 2)
        pipe.zadd(f"{p}:daemons", {self.name: int(time.time() * 1000)})
        pipe.hgetall(f"{p}:paused")
        routes, fires, made, *_, paused = await _execute(pipe)
        self.pauses = _pauses(paused)
        return _routes(routes), _fires(fires), not made

    async def pace(self, name: str, gap: float) -> float:
        """Have the bus grant the next start of ``name``, ``gap`` seconds at least after the
        one granted before; returns how many seconds from now it is."""
        waited = await self._scripts["PACE"](args=[self.p, name, int(gap * 1_000_000)])
        return int(waited) / 1_000_000

    async def read_pauses(self) -> dict[str, float | None]:
        """The paused listeners of the bus, now."""
        self.pauses = _pauses(await self._redis.hgetall(f"{self.p}:paused"))
        return self.pauses

    async def set_pause(self, name: str, paused: bool, until: float | None = None) -> None:
        """Pause ``name`` bus-wide (until ``until``, a time.time()), or resume it."""
        if paused:
            await self._redis.hset(f"{self.p}:paused", name, int(until * 1000) if until else 0)
        else:
            await self._redis.hdel(f"{self.p}:paused", name)

    async def renew(self, held: Sequence[tuple[str, bytes]]) -> set[bytes]:
        """Reset the idle time of what this daemon holds, so no other takes it over; returns
        the entries that were not this daemon's any more."""
        lost: set[bytes] = set()
        for start in range(0, len(held), 1000):
            args: list[Any] = [self.p, self.name]
            for name, entry_id in held[start:start + 1000]:
                args += (name, entry_id)
            lost.update(await self._scripts["REFRESH"](args=args))
        return lost

    async def take_over(self, names: Sequence[str], claim_after: float,
                        ) -> dict[str, list[tuple[bytes, bytes]]]:
        """Entries of these listeners that their daemon has not renewed for
        ``claim_after``, by stream; one round trip while no stream has more than 100."""
        streams = [stream for name in names for stream in streams_of(name)]
        taken: dict[str, list[tuple[bytes, bytes]]] = {stream: [] for stream in streams}
        starts = dict.fromkeys(streams, "0-0")
        while starts:
            pipe = self._redis.pipeline(transaction=False)
            for name, start in starts.items():
                pipe.xautoclaim(f"{self.p}:l:{name}", _GROUP, self.name,
                                int(claim_after * 1000), start, count=100)
            replies = await _execute(pipe)
            again = {}
            for (name, _), (cursor, entries, *_) in zip(starts.items(), replies, strict=True):
                taken[name] += [(entry_id, fields[b"d"]) for entry_id, fields in entries
                                if fields]
                cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
                if cursor != "0-0" and entries:
                    again[name] = cursor
            starts = again
        return taken

    async def move_due(self) -> None:
        """Move deliveries whose time came back into their streams; until cancelled. Every
        daemon runs it (the script is atomic, so no delivery moves twice), at the earliest
        due time, at least once a second, and when it parked or scheduled one itself."""
        while True:
            try:
                moved, first, now = await self._scripts["MOVE_DUE"](args=[self.p, 2000])
            except self.errors:
                await anyio.sleep(0.5)
                continue
            if moved >= 2000:
                continue
            wait = 1.0 if first is None or first is False else (float(first) - now) / 1000
            with anyio.move_on_after(min(max(wait, 0.001), 1.0)):
                await self._sooner.wait()  # this daemon parked or scheduled something
            self._sooner = anyio.Event()

    # -- inspection --------------------------------------------------------------------------

    async def stats(self, names: Sequence[str], unsent: int) -> EmitterStats | None:
        """The bus's counters: every listener's, every daemon's calls running; None when
        the bus's mark is gone (Redis lost the bus since the last beat)."""
        p = self.p
        pipe = self._redis.pipeline(transaction=False)
        pipe.exists(f"{p}:since")
        pipe.hgetall(f"{p}:stats")
        pipe.hgetall(f"{p}:waiting")
        pipe.zcard(f"{p}:failed:order")
        pipe.zrange(f"{p}:due", 0, 0, withscores=True)
        pipe.zrangebyscore(f"{p}:daemons", int(time.time() * 1000) - _ALIVE_MS, "+inf")
        for name in names:
            for stream in streams_of(name):
                pipe.xlen(f"{p}:l:{stream}")
        marked, counts, waiting, failed_list, first, live, *each = await _execute(pipe)
        lengths = [sum(each[i:i + 3]) for i in range(0, len(each), 3)]
        if not marked:
            return None
        pipe = self._redis.pipeline(transaction=False)
        for daemon in live:
            pipe.hgetall(f"{p}:daemon:{daemon.decode()}")
        daemons = await _execute(pipe)
        running: dict[str, int] = {}
        self.daemons = []
        for daemon, held in zip(live, daemons, strict=True):
            if not held:
                continue
            mine = json.loads(held.get(b"running", b"{}"))
            for name, count in mine.items():
                running[name] = running.get(name, 0) + count
            self.daemons.append({"name": daemon.decode(), "host": held[b"host"].decode(),
                                 "pid": int(held[b"pid"]), "running": sum(mine.values()),
                                 "held": int(held.get(b"held", 0))})

        def number(table: dict[bytes, bytes], key: str) -> int:
            name, _, what = key.rpartition(":")
            if not name:
                return int(table.get(key.encode(), 0))
            return sum(int(table.get(f"{stream}:{what}".encode(), 0))
                       for stream in streams_of(name))

        listeners = {
            name: ListenerStats(
                pending=max(0, length - running.get(name, 0)), running=running.get(name, 0),
                retrying=number(waiting, f"{name}:retrying"),
                succeeded=number(counts, f"{name}:succeeded"),
                failed=number(counts, f"{name}:failed"),
                retried=number(counts, f"{name}:retried"),
                scheduled=number(waiting, f"{name}:scheduled"))
            for name, length in zip(names, lengths, strict=True)}
        return bus_stats(listeners, unsent=unsent, unrouted=number(counts, "unrouted"),
                         failed_list=failed_list,
                         next_due=first[0][1] / 1000 if first else None,
                         duplicates=number(counts, "duplicates"))

    async def listing(self, names: Sequence[str], most: int) -> list[Delivery]:
        """Up to ``most`` deliveries of each kind: failed, waiting for a time, pending."""
        p = self.p
        ids = await self._redis.zrevrange(f"{p}:failed:order", 0, most - 1)
        found = [decode_failed(record) for record in
                 (await self._redis.hmget(f"{p}:failed", ids) if ids else []) if record]
        due = await self._redis.zrange(f"{p}:due", 0, most - 1, withscores=True)
        values = await self._redis.hmget(f"{p}:due:data", [m for m, _ in due]) if due else []
        for (_, score), value in zip(due, values, strict=True):
            if value is None:
                continue
            state, stream, payload = value.split(b"\t", 2)
            delivery = decode_payload(payload, listener_of(stream.decode()))[0]
            delivery.state = DeliveryState(state.decode())
            delivery.due_at = score / 1000
            found.append(delivery)
        for name in names:
            for stream in streams_of(name):
                for _, fields in await self._redis.xrange(f"{p}:l:{stream}", count=most):
                    if fields:
                        found.append(decode_payload(fields[b"d"], name)[0])
        return found

    async def failed_records(self, ids: Iterable[int] | None) -> list[tuple[int, bytes | None]]:
        if ids is None:
            ids = [int(m) for m in await self._redis.zrange(f"{self.p}:failed:order", 0, -1)]
        ids = list(ids)
        records = await self._redis.hmget(f"{self.p}:failed", ids) if ids else []
        return list(zip(ids, records, strict=True))

    async def heads(self, keys: Sequence[tuple[str, str]]) -> list[int | None]:
        """The delivery that may run now of each (listener, order key): the first of the
        key's list (None: no list, as after a purge)."""
        pipe = self._redis.pipeline(transaction=False)
        for name, key in keys:
            pipe.lindex(f"{self.p}:o:{name}:{key}", 0)
        return [None if head is None else int(head) for head in await _execute(pipe)]

    async def requeue(self, items: Sequence[tuple[int, str, bytes, str, str]],
                      ) -> tuple[str, int] | None:
        if not items:
            return None
        reply = await self._scripts["REQUEUE"](
            args=[self.p, *(part for item in items for part in item)])
        return None if reply[0] == b"ok" else (reply[0].decode(), int(reply[1]))

    async def purge_failed(self) -> int:
        pipe = self._redis.pipeline(transaction=True)
        pipe.zcard(f"{self.p}:failed:order")
        pipe.delete(f"{self.p}:failed", f"{self.p}:failed:order")
        count, _ = await _execute(pipe)
        return int(count)

    async def purge_waiting(self, state: str, names: Sequence[str],
                            mine: Sequence[tuple[str, bytes]]) -> int:
        """Drop what waits in ``state`` ("pending": also what no daemon read yet, and what
        this daemon read but did not start, ``mine``)."""
        for name, entry_id in mine:
            pipe = self._redis.pipeline(transaction=True)
            pipe.xack(f"{self.p}:l:{name}", _GROUP, entry_id)
            pipe.xdel(f"{self.p}:l:{name}", entry_id)
            await _execute(pipe)
        kind = "retrying" if state == DeliveryState.PENDING.value else state
        streams = [stream for name in names for stream in streams_of(name)]
        dropped = await self._scripts["PURGE_WAITING"](args=[self.p, kind, *streams])
        return int(dropped) + len(mine)


def _routes(table: dict[bytes, bytes]) -> dict[str, tuple[str, ...]]:
    return {name.decode(): tuple(json.loads(patterns)) for name, patterns in table.items()}


def _pauses(table: dict[bytes, bytes]) -> dict[str, float | None]:
    """The bus's paused listeners, each with when it resumes (None: when told), those whose
    time is up left out."""
    now, found = time.time(), {}
    for name, until in table.items():
        ms = int(until)
        if ms <= 0 or ms / 1000 > now:
            found[name.decode()] = ms / 1000 if ms > 0 else None
    return found


def _fires(table: dict[bytes, bytes]) -> dict[str, float]:
    return {name.decode(): float(value) for name, value in table.items()}


async def _execute(pipe: Any) -> Any:
    """Run a pipeline; a failed one is reset, so its connection goes back to the pool."""
    try:
        return await pipe.execute()
    finally:
        await pipe.reset()

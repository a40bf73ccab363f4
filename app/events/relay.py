"""The broker relay: the change feed, published to RabbitMQ (EVENTS_BROKER_URL).

Each event goes to the durable topic exchange `jambo.events`, routing key = its type,
`message_id` = its id, persistent, `application/cloudevents+json`. At least once: a batch is
published with publisher confirms, and only once the broker has confirmed all of it does the
relay move its cursor (a row in PostgreSQL); a relay that dies in between publishes the rest
of the batch again, with the same ids, when it (or another) resumes from the cursor.

One publisher across every worker and replica: the relay holds a session advisory lock on a
connection of its own (DATABASE_DIRECT_URL, not through a transaction pooler); the others
try for it every few seconds and the first to get it when the holder goes takes over. The
relay runs beside the API and shares nothing with it but the database: a broker outage only
delays publishing (retried with backoff), never an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random

import aio_pika
import asyncpg
import orjson

from app.events.feed import EventFeed
from app.events.signal import ChangeSignal
from app.logs import RateLimitedLog

log = logging.getLogger("jambo.events.relay")
warn = RateLimitedLog(log)

EXCHANGE = "jambo.events"
CONTENT_TYPE = "application/cloudevents+json"
LOCK = 0x6A616D626F02  # "jambo" + 2: one publisher at a time
NAME = "rabbitmq"  # this relay's cursor row
BATCH = 500
IDLE_WAIT = 5.0  # with nothing to publish, look again at least this often
UNSETTLED_WAIT = 1.0  # or this often while a running transaction holds events back
RETRY_LOCK = 5.0

_CURSOR = "SELECT cursor FROM event_relay_cursors WHERE name = $1"
_SAVE = """
    INSERT INTO event_relay_cursors (name, cursor, updated_at) VALUES ($1, $2, now())
    ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor, updated_at = now()
"""


class Relay:
    """Publishes the feed to the broker while this process holds the publisher lock."""

    def __init__(
        self, feed: EventFeed, changes: ChangeSignal, broker_url: str, lock_dsn: str
    ) -> None:
        self.feed = feed
        self.changes = changes
        self.broker_url = broker_url
        self.lock_dsn = lock_dsn
        self.published = 0  # events confirmed by the broker (this process, this run)
        self.cursor = 0  # the last event confirmed and saved (while holding the lock)

    async def run(self) -> None:
        """Forever (until cancelled): take the lock when it is free, then publish."""
        while True:
            try:
                await self._hold_lock_and_publish()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - logged, then tried again
                warn.warn("relay_failed", f"event relay stopped: {type(exc).__name__}: {exc}")
            await asyncio.sleep(RETRY_LOCK * random.uniform(0.5, 1.5))

    async def _hold_lock_and_publish(self) -> None:
        settings = {"application_name": f"jambo-relay:{os.getpid()}"}
        conn = await asyncpg.connect(self.lock_dsn, timeout=5, server_settings=settings)
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK):
                return  # another process publishes
            log.info("publishing the change feed to the broker", extra={"pid": os.getpid()})
            cursor = int(await conn.fetchval(_CURSOR, NAME) or 0)
            await self._publish_from(conn, cursor)
        finally:
            conn.terminate()  # the lock goes with the session

    async def _publish_from(self, conn: asyncpg.Connection, cursor: int) -> None:
        """Publish batches until the lock's connection or the broker fails."""
        self.cursor = cursor
        pause = 0.5
        while not conn.is_closed():
            try:
                broker = await aio_pika.connect(self.broker_url, timeout=10)
            except Exception as exc:  # noqa: BLE001 - an outage: wait, keep the lock
                warn.warn("broker_down", f"broker unreachable: {type(exc).__name__}")
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30.0)
                continue
            pause = 0.5
            try:
                # Past a failure, on from the last batch saved (not from where we began).
                await self._publish_batches(conn, broker)
            except (aio_pika.exceptions.AMQPError, OSError, ConnectionError) as exc:
                warn.warn("broker_lost", f"publishing interrupted: {type(exc).__name__}")
            finally:
                with contextlib.suppress(Exception):
                    await broker.close()

    async def _publish_batches(
        self, conn: asyncpg.Connection, broker: aio_pika.abc.AbstractConnection
    ) -> None:
        channel = await broker.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        while not conn.is_closed() and not broker.is_closed:
            changed = self.changes.current()
            page = await self.feed.read(self.cursor, BATCH)
            if not page.events:
                # Events held back by a running transaction come when it ends, which
                # nothing signals: look again soon.
                idle = UNSETTLED_WAIT if self.feed.unsettled() else IDLE_WAIT
                await self.changes.wait(changed, idle)
                continue
            # Sent in order on one channel; each publish waits for its own confirm, all of
            # them at once: the cursor moves only past a batch the broker has in full.
            await asyncio.gather(*(self._publish(exchange, event) for event in page.events))
            await conn.execute(_SAVE, NAME, str(page.next))
            self.cursor = page.next
            self.published += len(page.events)

    @staticmethod
    async def _publish(exchange: aio_pika.abc.AbstractExchange, event: dict[str, object]) -> None:
        message = aio_pika.Message(
            orjson.dumps(event),
            content_type=CONTENT_TYPE,
            message_id=str(event["id"]),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            type=str(event["type"]),
        )
        await exchange.publish(message, routing_key=str(event["type"]))

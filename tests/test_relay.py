"""The change feed relayed to a real RabbitMQ (127.0.0.1:5672, guest/guest): every event at
least once with its properties, across a kill -9 of the publishing worker and a broker outage
(a proxy in front of RabbitMQ is cut), while the API answers as usual."""

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest

from app.cli import migrate_to_head
from app.events.feed import FeedPage
from app.events.relay import Relay
from tests.conftest import (
    JAMBO_CUSTOMER,
    STAFF,
    _plain,
    create_database,
    drop_database,
    server_url,
    start_service,
    stop_service,
)

BROKER = "amqp://guest:guest@127.0.0.1:5672/"


def _broker_up() -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 5672), 1):
        return True
    return False


pytestmark = pytest.mark.skipif(not _broker_up(), reason="no RabbitMQ on 127.0.0.1:5672")


class Proxy:
    """A TCP proxy to RabbitMQ that the test can cut (every connection closed, the port
    refusing) and restore on the same port."""

    def __init__(self) -> None:
        self.port = 0
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for pipe in list(self.pipes):
            pipe.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 5672)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            finally:
                dst.close()

        pipes = [
            asyncio.create_task(pump(reader, up_writer)),
            asyncio.create_task(pump(up_reader, writer)),
        ]
        self.pipes.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)
        self.pipes.difference_update(pipes)


class Consumer:
    """Every message of the exchange, in arrival order."""

    def __init__(self) -> None:
        self.messages: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def start(self) -> None:
        self.connection = await aio_pika.connect(BROKER)
        channel = await self.connection.channel()
        exchange = await channel.declare_exchange(
            "jambo.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="#")
        await queue.consume(self._take, no_ack=True)

    async def _take(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.messages.append(message)

    def ids(self) -> list[str]:
        return [str(m.message_id) for m in self.messages]


@pytest.fixture
async def relayed(tmp_path) -> AsyncIterator[tuple[str, str, Proxy, Consumer, Any]]:
    """A fresh database, a consumer, and `jambo serve --workers 2` relaying through a proxy."""
    base = server_url()
    name = f"jambo_relay_{os.getpid()}_{secrets.token_hex(3)}"
    url = await create_database(base, name)
    await asyncio.to_thread(migrate_to_head, url)
    proxy, consumer = Proxy(), Consumer()
    await proxy.start()
    await consumer.start()
    env = {"EVENTS_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{proxy.port}/", "LOG_LEVEL": "INFO"}
    log = (tmp_path / "serve.log").open("wb")
    proc, service = await asyncio.to_thread(
        start_service, url, env=env, args=("--workers", "2"), stdout=log
    )
    try:
        yield url, service, proxy, consumer, proc
    finally:
        stop_service(proc)
        log.close()
        await consumer.connection.close()
        await proxy.cut()
        await drop_database(base, name)


async def create(http: httpx.AsyncClient, n: int) -> None:
    """One customer; a request cut off by the kill is retried with its Idempotency-Key."""
    body = {**JAMBO_CUSTOMER, "email": f"relay{n}-{secrets.token_hex(3)}@example.org"}
    headers = {**STAFF, "Idempotency-Key": secrets.token_hex(8)}
    for _ in range(20):
        try:
            answer = await http.post("/api/customers", json=body, headers=headers)
        except httpx.TransportError:
            await asyncio.sleep(0.2)
            continue
        assert answer.status_code == 201, answer.text
        return
    raise AssertionError("the service did not answer")


async def feed_ids(http: httpx.AsyncClient) -> list[str]:
    ids: list[str] = []
    after: str | None = None
    while True:
        params = {"limit": "1000", **({"after": after} if after else {})}
        body = (await http.get("/api/v1/events", params=params, headers=STAFF)).json()
        if not body["events"]:
            return ids
        ids += [e["id"] for e in body["events"]]
        after = body["next"]


async def delivered(consumer: Consumer, wanted: list[str], limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not set(wanted) <= set(consumer.ids()):
        assert time.monotonic() < deadline, sorted(set(wanted) - set(consumer.ids()))[:10]
        await asyncio.sleep(0.2)


async def publisher_pid(url: str) -> int:
    conn = await asyncpg.connect(_plain(url))
    try:
        for _ in range(100):
            name = await conn.fetchval(
                "SELECT application_name FROM pg_stat_activity"
                " WHERE application_name LIKE 'jambo-relay:%' LIMIT 1"
            )
            if name:
                return int(name.split(":", 1)[1])
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise AssertionError("no worker holds the relay lock")


async def test_every_event_reaches_the_broker_across_a_kill_9(relayed) -> None:
    url, service, _proxy, consumer, _proc = relayed
    async with httpx.AsyncClient(base_url=service, timeout=20) as http:
        for n in range(20):
            await create(http, n)
        victim = await publisher_pid(url)
        writes = asyncio.gather(*(create(http, 100 + n) for n in range(40)))
        await asyncio.sleep(0.05)
        os.kill(victim, signal.SIGKILL)  # mid-stream
        await writes
        for n in range(20):
            await create(http, 200 + n)
        wanted = await feed_ids(http)
        assert len(wanted) == 80
        await delivered(consumer, wanted)
    survivor = await publisher_pid(url)
    assert survivor != victim
    ids = consumer.ids()
    duplicates = len(ids) - len(set(ids))
    print(f"\nrelay: {len(wanted)} events, {len(ids)} messages, {duplicates} duplicates")
    first = consumer.messages[0]
    assert first.content_type == "application/cloudevents+json"
    assert first.routing_key == "jambo.customer.created" == first.type
    assert first.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert first.message_id == str(first.body.decode()).split('"id":"')[1].split('"')[0]
    # Duplicates are allowed, each with the same id; order per record holds (one create each).
    assert sorted(set(ids), key=int) == sorted(wanted, key=int)


async def test_a_broker_outage_leaves_the_api_alone_and_the_backlog_follows(relayed) -> None:
    _url, service, proxy, consumer, _proc = relayed
    async with httpx.AsyncClient(base_url=service, timeout=20) as http:
        for n in range(5):
            await create(http, n)
        await delivered(consumer, await feed_ids(http))
        await proxy.cut()
        started = time.monotonic()
        for n in range(20):
            await create(http, 100 + n)  # answered as usual, the broker down
        assert time.monotonic() - started < 10
        assert (await http.get("/readyz")).status_code == 200
        await asyncio.sleep(2)
        await proxy.start()  # back on the same port
        wanted = await feed_ids(http)
        assert len(wanted) == 25
        await delivered(consumer, wanted)


class FakeFeed:
    """Events 1..last, two a page."""

    def __init__(self, last: int) -> None:
        self.last = last

    async def read(self, after: int, limit: int) -> FeedPage:
        ids = range(after + 1, min(after + 2, self.last) + 1)
        return FeedPage(
            [{"id": str(i), "type": "jambo.customer.updated"} for i in ids],
            ids[-1] if ids else after,
        )

    def unsettled(self) -> bool:
        return False


class FakeChanges:
    def current(self) -> asyncio.Event:
        return asyncio.Event()

    async def wait(self, changed: asyncio.Event, timeout: float) -> None:
        await asyncio.sleep(0)


class FakeBroker:
    """A broker connection whose publishes fail after `fails_after` of them."""

    def __init__(self, published: list[int], fails_after: int | None) -> None:
        self.published, self.fails_after, self.is_closed = published, fails_after, False
        self.sent = 0

    async def channel(self, publisher_confirms: bool) -> "FakeBroker":
        return self

    async def declare_exchange(self, *args: Any, **kwargs: Any) -> "FakeBroker":
        return self

    async def publish(self, message: aio_pika.Message, routing_key: str) -> None:
        self.sent += 1
        if self.fails_after is not None and self.sent > self.fails_after:
            raise ConnectionError("broker lost")
        self.published.append(int(str(message.message_id)))

    async def close(self) -> None:
        self.is_closed = True


class FakeLockConnection:
    """The relay's own connection: keeps the saved cursor; 'closes' once all is saved."""

    def __init__(self, last: int) -> None:
        self.saved: list[int] = []
        self.last = last

    def is_closed(self) -> bool:
        return bool(self.saved) and self.saved[-1] == self.last

    async def execute(self, sql: str, name: str, cursor: str) -> None:
        self.saved.append(int(cursor))


async def test_after_a_broker_failure_the_relay_resumes_from_its_saved_cursor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broker lost mid-stream: the relay publishes again from the last confirmed batch (its
    saved cursor), not from where this lock holder began: a long-running relay would send
    everything since its start again after every broker hiccup."""
    published: list[int] = []
    brokers = iter([FakeBroker(published, fails_after=4), FakeBroker(published, None)])

    async def connect(url: str, timeout: float) -> FakeBroker:
        return next(brokers)

    monkeypatch.setattr(aio_pika, "connect", connect)
    relay = Relay(FakeFeed(6), FakeChanges(), "amqp://fake", "postgresql://unused")  # type: ignore[arg-type]
    conn = FakeLockConnection(6)
    await asyncio.wait_for(relay._publish_from(conn, 0), 5)  # type: ignore[arg-type]
    assert conn.saved == [2, 4, 6]
    assert published == [1, 2, 3, 4, 5, 6]  # 5 and 6 once each: the batch that failed, again

"""The change feed: every committed create, update and delete, read from the audit lines (the
writers' own statements record them, so a write and its event commit together or not at all)
as thin CloudEvents, in the lines' id order. docs/events.md explains the design; in short:

* A line's id is drawn after its write locked the record (the line is inserted from the
  write's RETURNING), so two writes of one record get ids in their commit order.
* Ids are drawn in one order and committed in another: a reader must never pass an id that
  a running transaction may still commit. An id is drawn only once its transaction has a
  transaction id (the column default asks for one first), so a sample `(last id drawn,
  next transaction id)`, the second read after the first, says: every id up to that one
  belongs to a transaction below that bound. Once the oldest running transaction (a
  snapshot's xmin) is at or past the bound, all of them have ended: the ids up to the
  sample are settled, and the feed serves up to the newest settled sample (the watermark).
  A reader following `next` (the last id it got) therefore sees every committed event
  once, in id order, whatever the commit order.
* The bound is not a snapshot's xmax: that is the last *completed* transaction id + 1, and
  a running transaction above it is in neither xmax nor the snapshot's list. PostgreSQL
  has no function for the next id that does not assign one; `age(xid)` counts from it (for
  a reader without an id of its own), so xmax + age(xmax) is the next id, read when the
  function runs: after the sequence, which a materialized CTE reads first.
* Samples live in each process (nothing another replica needs: cursors are plain ids); a
  read takes a fresh one, serves what is settled past its cursor, and while nothing is it
  samples again for a moment (SETTLE_SECONDS).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import deque
from dataclasses import dataclass
from typing import Any

from app.db.database import Database

MAX_LIMIT = 1000
SETTLE_SECONDS = 0.5  # how long a read waits for running transactions to end
SETTLE_PAUSE = 0.01

_SAMPLE = """
    WITH seq AS MATERIALIZED (
        SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END AS drawn
        FROM audit_events_id_seq
    )
    SELECT seq.drawn,
        pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin,
        pg_snapshot_xmax(pg_current_snapshot())::text::bigint
            + age(xid(pg_snapshot_xmax(pg_current_snapshot()))) AS bound
    FROM seq
"""
_PAGE = """
    SELECT id, at, action, record_type, subject_id, record_key, fields
    FROM audit_events WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3
"""
_NEWEST = "SELECT coalesce(max(id), 0) FROM audit_events"
# The first line at or after a time: lines are numbered in about time order, so a binary
# search over the primary key finds it in a few dozen index look-ups.
_AT_OR_AFTER = "SELECT id, at FROM audit_events WHERE id >= $1 ORDER BY id LIMIT 1"


class BadCursor(ValueError):
    """A cursor that is not one this feed gave out."""


def parse_cursor(text: str) -> int:
    """An event id as a cursor (digits only, at most 19 of them)."""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise BadCursor(text)
    return int(text)


@dataclass(frozen=True, slots=True)
class FeedPage:
    """Events in order and the cursor to ask with next (unchanged when none came)."""

    events: list[dict[str, Any]]
    next: int


class Watermark:
    """This process's samples of (last id drawn, next transaction id), and the newest
    settled one."""

    def __init__(self) -> None:
        self.settled = 0
        self.drawn = 0
        self._samples: deque[tuple[int, int]] = deque(maxlen=1024)

    def add(self, drawn: int, xmin: int, bound: int) -> bool:
        """Take a sample; True when every id drawn so far is settled."""
        self.drawn = max(self.drawn, drawn)
        self._samples.append((drawn, bound))
        while self._samples and self._samples[0][1] <= xmin:
            self.settled = max(self.settled, self._samples.popleft()[0])
        return self.settled >= self.drawn


def render(row: Any, source: str) -> dict[str, Any]:
    """A line as a CloudEvents 1.0 event: names and ids only, never a personal value."""
    subject = row["subject_id"]
    if row["record_type"] == "loyalty_member" and row["record_key"]:
        subject = row["record_key"]
    moment: dt.datetime = row["at"]
    return {
        "specversion": "1.0",
        "id": str(row["id"]),
        "source": source,
        "type": f"jambo.{row['action']}",
        "subject": subject,
        "time": moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": {"id": row["subject_id"], "fields": list(row["fields"])},
    }


class EventFeed:
    """Reads the feed: settled events after a cursor, and where the retained ones begin."""

    def __init__(self, db: Database, source: str, retention_days: int) -> None:
        self.db = db
        self.source = source
        self.retention = dt.timedelta(days=retention_days)
        self.watermark = Watermark()

    async def start(self) -> int:
        """The cursor before the oldest retained event."""
        newest = int(await self.db.fetchval_primary(_NEWEST) or 0)
        cutoff = dt.datetime.now(dt.UTC) - self.retention
        low, high = 0, newest + 1  # the first id whose line is at or after the cutoff
        while low < high:
            middle = (low + high) // 2
            row = await self.db.fetchrow_primary(_AT_OR_AFTER, middle)
            if row is None or row["at"] >= cutoff:
                high = middle
            else:
                low = row["id"] + 1
        return max(0, low - 1)

    async def read(self, after: int | None, limit: int) -> FeedPage:
        """Up to `limit` settled events after `after` (from the oldest retained when None),
        sampling again for up to SETTLE_SECONDS while none is settled yet."""
        cursor = await self.start() if after is None else after
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_SECONDS
        empty = cursor  # no line was committed in (cursor, empty]: those ids are settled
        while True:
            row = await self.db.fetchrow_primary(_SAMPLE)
            assert row is not None
            caught_up = self.watermark.add(row["drawn"], row["xmin"], row["bound"])
            # Under steady writes the newest sample is rarely settled by its own snapshot
            # (some writer is always running): an older one settled past the cursor is
            # served at once, the rest with the next read.
            settled = self.watermark.settled
            if settled > empty:
                rows = await self.db.fetch_primary(_PAGE, empty, settled, limit)
                if rows:
                    events = [render(line, self.source) for line in rows]
                    return FeedPage(events, rows[-1]["id"])
                empty = settled  # only ids of rolled-back writes: wait for more
            if caught_up or loop.time() >= deadline:
                return FeedPage([], cursor)
            await asyncio.sleep(SETTLE_PAUSE)

    def unsettled(self) -> bool:
        """Whether this process has seen ids drawn that are not settled yet (a read that
        came back empty may find events again soon, without any new write)."""
        return self.watermark.drawn > self.watermark.settled

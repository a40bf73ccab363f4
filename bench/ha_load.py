"""The failover rehearsal's writers and its count (bench/ha_rehearsal.py says what each
number means): keyed creates retried until they have a final answer, every attempt kept,
then compared with what the new primary holds."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from app.ids import parse_ulid

BODY = {
    "first_name": "Rehearsal",
    "last_name": "Failover",
    "nationality": "Kenya",
    "dob": "1990-01-01",
    "phone_number": "0712345678",
}


@dataclass
class Attempt:
    began: float
    ended: float
    status: int | str  # the HTTP status, or the exception's name when no answer came
    note: str = ""  # "in flight" or "email exists" for the two kinds of 409


@dataclass
class Key:
    key: str
    attempts: list[Attempt] = field(default_factory=list)
    ulid: str | None = None
    outcome: str = "pending"  # "acknowledged", "unresolved" or the final 4xx

    def history(self, zero: float) -> str:
        """The attempts as `time→status`, seconds from `zero` (the fault), repeats folded."""
        runs: list[tuple[float, str, int]] = []
        for a in self.attempts:
            what = f"{a.status}{a.note and ' ' + a.note}"
            if runs and runs[-1][1] == what:
                runs[-1] = (runs[-1][0], what, runs[-1][2] + 1)
            else:
                runs.append((a.ended - zero, what, 1))
        sent = f"sent {self.attempts[0].began - zero:+.1f}s: " if self.attempts else ""
        return sent + ", ".join(f"{t:+.1f}s→{w}{f' ×{n}' if n > 1 else ''}" for t, w, n in runs)

    def held(self) -> float:
        """Seconds from the first 409 "still being processed" to the last attempt."""
        first = next(a.began for a in self.attempts if a.note == "in flight")
        return self.attempts[-1].ended - first


def retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


class Writers:
    """Loops that each create one customer at a time and retry it under its key."""

    def __init__(
        self, client: httpx.AsyncClient, tag: str, token: str, max_backoff: float, drain: float
    ) -> None:
        self.client = client
        self.tag = tag
        self.auth = {"Authorization": f"Bearer {token}"}
        self.max_backoff = max_backoff
        self.drain = drain
        self.keys: list[Key] = []
        self.acks: list[float] = []  # when each 2xx arrived
        self.events: list[tuple[float, int | str]] = []  # each attempt's end and status
        self.started = time.monotonic()
        self.stopping = False
        self.give_up_at = float("inf")

    def clock(self) -> float:
        return time.monotonic() - self.started

    def stop(self) -> float:
        """No new creates; each loop finishes the one it holds. Returns the time."""
        self.stopping = True
        now = self.clock()
        self.give_up_at = now + self.drain
        return now

    async def writer(self, n: int) -> None:
        serial = 0
        while not self.stopping:
            serial += 1
            await self.create(Key(f"{self.tag}-{n}-{serial}"))

    async def create(self, key: Key) -> None:
        """Send the key's create until a 2xx or a final 4xx (or the give-up time)."""
        self.keys.append(key)
        body = {**BODY, "middle_name": key.key, "email": f"{key.key}@rehearsal.example.org"}
        headers = {**self.auth, "Idempotency-Key": key.key}
        while True:
            began = self.clock()
            wait = 0.2
            try:
                response = await self.client.post("/api/customers", json=body, headers=headers)
            except httpx.TransportError as exc:
                self._keep(key, Attempt(began, self.clock(), type(exc).__name__))
            else:
                status, text = response.status_code, response.text
                note = ""
                if status == 409 and "Idempotency-Key" in text:
                    note = "in flight"
                elif status == 409 and "email" in text:
                    note = "email exists"
                self._keep(key, Attempt(began, self.clock(), status, note))
                if 200 <= status < 300:
                    key.ulid = response.json()["body"]["ulid"]
                    key.outcome = "acknowledged"
                    self.acks.append(self.clock())
                    return
                if 400 <= status < 500 and note != "in flight":
                    key.outcome = f"{status} {note or text[:80]}"
                    return
                wait = retry_after(response) or (1.0 if note else 0.2)
            if self.clock() > self.give_up_at:
                key.outcome = "unresolved"
                return
            await asyncio.sleep(min(wait, self.max_backoff))

    def _keep(self, key: Key, attempt: Attempt) -> None:
        key.attempts.append(attempt)
        self.events.append((attempt.ended, attempt.status))

    def quiet(self, since: float, tail: float) -> bool:
        """Whether, `tail` seconds or more after `since`, the last `tail` seconds brought 2xx
        answers and no 5xx or missing answer (a 409 "still being processed" is neither)."""
        now = self.clock()
        if now < since + tail:
            return False
        ok = False
        for ended, status in reversed(self.events):
            if ended < now - tail:
                break
            if isinstance(status, str) or status >= 500:
                return False
            ok = ok or 200 <= status < 300
        return ok


@dataclass
class Outcome:
    """One run's numbers, and the keys behind the bad ones."""

    acknowledged: int
    lost: int
    duplicates: int
    http_500: int
    other_5xx: int
    no_answer: int
    unreplayable: int
    unresolved: int
    held: int  # keys answered 409 "still being processed" at least once
    held_s: float  # the longest time a key spent from its first 409 of that kind to its end
    outage_s: float
    other_4xx: int
    leader: str
    rows: int  # the run's customers on the new primary, acknowledged or not
    examples: dict[str, list[str]]


async def count(load: Writers, port: int, leader: str, ended: float, fault: float) -> Outcome:
    """Compare the writers' records with what the primary on `port` holds."""
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="jambo")
    try:
        if await conn.fetchval("SELECT pg_is_in_recovery()"):
            raise RuntimeError(f"{leader} is not a primary")
        prefix = load.tag + "-"
        rows = await conn.fetch(
            "SELECT id, lower(email) AS email FROM customers WHERE starts_with(email, $1)", prefix
        )
        stored = await conn.fetch(
            "SELECT key FROM idempotency_keys WHERE starts_with(key, $1) AND status IS NOT NULL",
            prefix,
        )
    finally:
        await conn.close()
    ids = {r["id"] for r in rows}
    per_key = Counter(r["email"].split("@")[0] for r in rows)
    answered = {r["key"] for r in stored}
    acked = [k for k in load.keys if k.outcome == "acknowledged"]
    bad = {
        "lost": [k for k in acked if parse_ulid(k.ulid or "") not in ids],
        "duplicate": [
            k
            for k in load.keys
            if per_key[k.key] > 1 or any(a.note == "email exists" for a in k.attempts)
        ],
        "unreplayable": [k for k in acked if k.key not in answered],
        "unresolved": [k for k in load.keys if k.outcome == "unresolved"],
        "held at 409": [k for k in load.keys if any(a.note == "in flight" for a in k.attempts)],
    }
    statuses = Counter(a.status for k in load.keys for a in k.attempts)
    acks = [*sorted(t for t in load.acks if t <= ended), ended]  # a gap left open counts
    gaps = [b - a for a, b in zip(acks, acks[1:], strict=False)]
    return Outcome(
        acknowledged=len(acked),
        lost=len(bad["lost"]),
        duplicates=sum(n - 1 for n in per_key.values())
        + sum(any(a.note == "email exists" for a in k.attempts) for k in load.keys),
        http_500=statuses[500],
        other_5xx=sum(n for s, n in statuses.items() if isinstance(s, int) and 500 < s < 600),
        no_answer=sum(n for s, n in statuses.items() if isinstance(s, str)),
        unreplayable=len(bad["unreplayable"]),
        unresolved=len(bad["unresolved"]),
        held=len(bad["held at 409"]),
        held_s=round(max((k.held() for k in bad["held at 409"]), default=0.0), 1),
        outage_s=round(max(gaps, default=ended), 2),
        other_4xx=sum(k.outcome[:1] == "4" and "email exists" not in k.outcome for k in load.keys),
        leader=leader,
        rows=len(rows),
        examples={
            f"{kind} ({len(keys)}{window(keys, fault) if kind == 'lost' else ''})": [
                f"{k.key}: {k.history(fault)}" for k in keys[:3]
            ]
            for kind, keys in bad.items()
            if keys
        },
    )


def window(keys: list[Key], fault: float) -> str:
    """When the keys' 2xx answers came, in seconds from the fault."""
    times = [k.attempts[-1].ended - fault for k in keys]
    return f", answered {min(times):+.1f}s to {max(times):+.1f}s"


def logged_errors(log: Path) -> Counter[str]:
    """The exception classes of the service's error lines (its JSON log), by count."""
    found: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("error", "critical"):
            last = (entry.get("exc") or entry.get("msg") or "").strip().splitlines()[-1:]
            found[last[0].split(":", 1)[0] if last else "?"] += 1
    return found

"""Outgoing mail: SMTP through aiosmtplib, or kept for `jambo mail` in development."""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from app import dev_mailbox
from app.config import Settings
from app.errors import Unavailable
from app.metrics import MAIL_FAILURES, MAIL_SENDS

log = logging.getLogger("jambo.mail")


class Mailer(Protocol):
    """Sends one plain-text message."""

    async def send(self, to: str, subject: str, body: str) -> None: ...


def _message(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    return msg


class SmtpMailer:
    """Delivers through the configured SMTP server; failures raise Unavailable.

    A send has one deadline for the whole exchange, waiting for a free slot included
    (aiosmtplib's own timeout applies to each step, so a server that answers every step
    slowly would otherwise hold a request for many times the setting), and one worker has at
    most SMTP_MAX_CONCURRENT sends in flight, so a hung mail server cannot collect sockets.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._slots = asyncio.Semaphore(max(1, settings.smtp_max_concurrent))

    async def send(self, to: str, subject: str, body: str) -> None:
        s = self.settings
        taken = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.smtp_timeout_seconds
        MAIL_SENDS.inc()
        try:
            async with asyncio.timeout_at(deadline), self._slots:
                # aiosmtplib bounds each step by itself too: give it only what is left, so
                # a cancellation lost in its asyncio.wait_for (Python 3.11) cannot add a
                # whole step timeout past the deadline.
                remaining = max(0.05, deadline - loop.time())
                client = aiosmtplib.SMTP(
                    hostname=s.smtp_host,
                    port=s.smtp_port,
                    username=s.smtp_username,
                    password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                    start_tls=s.smtp_starttls,
                    timeout=remaining,
                )
                try:
                    await client.connect()
                    await client.send_message(_message(s.mail_from, to, subject, body))
                    taken = True
                    await client.quit()
                finally:
                    # Close without a QUIT on any failure: aiosmtplib's own clean-up would
                    # wait for a silent server's answer a whole step timeout more.
                    client.close()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            if taken:  # the server has the message; only the goodbye went wrong
                return
            log.warning("mail delivery failed: %s", type(exc).__name__)
            MAIL_FAILURES.inc()
            raise Unavailable("The mail server is unavailable; no link was sent.") from exc


class LogMailer:
    """Development only: nothing is sent; the message is written to the log (SPEC, "Running
    it") and also kept under DATA_DIR, where `jambo mail` shows it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, to: str, subject: str, body: str) -> None:
        try:
            await asyncio.to_thread(dev_mailbox.keep, self.settings.data_dir, to, subject, body)
            kept = "`jambo mail` shows it"
        except OSError as exc:
            kept = f"not kept for `jambo mail`: {type(exc).__name__}"
        log.warning(
            "SMTP_HOST is not set; mail not sent (%s). Subject: %s\n%s", kept, subject, body
        )


def make_mailer(settings: Settings) -> Mailer:
    """SMTP when SMTP_HOST is set, else the development mailbox."""
    return SmtpMailer(settings) if settings.smtp_host else LogMailer(settings)


class Outbox:
    """Mail sent after the answer, off the request (notices of a change already made):
    nothing waits for it, no database connection is held meanwhile, and a failure is only
    logged (the change it reports stands)."""

    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer
        self._sending: set[asyncio.Task[None]] = set()

    def send_later(self, to: str, subject: str, body: str) -> None:
        """Queue one message."""
        task = asyncio.create_task(self._send(to, subject, body))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, to: str, subject: str, body: str) -> None:
        try:
            await self.mailer.send(to, subject, body)
        except Unavailable:
            log.warning("a notice was not delivered: the mail server is unavailable")

    async def flush(self) -> None:
        """Wait for the messages queued so far (shutdown, tests)."""
        while self._sending:
            await asyncio.gather(*list(self._sending), return_exceptions=True)

"""A mail provider's HTTP API for the fault suite (SendGrid's v3 Mail Send:
``POST /v3/mail/send`` with a bearer key, ``202`` and ``X-Message-Id``) that
can misbehave on purpose, and that writes down every message it accepts.

Run as a process of its own (``python provider_sink.py --port P --journal
FILE --faults FILE --key KEY``). The faults file holds a JSON object read
again for every request, as for the SMTP sink (sink.py):

  drop_body     probability of closing the connection before the request's
                body has arrived
  lose_reply    probability of accepting the message (it counts as
                delivered) and closing the connection without an answer
  stall         probability of never answering (until the client goes away)
  garbage       probability of answering with bytes that are not HTTP
  flood         probability of answering with a header line that never ends
  flood_body    probability of answering 503 with a body that never ends
  tempfail      probability of answering 503 with ``Retry-After: 1``
  ratelimit     probability of answering 429 with SendGrid's
                ``X-RateLimit-Reset`` (a Unix time one second ahead)
  reject        probability of answering 400 with SendGrid's error document
                (a permanent failure: the message ends ``failed``)
  slow_reply    probability of waiting slow_seconds before answering 202
  fault_attempts  faults apply only to the first N attempts of one Message-ID
                (default: every attempt)

A request whose bearer key is not ``--key`` is answered 401 (and is not a
delivery), so a scenario also sees the key reach the provider.

The journal has the SMTP sink's lines, so the same judgement applies:

  T <time> <conn> <message-id> <subject>   a request's body arrived whole
  A <time> <conn> <message-id> <subject>   its message was accepted (delivered)
  C <time> <conn>                          the accepting answer was written
                                           out whole
An acceptance without its C (a lost reply) is "unconfirmed": its sender
cannot know that it went, and may send it again.
"""

import asyncio
import json
import os
import random
import time

from sink import FLOOD, GARBAGE, serve

# Drawn per message once its request has arrived (drop_body is drawn before).
FAULTS = ("lose_reply", "stall", "garbage", "flood", "flood_body", "tempfail",
          "ratelimit", "reject", "slow_reply")


def answer(status, reason, headers=(), body=b""):
    head = [f"HTTP/1.1 {status} {reason}", f"content-length: {len(body)}", *headers]
    if body:
        head.append("content-type: application/json")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def error_document(message):
    return json.dumps({"errors": [{"message": message, "field": None, "help": None}]}).encode()


def message_of(body):
    """(Message-ID without brackets, subject) of a Mail Send request body."""
    try:
        doc = json.loads(body)
        message_id = str(doc.get("headers", {}).get("Message-ID", "-")).strip("<>")
        subject = str(doc.get("subject", "-")).replace(" ", "_")
        return message_id or "-", subject or "-"
    except (ValueError, AttributeError):
        return "-", "-"


class Connection:
    """One HTTP/1.1 connection: requests in turn, kept alive."""

    counter = 0

    def __init__(self, server, reader, writer):
        Connection.counter += 1
        # Unique across restarts of the sink on the same journal.
        self.id = f"{os.getpid()}.{Connection.counter}"
        self.server, self.reader, self.writer = server, reader, writer

    async def send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    async def flood(self, head):
        await self.send(head)
        while True:
            await self.send(FLOOD)

    async def run(self):
        while True:
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = (lines[0].split(" ") + ["", ""])[:3]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if not await self.request(method, path, headers, length):
                return

    async def request(self, method, path, headers, length):
        """Reads and answers one request; False when the connection is to end."""
        journal = self.server.journal
        if method != "POST" or path != "/v3/mail/send" or length <= 0:
            await self.reader.readexactly(max(length, 0))
            await self.send(answer(404, "Not Found", body=error_document("no such resource")))
            return True
        if headers.get("authorization") != f"Bearer {self.server.key}":
            await self.reader.readexactly(length)
            await self.send(answer(401, "Unauthorized", body=error_document("invalid API key")))
            return True
        if random.random() < self.server.faults.current().get("drop_body", 0):
            # Half the body, then the connection ends: nothing arrived whole.
            await self.reader.readexactly(length // 2)
            return False
        body = await self.reader.readexactly(length)
        message_id, subject = message_of(body)
        fault, settings = self.server.faults.draw(message_id, FAULTS)
        journal.write("T", self.id, message_id, subject)
        if fault == "lose_reply":
            journal.write("A", self.id, message_id, subject)
            return False
        if fault == "stall":
            await self.reader.read()  # until the client gives up
            return False
        if fault == "garbage":
            await self.send(GARBAGE)
            return False
        if fault == "flood":
            await self.flood(b"HTTP/1.1 202 Accepted\r\nx-message-id: ")
        if fault == "flood_body":
            await self.flood(b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n"
                             + f"{len(FLOOD) * 64:x}\r\n".encode())
        if fault == "tempfail":
            await self.send(answer(503, "Service Unavailable", ["retry-after: 1"],
                                   error_document("temporarily unavailable")))
            return True
        if fault == "ratelimit":
            await self.send(answer(429, "Too Many Requests", [f"x-ratelimit-reset: {int(time.time()) + 1}"],
                                   error_document("too many requests")))
            return True
        if fault == "reject":
            await self.send(answer(400, "Bad Request", body=error_document("The from address does not match "
                                                                             "a verified Sender Identity.")))
            return True
        if fault == "slow_reply":
            await asyncio.sleep(settings.get("slow_seconds", 2))
        journal.write("A", self.id, message_id, subject)
        await self.send(answer(202, "Accepted", [f"x-message-id: sg-{message_id.split('@')[0]}"]))
        journal.write("C", self.id)
        return True


if __name__ == "__main__":
    asyncio.run(serve(__doc__, Connection, "--key"))

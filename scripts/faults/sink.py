"""An SMTP server for the fault suite that can misbehave on purpose, and that
writes down every message it accepts.

Run as a process of its own (``python sink.py --port P --journal FILE
--faults FILE``). The faults file holds a JSON object that is read again for
every message, so a scenario changes the server's behaviour while it runs:

  drop_data     probability of closing the connection in the middle of DATA
  lose_reply    probability of accepting a message (it counts as delivered)
                and closing the connection before the 250 reply is sent
  stall         probability of never answering the end of DATA
  garbage       probability of answering the end of DATA with bytes that are
                not SMTP
  garbage_greeting  probability of greeting a new connection with such bytes
  flood         probability of answering the end of DATA with bytes that never
                end a line, sent until the client goes away
  flood_greeting  probability of greeting a new connection that way
  tempfail      probability of answering the end of DATA with 451
  slow_reply    probability of waiting slow_seconds before answering the end of
                DATA with slow_code (250 accepts, anything else refuses)
  fault_attempts  faults apply only to the first N attempts of one Message-ID
                (default: every attempt)

Every other connection offers PIPELINING (RFC 2920): its commands arrive
grouped and are answered one by one, as a real server does.

The journal gets one line per event, flushed at once, so that it survives
whatever happens to the process:

  T <time> <conn> <message-id> <subject>   a message reached the end of DATA
  A <time> <conn> <message-id> <subject>   it was accepted (delivered)
  C <time> <conn>                          the client sent a command after the
                                           last acceptance on <conn>: it saw
                                           the reply
A delivery without a later C on its connection is "unconfirmed": its sender
may not know that it went, and may send it again.
"""

import argparse
import asyncio
import json
import random
import time

GARBAGE = b"\x16\x03\x01\x02\x00HTTP/1.1 200 OK\r\n\xff\xfe\r\n"
FLOOD = b"2" * 65536
# Drawn per message at the end of its header block.
FAULTS = ("drop_data", "lose_reply", "stall", "garbage", "flood", "tempfail", "slow_reply")


class Journal:
    """The append-only record of what the server saw and accepted."""

    def __init__(self, path):
        self.file = open(path, "a", buffering=1, encoding="utf-8")

    def write(self, *fields):
        self.file.write(" ".join([fields[0], f"{time.time():.3f}", *map(str, fields[1:])]) + "\n")


class Faults:
    """The faults file, read again for each message."""

    def __init__(self, path):
        self.path = path
        self.attempts = {}

    def current(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def draw(self, message_id, names=FAULTS):
        """The fault among `names` to inject for this attempt of message_id, or None."""
        faults = self.current()
        attempt = self.attempts.get(message_id, 0) + 1
        self.attempts[message_id] = attempt
        if attempt > faults.get("fault_attempts", 1 << 30):
            return None, faults
        for name in names:
            if random.random() < faults.get(name, 0):
                return name, faults
        return None, faults


def headers_of(head):
    """Message-ID (without brackets) and Subject of a message's header block."""
    head = head.decode("utf-8", "replace")
    found = {"message-id": "-", "subject": "-"}
    for line in head.split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() in found:
            found[name.strip().lower()] = value.strip().strip("<>").replace(" ", "_") or "-"
    return found["message-id"], found["subject"]


class Session:
    """One SMTP connection."""

    counter = 0

    def __init__(self, server, reader, writer):
        Session.counter += 1
        self.id = Session.counter
        self.server, self.reader, self.writer = server, reader, writer
        self.unconfirmed = False

    async def reply(self, line):
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()

    async def flood(self):
        """Bytes without a line end, until the client goes away."""
        while True:
            self.writer.write(FLOOD)
            await self.writer.drain()

    async def run(self):
        if random.random() < self.server.faults.current().get("flood_greeting", 0):
            await self.flood()
        if random.random() < self.server.faults.current().get("garbage_greeting", 0):
            self.writer.write(GARBAGE)
            await self.writer.drain()
            return
        await self.reply("220 sink.test ESMTP fault sink")
        while True:
            line = await self.reader.readline()
            if not line:
                return
            if self.unconfirmed:
                self.server.journal.write("C", self.id)
                self.unconfirmed = False
            verb = line[:4].upper()
            if verb == b"EHLO":
                # Every other connection offers PIPELINING, so both ways of
                # sending meet every fault.
                pipelining = "250-PIPELINING\r\n" if self.id % 2 else ""
                await self.reply(f"250-sink.test\r\n{pipelining}250-8BITMIME\r\n250 SIZE 20000000")
            elif verb == b"QUIT":
                await self.reply("221 bye")
                return
            elif verb == b"DATA":
                await self.reply("354 go ahead")
                if not await self.data():
                    return
            elif verb in (b"HELO", b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                await self.reply("250 ok")
            else:
                await self.reply("500 unknown command")

    async def lines(self, stop_at_blank):
        """DATA lines up to the header block's end (or the final dot); None at EOF."""
        lines = []
        while True:
            line = await self.reader.readline()
            if not line:
                return None
            lines.append(line)
            if line == b".\r\n" or (stop_at_blank and line == b"\r\n"):
                return lines

    async def data(self):
        """Reads one message; False when the connection is to end."""
        head = await self.lines(stop_at_blank=True)
        if head is None:
            return False
        message_id, subject = headers_of(b"".join(head))
        fault, settings = self.server.faults.draw(message_id)
        journal = self.server.journal
        if fault == "drop_data":
            journal.write("T", self.id, message_id, subject)
            return False  # the body is still on its way
        if head[-1] != b".\r\n" and await self.lines(stop_at_blank=False) is None:
            return False
        journal.write("T", self.id, message_id, subject)
        if fault == "lose_reply":
            journal.write("A", self.id, message_id, subject)
            return False
        if fault == "stall":
            await self.reader.read()  # until the client gives up
            return False
        if fault == "garbage":
            self.writer.write(GARBAGE)
            await self.writer.drain()
            return True
        if fault == "flood":
            await self.flood()
        if fault == "tempfail":
            await self.reply("451 4.3.0 try again later")
            return True
        code = 250
        if fault == "slow_reply":
            await asyncio.sleep(settings.get("slow_seconds", 10))
            code = settings.get("slow_code", 250)
        if code == 250:
            journal.write("A", self.id, message_id, subject)
            self.unconfirmed = True
            await self.reply("250 2.0.0 queued as " + message_id[:12])
        else:
            await self.reply(f"{code} 5.7.1 refused after a long wait")
        return True


class Server:
    """Accepts connections and runs a `session` (Session here; the provider
    sink's Connection) for each; `key` is what the provider sink expects."""

    def __init__(self, journal, faults, session, key=None):
        self.journal, self.faults, self.session, self.key = journal, faults, session, key

    async def handle(self, reader, writer):
        try:
            await self.session(self, reader, writer).run()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()


async def serve(doc, session, *options):
    """Parses the command line (`doc`: the script's docstring; `options`:
    its own required ones) and serves `session` until killed."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    for name in ("--journal", "--faults", *options):
        parser.add_argument(name, required=True)
    args = parser.parse_args()
    server = Server(Journal(args.journal), Faults(args.faults), session, getattr(args, "key", None))
    listener = await asyncio.start_server(server.handle, "127.0.0.1", args.port, limit=1 << 20)
    async with listener:
        await listener.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(__doc__, Session))

"""What every scenario shares: its directory, its processes (stopped when it
ends, whatever happened), the service's settings, and the final judgement."""

import contextlib
import sqlite3
import time
from pathlib import Path

import load
import peers
import verdict


class Skip(Exception):
    """The scenario cannot run on this machine (the reason says why)."""


class Context:
    """One scenario's run."""

    def __init__(self, name, binary, work, toxiproxy_bin):
        self.name, self.binary, self.toxiproxy_bin = name, binary, toxiproxy_bin
        self.work = Path(work) / name
        self.work.mkdir(parents=True)
        self.run_id = f"{name}-{int(time.time())}"
        self.stack = contextlib.ExitStack()
        self.notes = []
        self.started = time.time()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stack.close()

    def note(self, text):
        print(f"   [{time.time() - self.started:6.1f}s] {text}", flush=True)
        self.notes.append(text)

    def sink(self, faults=None, key=None):
        """The SMTP sink, or with `key` the provider API sink."""
        sink = peers.Sink(self.work, key)
        sink.set_faults(faults or {})
        sink.start()
        self.stack.callback(sink.process.kill9)
        return sink

    def env(self, database_url, smtp_port, dsn="timeout=10s&max_connections=8", **extra):
        """The service's settings: short retries and a short lease, so that
        recovery is observable within a scenario's bounded time."""
        env = {
            "MAILBRIDGE_DATABASE_URL": database_url,
            "MAILBRIDGE_TRANSPORT": f"smtp://127.0.0.1:{smtp_port}?tls=none&{dsn}",
            "MAILBRIDGE_RETRY_BASE": "200ms",
            "MAILBRIDGE_RETRY_MAX_INTERVAL": "2s",
            "MAILBRIDGE_RETRY_MAX_ATTEMPTS": "30",
            "MAILBRIDGE_LEASE": "5s",
        }
        env.update(extra)
        return env

    def service(self, name, env):
        service = peers.Service(self.binary, self.work, name, env)
        self.stack.callback(service.process.kill9)
        return service.start()

    def postgres(self, directory=None, small_wal=False):
        if peers.postgres_bin() is None:
            raise Skip("no PostgreSQL server binaries (run scripts/test-deps.sh)")
        pg = peers.Postgres(self.work, directory, small_wal)
        self.stack.callback(pg.remove)
        return pg.create()

    def toxiproxy(self):
        if not self.toxiproxy_bin or not Path(self.toxiproxy_bin).exists():
            raise Skip("no toxiproxy-server (run scripts/test-deps.sh; it needs Go)")
        proxy = peers.Toxiproxy(self.work, self.toxiproxy_bin)
        self.stack.callback(proxy.process.kill9)
        return proxy.start()

    def load(self, targets, **options):
        generator = load.Load(self.run_id, targets, **options)
        self.stack.callback(generator.stop)
        return generator.start()

    def drain(self, url, answers, seconds=60):
        """Waits (bounded) until every accepted message is sent or failed."""
        ids = [a.id for a in answers if a.status == 202 and a.id]
        began = time.time()
        records = load.final_statuses(url, ids, seconds)
        waiting = sum(1 for r in records.values() if r.get("status") in ("queued", "sending", "retrying"))
        self.note(f"drained in {time.time() - began:.1f}s" + (f", {waiting} still pending" if waiting else ""))
        return records

    def judge(self, answers, records, sink, in_flight=()):
        report = verdict.judge(self.name, answers, records, sink.events(), in_flight, self.notes)
        leaks = self.leaking_log_lines()
        if leaks:
            report["broken"].append(f"{len(leaks)} log line(s) of the service carry a body or a link, "
                                    f"e.g. in {leaks[0]}")
        return report

    def leaking_log_lines(self):
        """`file:line` of every service log line with a message's body or link in it."""
        leaks = []
        for log in sorted(self.work.glob("*.log")):
            if log.stem in ("sink", "toxiproxy"):
                continue
            with open(log, encoding="utf-8", errors="replace") as f:
                leaks += [f"{log.name}:{n}" for n, line in enumerate(f, 1)
                          if load.BODY_MARK in line or load.LINK_MARK in line]
        return leaks


def sqlite_ids(path, where):
    """Ids of the rows matching `where` in a SQLite queue file (the service is down)."""
    with contextlib.closing(sqlite3.connect(str(path), timeout=10)) as db:
        return [row[0] for row in db.execute(f"SELECT id FROM messages WHERE {where}")]


def limits_env(ctx):
    """Settings giving the default tenant a `recipient_rate`."""
    config = ctx.work / "limits.toml"
    config.write_text('[tenants.default]\nrecipient_rate = "5/hour"\n')
    return {"MAILBRIDGE_CONFIG": str(config)}


def check_limits(ctx, report, answers, stored, cells):
    """Every message to an address of its own: a limit cell per stored
    message (spent in the commit that stores it), none refused."""
    ctx.note(f"{stored} messages stored, {cells} limit cells")
    if cells != stored:
        report["broken"].append(f"{cells} limit cells for {stored} stored messages: "
                                "a spend without its message, or a message without its spend")
    refused = sum(1 for a in answers if a.status == 429)
    if refused:
        report["broken"].append(f"{refused} refused by the limit, though every address was new")
    return report


def sqlite_count(path, table):
    """Rows of `table` in a SQLite queue file."""
    with contextlib.closing(sqlite3.connect(str(path), timeout=10)) as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def deliveries_between(sink, start, end):
    """Ids of the messages the sink accepted between two times: attempts in
    flight while a fault was on, whose outcome may not have been recorded."""
    return [verdict.message_uuid(e[3]) for e in sink.events()
            if e[0] == "A" and len(e) >= 5 and start <= float(e[1]) <= end]

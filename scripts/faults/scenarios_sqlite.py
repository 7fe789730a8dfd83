"""Scenarios of one service on the embedded SQLite store: the disk fills up,
the process is killed with SIGKILL, and the SMTP server misbehaves."""

import os
import subprocess
import time
from pathlib import Path

import peers
from context import Skip, check_limits, deliveries_between, limits_env, sqlite_count, sqlite_ids


def disk_full(ctx):
    """SQLite on a 2 MiB tmpfs, 40 KB messages until the disk is full; then
    space comes back. Every 202 is on disk, delivered and survives a restart;
    every refusal is a 503 problem+json with Retry-After and never delivered;
    /readyz is 503 while commits fail and 200 again once they can."""
    if os.geteuid() != 0:
        raise Skip("needs root to mount a tmpfs")
    try:
        disk = peers.Tmpfs(ctx.work / "disk", "2m").mount()
    except subprocess.CalledProcessError as e:
        raise Skip(f"cannot mount a tmpfs here ({(e.stderr or b'').decode().strip() or e})") from e
    ctx.stack.callback(disk.unmount)
    db = disk.path / "mb.db"
    sink = ctx.sink()
    env = ctx.env(f"sqlite://{db}", sink.port)
    svc = ctx.service("service", env)
    traffic = ctx.load([svc.url], size=40_000, concurrency=4, limit=1_000)
    filled = peers.wait_until(lambda: traffic.count(503) > 0, 60)
    full_at = time.time()
    ctx.note(f"first 503 after {traffic.count(202)} accepted")
    readyz_503, seen = svc.readiness(5, 503)
    ctx.note(f"/readyz while commits fail: {', '.join(seen[-3:])}")
    time.sleep(2)
    disk.grow("64m")
    freed_at = time.time()
    accepted_before = traffic.count(202)
    recovered, seen = svc.readiness(30, 200)
    ctx.note(f"space back: /readyz {', '.join(seen[-3:])} ({time.time() - freed_at:.1f}s)")
    accepts_again = peers.wait_until(lambda: traffic.count(202) > accepted_before, 20)
    time.sleep(1)
    answers = traffic.stop()
    ctx.note(f"202 again after space came back: {accepts_again}")
    ctx.drain(svc.url, answers, 30)
    exit_code = svc.process.stop()
    rows = len(sqlite_ids(db, "1=1"))
    ctx.note(f"stopped (exit {exit_code}); {rows} rows on disk")
    svc = ctx.service("service-restarted", env)
    records = ctx.drain(svc.url, answers, 30)
    report = ctx.judge(answers, records, sink, in_flight=deliveries_between(sink, full_at - 1, freed_at))
    accepted = report["accepted"]
    if not filled:
        report["broken"].append("no commit failed within 60 s: the disk never filled")
    if exit_code != 0:
        report["broken"].append(f"stopping with SIGTERM after the fault: exit {exit_code}, not 0")
    if not readyz_503:
        report["broken"].append("/readyz stayed 200 while commits failed")
    if not recovered or not accepts_again:
        report["broken"].append("the service did not recover when space came back")
    if rows != accepted:
        report["broken"].append(f"{rows} rows on disk for {accepted} messages answered 202")
    return report


def kill9_sqlite(ctx, kills=3, every=3.0, limits=False, webhooks=False):
    """One service on SQLite killed with SIGKILL mid-load, restarted on the
    same file, three times. What was `sending` at a kill may go twice."""
    sink = ctx.sink()
    db = ctx.work / "mb.db"
    extra = limits_env(ctx) if limits else {}
    if webhooks:
        receiver = peers.WebhookReceiver()
        ctx.stack.callback(receiver.stop)
        config = ctx.work / "webhooks.toml"
        config.write_text(f'[tenants.default]\nwebhook_url = "{receiver.url}"\n'
                          'webhook_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"\n')
        extra = {"MAILBRIDGE_CONFIG": str(config)}
    env = ctx.env(f"sqlite://{db}", sink.port, **extra)
    svc = ctx.service("service", env)
    if limits:
        traffic = ctx.load([svc.url], size=2_000, concurrency=16, limit=40_000, own_address=True)
    else:
        traffic = ctx.load([svc.url], size=2_000, concurrency=6, limit=20_000, pause=0.02)
    in_flight = []
    for n in range(kills):
        time.sleep(every)
        svc.process.kill9()
        sending = sqlite_ids(db, "status = 'sending' AND transport <> 'webhook'")
        in_flight += sending
        note = f"kill -9 #{n + 1}: {traffic.count(202)} accepted so far, {len(sending)} sending"
        if limits:
            note += f"; {sqlite_count(db, 'messages')} stored, {sqlite_count(db, 'flow_limits')} limit cells"
        if webhooks:
            note += f"; {len(sqlite_ids(db, 'transport = ' + repr('webhook')))} webhook rows"
        ctx.note(note)
        time.sleep(0.5)
        svc.process.start()
        peers.wait_until(lambda: peers.http_get(svc.url + "/healthz")[0] == 200, 30)
    time.sleep(every)
    answers = traffic.stop()
    records = ctx.drain(svc.url, answers)
    report = ctx.judge(answers, records, sink, in_flight=in_flight)
    if limits:
        svc.process.stop()
        stored, cells = sqlite_count(db, "messages"), sqlite_count(db, "flow_limits")
        check_limits(ctx, report, answers, stored, cells)
    if webhooks:
        check_sent_webhooks(ctx, report, records, receiver)
    return report


def check_sent_webhooks(ctx, report, records, receiver):
    """Every message that ended `sent` had its `message.sent` webhook (within 60 s)."""
    sent = {i for i, r in records.items() if r.get("status") == "sent"}
    began = time.time()
    peers.wait_until(lambda: sent <= receiver.ids("message.sent"), 60)
    missing = sent - receiver.ids("message.sent")
    ctx.note(f"{len(sent)} sent, {len(receiver.ids('message.sent') & sent)} with their message.sent "
             f"webhook after {time.time() - began:.1f}s")
    if not sent:
        report["broken"].append("no message was sent")
    if missing:
        report["broken"].append(f"{len(missing)} sent messages never had their message.sent webhook, "
                                f"e.g. {sorted(missing)[0]}")


def kill9_webhooks(ctx):
    """`kill9-sqlite` with the default tenant's webhooks on: every message
    that ends `sent` has its `message.sent` webhook, though the process was
    killed between any two commits (the webhook is written in the commit
    of the outcome)."""
    return kill9_sqlite(ctx, webhooks=True)


def kill9_limits(ctx):
    """`kill9-sqlite` with 16 concurrent requests, a tenant `recipient_rate`
    and every message to an address of its own. A message's limit is spent
    in the commit that stores it: as many limit cells as stored messages
    after the kills, none refused."""
    return kill9_sqlite(ctx, limits=True)


def clockshift(ctx):
    """`clockshift.c` built for this run: it sets one process's wall clock
    by the seconds in a file (libfaketime deadlocks with jemalloc, which
    asks for the time while it initialises)."""
    library = ctx.work / "clockshift.so"
    source = Path(__file__).with_name("clockshift.c")
    try:
        subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(library), str(source)],
                       check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        raise Skip(f"cannot build clockshift.c with cc: {e}") from e
    return str(library)


def shifted_service(ctx, connections):
    """A SQLite service whose wall clock follows the seconds written to the
    returned file (0 at first), delivering over `connections` to a sink that
    answers every first attempt after 1 s. The service, the sink, the file."""
    stamp = ctx.work / "clock-shift"
    stamp.write_text("0\n")
    clock = {"LD_PRELOAD": clockshift(ctx), "CLOCKSHIFT_FILE": str(stamp)}
    sink = ctx.sink({"slow_reply": 1.0, "slow_seconds": 1, "fault_attempts": 1})
    dsn = f"timeout=10s&max_connections={connections}"
    svc = ctx.service("service", ctx.env(f"sqlite://{ctx.work / 'mb.db'}", sink.port, dsn, **clock))
    return svc, sink, stamp


def clock_step(ctx):
    """The service's wall clock set an hour forward mid-load (`clockshift.c`;
    the monotonic clock untouched, as for an NTP step or a virtual machine
    resumed) while deliveries are in flight: every first attempt is
    answered after 1 s, well within the lease, over connections enough for
    all. Leases end at wall-clock times, so without care every lease in
    flight looks abandoned at once and is claimed again. No message may go
    twice (no attempt is cut, so no duplicate is allowed), none be lost."""
    svc, sink, stamp = shifted_service(ctx, connections=32)
    traffic = ctx.load([svc.url], size=2_000, concurrency=1, limit=400, pause=0.1)
    time.sleep(4)
    stamp.write_text("3600\n")
    ctx.note(f"the clock set an hour forward: {traffic.count(202)} accepted so far")
    # Two lease lengths (5 s) and more under the new clock, with the load on.
    time.sleep(12)
    answers = traffic.stop()
    records = ctx.drain(svc.url, answers, 90)
    report = ctx.judge(answers, records, sink)
    if report["accepted"] < 50:
        report["broken"].append(f"only {report['accepted']} accepted: the load did not run")
    if report["duplicates"]:
        report["broken"].append(f"{report['duplicates']} duplicate deliveries, though no attempt was cut")
    return report


def clock_step_back(ctx):
    """The service's wall clock set an hour back (`clockshift.c`) while a
    backlog waits: 300 messages accepted at once, every first attempt
    answered after 1 s over 8 connections. The backlog was stored as due
    by the clock before the step; it must be sent now, not in an hour."""
    svc, sink, stamp = shifted_service(ctx, connections=8)
    traffic = ctx.load([svc.url], size=2_000, concurrency=8, limit=300)
    peers.wait_until(lambda: len(traffic.answers) >= 300, 60)
    stamp.write_text("-3600\n")
    ctx.note(f"the clock set an hour back: {traffic.count(202)} accepted")
    answers = traffic.stop()
    records = ctx.drain(svc.url, answers, 120)
    report = ctx.judge(answers, records, sink)
    if report["accepted"] < 250:
        report["broken"].append(f"only {report['accepted']} accepted: the load did not run")
    return report


def peak_rss_mib(service):
    """The service's peak resident memory so far (VmHWM), in MiB."""
    with open(f"/proc/{service.process.proc.pid}/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def check_peak_rss(ctx, report, service, bound_mib):
    """With a bound, the service's memory must have stayed under it."""
    if bound_mib is not None:
        peak = peak_rss_mib(service)
        ctx.note(f"peak resident memory of the service: {peak:.0f} MiB (bound {bound_mib})")
        if peak > bound_mib:
            report["broken"].append(f"the service's memory peaked at {peak:.0f} MiB, over {bound_mib}")
    return report


def under_load(ctx, sink, svc, faults, limit):
    """`limit` requests of 4 KB, four at a time, to `svc` while `sink` has
    `faults`; then the drain (90 s bound). The judgement and the records."""
    traffic = ctx.load([svc.url], size=4_000, concurrency=4, limit=limit)
    peers.wait_until(lambda: len(traffic.answers) >= limit, 60)
    answers = traffic.stop()
    ctx.note(f"faults {faults}: {len(answers)} requests")
    records = ctx.drain(svc.url, answers, 90)
    return ctx.judge(answers, records, sink), records


def smtp_fault(faults, limit=2_000, dsn="timeout=10s&max_connections=8", max_rss_mib=None):
    """A scenario: one SQLite service delivering to a sink with `faults`;
    with `max_rss_mib`, its memory must stay under that peak."""

    def scenario(ctx):
        sink = ctx.sink(faults)
        svc = ctx.service("service", ctx.env(f"sqlite://{ctx.work / 'mb.db'}", sink.port, dsn))
        report, _ = under_load(ctx, sink, svc, faults, limit)
        if report["attempts_recorded"] <= report["accepted"]:
            report["broken"].append("no message needed a second attempt: the fault never struck")
        return check_peak_rss(ctx, report, svc, max_rss_mib)

    scenario.__doc__ = f"An SMTP server with the faults {faults}; transport options {dsn}."
    return scenario


SCENARIOS = {
    "disk-full": disk_full,
    "kill9-sqlite": kill9_sqlite,
    "kill9-limits": kill9_limits,
    "kill9-webhooks": kill9_webhooks,
    "clock-step": clock_step,
    "clock-step-back": clock_step_back,
    "smtp-drop-mid-data": smtp_fault({"drop_data": 0.3}),
    "smtp-stall": smtp_fault({"stall": 0.1, "fault_attempts": 2}, limit=500, dsn="timeout=3s&max_connections=8"),
    "smtp-garbage": smtp_fault({"garbage": 0.15, "garbage_greeting": 0.1}),
    # A server (or something else on its port) that sends and never ends a
    # line: each such attempt fails, and memory stays bounded.
    "smtp-flood": smtp_fault({"flood": 0.1, "flood_greeting": 0.1}, max_rss_mib=200),
    "smtp-lost-reply": smtp_fault({"lose_reply": 0.1}),
    "smtp-tempfail": smtp_fault({"tempfail": 0.3}),
}

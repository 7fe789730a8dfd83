"""Scenarios on one PostgreSQL shared by replicas: the database stops and
comes back, a replica is killed with SIGKILL again and again, an attempt
outlives its lease, and Toxiproxy breaks the network to PostgreSQL or SMTP."""

import os
import subprocess
import time

import load
import peers
from context import Skip, check_limits, deliveries_between, limits_env


def replicas(ctx, pg_url, sink_port, count, dsn="timeout=10s&max_connections=8", **extra):
    return [ctx.service(f"replica{n}", ctx.env(pg_url, sink_port, dsn, **extra)) for n in range(count)]


def pg_restart(ctx, down=8.0):
    """PostgreSQL stopped (immediate, as a crash) mid-load and started again
    8 s later, under two replicas."""
    pg, sink = ctx.postgres(), ctx.sink()
    services = replicas(ctx, pg.url, sink.port, 2)
    traffic = ctx.load([s.url for s in services], size=2_000, concurrency=6, limit=20_000, pause=0.02)
    time.sleep(4)
    in_flight = pg.query("SELECT id FROM messages WHERE status = 'sending'") or []
    stopped_at = time.time()
    pg.stop()
    ctx.note(f"PostgreSQL stopped: {traffic.count(202)} accepted, {len(in_flight)} sending")
    readyz_503, seen = services[0].readiness(down, 503)
    ctx.note(f"/readyz while PostgreSQL is down: {', '.join(seen[-3:])}")
    time.sleep(max(0.0, down - (time.time() - stopped_at)))
    pg.start()
    started_at = time.time()
    accepted_before = traffic.count(202)
    recovered = all(s.readiness(30, 200)[0] for s in services)
    accepts_again = peers.wait_until(lambda: traffic.count(202) > accepted_before, 20)
    ctx.note(f"PostgreSQL back: /readyz 200 after {time.time() - started_at:.1f}s: {recovered}; "
             f"{traffic.count(503)} answered 503 in all")
    time.sleep(3)
    answers = traffic.stop()
    records = ctx.drain(services[0].url, answers, 90)
    # A delivery while the database was down could not be recorded: in flight at the fault.
    in_flight += deliveries_between(sink, stopped_at, started_at)
    report = ctx.judge(answers, records, sink, in_flight=in_flight)
    if not readyz_503:
        report["broken"].append("/readyz did not turn 503 while PostgreSQL was down")
    if not recovered or not accepts_again:
        report["broken"].append("the replicas did not recover when PostgreSQL came back")
    return report


def pg_disk_full(ctx, spare_mib=4):
    """PostgreSQL's data directory on a tmpfs with 4 MiB to spare; 40 KB
    messages until PostgreSQL cannot write; 2 s later the tmpfs grows to
    256 MiB (and PostgreSQL is started again if it stopped). Every 202 is
    stored and delivered; refusals are 503 (or 504: the commit's outcome is
    unknown); /readyz is 503 while PostgreSQL cannot write and 200 again after."""
    if os.geteuid() != 0:
        raise Skip("needs root to mount a tmpfs")
    try:
        disk = peers.Tmpfs(ctx.work / "pgdisk", "128m").mount()
    except subprocess.CalledProcessError as e:
        raise Skip(f"cannot mount a tmpfs here ({(e.stderr or b'').decode().strip() or e})") from e
    ctx.stack.callback(disk.unmount)
    pg, sink = ctx.postgres(directory=disk.path, small_wal=True), ctx.sink()
    svc = ctx.service("service", ctx.env(pg.url, sink.port))
    used = disk.used_mib()
    disk.grow(f"{int(used) + spare_mib}m")
    ctx.note(f"PostgreSQL and the schema take {used:.0f} MiB; the disk holds {int(used) + spare_mib} MiB")
    traffic = ctx.load([svc.url], size=40_000, concurrency=4, limit=20_000)
    filled = peers.wait_until(lambda: traffic.count(503) + traffic.count(504) > 0, 90)
    full_at = time.time()
    ctx.note(f"first refusal after {traffic.count(202)} accepted")
    readyz_503, seen = svc.readiness(10, 503)
    ctx.note(f"/readyz while PostgreSQL cannot write: {', '.join(seen[-3:])}")
    time.sleep(2)
    disk.grow("256m")
    freed_at = time.time()
    accepted_before = traffic.count(202)
    restarted = not pg.running()
    if restarted:
        ctx.note("PostgreSQL had stopped; started again")
        pg.start()
    recovered, seen = svc.readiness(60, 200)
    ctx.note(f"space back: /readyz {', '.join(seen[-3:])} ({time.time() - freed_at:.1f}s)")
    accepts_again = peers.wait_until(lambda: traffic.count(202) > accepted_before, 30)
    time.sleep(1)
    answers = traffic.stop()
    records = ctx.drain(svc.url, answers, 60)
    # Deliveries while PostgreSQL could not write may not have been recorded.
    report = ctx.judge(answers, records, sink, in_flight=deliveries_between(sink, full_at - 1, time.time()))
    stored = pg.query("SELECT count(*) FROM messages")
    accepted, unknown = report["accepted"], sum(1 for a in answers if a.status == 504)
    ctx.note(f"{stored} rows for {accepted} answered 202 and {unknown} answered 504")
    if not filled:
        report["broken"].append("no request was refused within 90 s: the disk never filled")
    if not readyz_503:
        report["broken"].append("/readyz stayed 200 while PostgreSQL could not write")
    if not recovered or not accepts_again:
        report["broken"].append("the service did not recover when space came back")
    if stored is None or not accepted <= int(stored[0]) <= accepted + unknown:
        report["broken"].append(f"{stored} rows stored for {accepted} messages answered 202 "
                                f"(and {unknown} answered 504)")
    return report


def kill9_replicas(ctx, kills=5, every=3.0, limits=False):
    """Three replicas on one PostgreSQL; one of them is killed with SIGKILL and
    restarted five times while load goes to all three."""
    pg, sink = ctx.postgres(), ctx.sink()
    services = replicas(ctx, pg.url, sink.port, 3, **(limits_env(ctx) if limits else {}))
    urls = [s.url for s in services]
    if limits:
        traffic = ctx.load(urls, size=2_000, concurrency=16, limit=40_000, own_address=True)
    else:
        traffic = ctx.load(urls, size=2_000, concurrency=6, limit=20_000, pause=0.02)
    victim, in_flight = services[0], []
    for n in range(kills):
        time.sleep(every)
        victim.process.kill9()
        # Which replica holds a row is not visible: count all of them.
        sending = pg.query("SELECT id FROM messages WHERE status = 'sending'") or []
        in_flight += sending
        ctx.note(f"kill -9 #{n + 1} of replica0: {traffic.count(202)} accepted, {len(sending)} sending")
        time.sleep(0.5)
        victim.process.start()
    time.sleep(every)
    answers = traffic.stop()
    records = ctx.drain(services[1].url, answers, 90)
    report = ctx.judge(answers, records, sink, in_flight=in_flight)
    if limits:
        counts = pg.query("SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM flow_limits)")
        stored, cells = (int(c) for c in (counts or ["-1|-2"])[0].split("|"))
        check_limits(ctx, report, answers, stored, cells)
    return report


def kill9_replicas_limits(ctx):
    """`kill9-replicas` with 16 concurrent requests, a tenant
    `recipient_rate` and every message to an address of its own. A message's
    limit is spent in the commit that stores it: as many limit cells as
    stored messages at the end, none refused."""
    return kill9_replicas(ctx, limits=True)


def lease_outlived(ctx):
    """Two replicas, a 5 s lease, and an SMTP server that answers the first
    attempt of every message with 550 after 8 s. A send is bounded by its
    lease: the attempt is cut at 5 s and the next one delivers (`sent`).
    Unbounded and unfenced, the late 550 ends the message `failed`, or
    overwrites the `sent` of a second attempt."""
    pg = ctx.postgres()
    sink = ctx.sink({"slow_reply": 1.0, "slow_seconds": 8, "slow_code": 550, "fault_attempts": 1})
    services = replicas(ctx, pg.url, sink.port, 2, dsn="timeout=30s&max_connections=8")
    traffic = ctx.load([s.url for s in services], size=2_000, concurrency=2, limit=30)
    peers.wait_until(lambda: len(traffic.answers) >= 30, 30)
    answers = traffic.stop()
    records = ctx.drain(services[0].url, answers, 120)
    report = ctx.judge(answers, records, sink)
    if report["failed_with_reason"]:
        report["broken"].append(f"{report['failed_with_reason']} message(s) failed with the 550 that came "
                                "8 s into an attempt: the send outlived its 5 s lease")
    return report


def pg_blackhole(ctx, on=40.0, stop_after=5.0, stop_bound=30.0):
    """Toxiproxy `timeout` 0 on PostgreSQL's replies for 40 s (packets lost,
    no reset: connections hang, as in a network partition) with two replicas
    under load; one gets SIGTERM 5 s into it. Commit groups, suppression
    lookups and pending counts are bounded (10 s), so every request is
    answered meanwhile (503, or 504 where its commit may have happened), the
    stopped replica exits within 30 s, and once the link is back 202s resume
    with nothing lost."""
    pg, sink, proxy = ctx.postgres(), ctx.sink(), ctx.toxiproxy()
    pg_port = proxy.proxy("postgres", pg.port)
    pg_url = pg.url.replace(f":{pg.port}/", f":{pg_port}/")
    services = replicas(ctx, pg_url, sink.port, 2)
    traffic = ctx.load([services[0].url], size=4_000, concurrency=4, limit=20_000, pause=0.02)
    # Tokens of their own (each generator counts from 1).
    stopped = load.Load(f"{ctx.run_id}-b", [services[1].url], size=4_000, concurrency=2,
                        limit=20_000, pause=0.02).start()
    ctx.stack.callback(stopped.stop)
    time.sleep(2)
    began = time.time()
    proxy.add("postgres", "fault", "timeout", timeout=0)
    time.sleep(stop_after)
    stopping = time.time()
    code = services[1].process.stop(grace=on)
    stopped_in = time.time() - stopping
    # Requests to it after its listener closed find no one: not judged.
    to_stopped = [a for a in stopped.stop() if a.status is not None]
    ctx.note(f"replica 1 stopped in {stopped_in:.1f}s (exit {code}) while PostgreSQL was out of reach")
    time.sleep(max(0.0, on - (time.time() - began)))
    during = traffic.count(None)
    proxy.remove("postgres", "fault")
    ctx.note(f"link back after {time.time() - began:.0f}s: {traffic.count(202)} accepted, "
             f"{traffic.count(503)} answered 503, {traffic.count(504)} answered 504, {during} unanswered")
    window = (began - 1, time.time() + 1)
    peers.wait_until(lambda: services[0].ready(), 60)
    accepted_before = traffic.count(202)
    time.sleep(5)
    resumed = traffic.count(202) - accepted_before
    answers = traffic.stop() + to_stopped
    records = ctx.drain(services[0].url, answers, 90)
    report = ctx.judge(answers, records, sink, in_flight=deliveries_between(sink, *window))
    if stopped_in > stop_bound or code != 0:
        report["broken"].append(f"the replica stopped with SIGTERM took {stopped_in:.1f}s (exit {code}), "
                                f"beyond {stop_bound:g}s")
    if during:
        report["broken"].append(f"{during} request(s) got no answer within 30 s while the database was out of reach")
    if resumed == 0:
        report["broken"].append("no 202 within 5 s of the link coming back")
    return report


def network_fault(through, toxic, attributes, on=2.0, off=2.0, rounds=3, stream="downstream"):
    """A scenario: Toxiproxy between the two replicas and `through` ("postgres"
    or "smtp") injects `toxic` for `on` seconds out of every `on + off`."""

    def scenario(ctx):
        pg, sink, proxy = ctx.postgres(), ctx.sink(), ctx.toxiproxy()
        pg_port = proxy.proxy("postgres", pg.port) if through == "postgres" else pg.port
        smtp_port = proxy.proxy("smtp", sink.port) if through == "smtp" else sink.port
        pg_url = pg.url.replace(f":{pg.port}/", f":{pg_port}/")
        services = replicas(ctx, pg_url, smtp_port, 2)
        traffic = ctx.load([s.url for s in services], size=20_000, concurrency=6, limit=20_000, pause=0.02)
        time.sleep(2)
        windows = []
        for n in range(rounds):
            began = time.time()
            proxy.add(through, "fault", toxic, stream=stream, **attributes)
            time.sleep(on)
            proxy.remove(through, "fault")
            windows.append((began - 1, time.time() + 1))
            ctx.note(f"{toxic} {attributes} on {through} #{n + 1}: {traffic.count(202)} accepted, "
                     f"{traffic.count(503)} answered 503, {traffic.count(None)} unanswered")
            time.sleep(off)
        answers = traffic.stop()
        records = ctx.drain(services[0].url, answers, 90)
        # With the database out of reach, a delivery's outcome may not be
        # recorded: every delivery while the fault was on was in flight at it.
        # A broken SMTP link leaves its trace at the sink (unconfirmed).
        in_flight = [id for w in windows for id in deliveries_between(sink, *w)] if through == "postgres" else []
        return ctx.judge(answers, records, sink, in_flight=in_flight)

    direction = "its replies" if stream == "downstream" else "what the service sends it"
    scenario.__doc__ = (f"Toxiproxy: `{toxic}` {attributes} on the link to {through} ({direction}), "
                        f"{on:g} s on / {off:g} s off, {rounds} times, two replicas on PostgreSQL.")
    return scenario


SCENARIOS = {
    "pg-disk-full": pg_disk_full,
    "pg-restart": pg_restart,
    "kill9-replicas": kill9_replicas,
    "kill9-replicas-limits": kill9_replicas_limits,
    "lease-outlived": lease_outlived,
    "pg-blackhole": pg_blackhole,
    "net-pg-latency": network_fault("postgres", "latency", {"latency": 300, "jitter": 100}, on=4, rounds=2),
    "net-pg-bandwidth": network_fault("postgres", "bandwidth", {"rate": 256}, on=4, rounds=2, stream="upstream"),
    "net-pg-reset": network_fault("postgres", "reset_peer", {"timeout": 0}, on=1.5),
    "net-pg-timeout": network_fault("postgres", "timeout", {"timeout": 0}, on=4, off=6, rounds=2),
    "net-smtp-latency": network_fault("smtp", "latency", {"latency": 300, "jitter": 100}, on=4, rounds=2),
    "net-smtp-bandwidth": network_fault("smtp", "bandwidth", {"rate": 64}, on=5, rounds=2, stream="upstream"),
    "net-smtp-reset": network_fault("smtp", "reset_peer", {"timeout": 20}, on=1.5, stream="upstream"),
    "net-smtp-timeout": network_fault("smtp", "timeout", {"timeout": 0}, on=4, off=6, rounds=2),
}

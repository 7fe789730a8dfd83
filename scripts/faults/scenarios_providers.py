"""Scenarios of one service on SQLite delivering through a provider's HTTP
API (SendGrid's Mail Send, served by provider_sink.py) that misbehaves, or
goes away for a while."""

import time
import uuid

import peers
from scenarios_sqlite import check_peak_rss, under_load

# The API key the provider sink expects; it must never appear in a log.
KEY = "SG.fault-suite-key.a1b2c3d4e5f6"


def provider_service(ctx, sink, **settings):
    """One SQLite service whose transport is the provider sink."""
    env = ctx.env(f"sqlite://{ctx.work / 'mb.db'}", sink.port,
                  MAILBRIDGE_TRANSPORT=f"sendgrid+api://{KEY}@default?endpoint=http://127.0.0.1:{sink.port}",
                  **settings)
    return ctx.service("service", env)


def check_provider(ctx, report, records, svc, struck=True, max_rss_mib=None):
    """What every provider scenario checks beyond the common judgement: the
    fault struck, the provider's id of each sent message is the one its
    accepting answer gave, the API key is in no log line, memory is bounded."""
    if struck and report["attempts_recorded"] <= report["accepted"]:
        report["broken"].append("no message needed a second attempt: the fault never struck")
    wrong_ids = []
    for id, record in records.items():
        if record.get("status") != "sent":
            continue
        given = (record.get("provider_message_id") or "").removeprefix("sg-")
        try:
            same = uuid.UUID(given) == uuid.UUID(id)
        except ValueError:
            same = False
        if not same:
            wrong_ids.append(f"{id}: {record.get('provider_message_id')!r}")
    if wrong_ids:
        report["broken"].append(f"{len(wrong_ids)} sent message(s) without the provider's id of their "
                                f"delivery, e.g. {'; '.join(wrong_ids[:3])}")
    leaks = [f"{log.name}:{n}" for log in sorted(ctx.work.glob("service*.log"))
             for n, line in enumerate(log.read_text(errors="replace").splitlines(), 1) if KEY in line]
    if leaks:
        report["broken"].append(f"the API key is in {len(leaks)} log line(s), e.g. {leaks[0]}")
    return check_peak_rss(ctx, report, svc, max_rss_mib)


def provider_fault(faults, limit=2_000, max_rss_mib=None):
    """A scenario: one SQLite service delivering to the provider sink with `faults`."""

    def scenario(ctx):
        sink = ctx.sink(faults, key=KEY)
        svc = provider_service(ctx, sink)
        report, records = under_load(ctx, sink, svc, faults, limit)
        return check_provider(ctx, report, records, svc, max_rss_mib=max_rss_mib)

    scenario.__doc__ = f"A provider API with the faults {faults}."
    return scenario


def provider_reject(ctx):
    """The provider refuses 10 % of messages with a 400 (a permanent error):
    each such message ends `failed` after that one attempt, with the
    provider's own words as its reason; every other message is sent."""
    sink = ctx.sink({"reject": 0.1}, key=KEY)
    svc = provider_service(ctx, sink)
    traffic = ctx.load([svc.url], size=4_000, concurrency=4, limit=1_000)
    peers.wait_until(lambda: len(traffic.answers) >= 1_000, 60)
    answers = traffic.stop()
    records = ctx.drain(svc.url, answers, 60)
    report = ctx.judge(answers, records, sink)
    failed = [r for r in records.values() if r.get("status") == "failed"]
    ctx.note(f"{len(failed)} failed, e.g. {failed[0].get('last_error') if failed else '-'}")
    if not failed:
        report["broken"].append("no message failed: the provider's refusals never struck")
    unexplained = [r["id"] for r in failed if "Sender Identity" not in (r.get("last_error") or "")]
    if unexplained:
        report["broken"].append(f"{len(unexplained)} failed message(s) without the provider's reason, "
                                f"e.g. {unexplained[:3]}")
    retried = [r["id"] for r in failed if r.get("attempts") != 1]
    if retried:
        report["broken"].append(f"{len(retried)} permanently refused message(s) attempted more than once, "
                                f"e.g. {retried[:3]}")
    return check_provider(ctx, report, records, svc, struck=False)


def provider_down(ctx, down=12.0):
    """The provider's API goes away mid-load (its process killed: connections
    reset, then refused) and comes back on the same port after 12 s, four
    times as long as a message's five attempts take on this retry schedule.
    Messages wait without spending their attempts: every accepted message
    is delivered, none ends `failed`; a delivery in flight at the kill may go
    twice (its acceptance has no answer written: unconfirmed)."""
    sink = ctx.sink(key=KEY)
    svc = provider_service(ctx, sink, MAILBRIDGE_RETRY_MAX_ATTEMPTS="5")
    traffic = ctx.load([svc.url], size=4_000, concurrency=4, limit=6_000, pause=0.002)
    time.sleep(3)
    killed_at = time.time()
    sink.process.kill9()
    accepted_at_kill = traffic.count(202)
    time.sleep(down)
    sink.start()
    ctx.note(f"provider down for {time.time() - killed_at:.1f}s from {accepted_at_kill} accepted; "
             f"{traffic.count(202)} accepted by its return")
    time.sleep(3)
    answers = traffic.stop()
    records = ctx.drain(svc.url, answers, 90)
    report = ctx.judge(answers, records, sink)
    failed = [id for id, r in records.items() if r.get("status") == "failed"]
    attempts = sorted(r.get("attempts") or 0 for r in records.values())
    if attempts:
        ctx.note(f"attempts per message: median {attempts[len(attempts) // 2]}, most {attempts[-1]}")
    if failed:
        report["broken"].append(f"{len(failed)} message(s) failed while the provider was down, e.g. "
                                f"{records[failed[0]].get('last_error')}: an outage spent their attempts")
    return check_provider(ctx, report, records, svc)


SCENARIOS = {
    "provider-tempfail": provider_fault({"tempfail": 0.2, "ratelimit": 0.1}),
    "provider-lost-reply": provider_fault({"lose_reply": 0.1}),
    "provider-drop-body": provider_fault({"drop_body": 0.2}),
    "provider-stall": provider_fault({"stall": 0.1, "fault_attempts": 2}, limit=500),
    # Answers that are not HTTP, or never end (a header line; a body): each
    # such attempt fails and is retried, and memory stays bounded.
    "provider-garbage": provider_fault({"garbage": 0.1, "flood": 0.05, "flood_body": 0.05}, max_rss_mib=200),
    "provider-reject": provider_reject,
    "provider-down": provider_down,
}

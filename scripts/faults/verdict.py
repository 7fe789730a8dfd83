"""The figures of one scenario and the promises they are checked against.

accepted     POSTs answered 202
delivered    distinct Message-IDs the sink accepted (of accepted messages)
lost         accepted, but neither delivered nor `failed` with a reason (must be 0)
duplicates   deliveries beyond one per Message-ID; a message may go again
             at most once per attempt of it in flight at a fault: a delivery
             the sink could not know was seen (unconfirmed), its being
             `sending` at a kill, or its delivery while the scenario's fault
             was on (`bound` is their sum over all messages)
agree        every accepted message's final status matches the sink: `sent`
             exactly when delivered, and none is still pending at the end
"""

import uuid
from collections import Counter


def message_uuid(message_id):
    """Our id from a Message-ID `<hex>@domain` (None for another shape)."""
    try:
        return str(uuid.UUID(message_id.split("@", 1)[0]))
    except ValueError:
        return None


def sink_view(events):
    """Deliveries per message id, unconfirmed deliveries per id, attempts seen, tokens seen."""
    deliveries, unconfirmed, attempts, tokens = Counter(), Counter(), Counter(), set()
    last_on_conn = {}
    for fields in events:
        kind = fields[0]
        if kind in ("A", "T") and len(fields) >= 5:
            id = message_uuid(fields[3])
            if kind == "T":
                attempts[id] += 1
                continue
            deliveries[id] += 1
            tokens.add(fields[4])
            last_on_conn[fields[2]] = id
        elif kind == "C" and len(fields) >= 3:
            last_on_conn.pop(fields[2], None)
    for id in last_on_conn.values():
        unconfirmed[id] += 1
    return deliveries, unconfirmed, attempts, tokens


def refusal_problems(refused, tokens):
    """What is wrong with the refusals: kind -> example tokens. 503 means
    "not stored"; 504 means "the database did not confirm the commit, and it
    may have happened" (README, "Choices we made")."""
    problems = {}
    for a in refused:
        if a.status >= 500 and a.status not in (503, 504):
            problems.setdefault(f"answered {a.status} (of 5xx, only 503 and 504 are documented)",
                                []).append(a.token)
        elif a.status == 503 and not (a.problem and a.retry_after):
            problems.setdefault("answered 503 without problem+json and Retry-After", []).append(a.token)
        elif a.status == 504 and not a.problem:
            problems.setdefault("answered 504 without problem+json", []).append(a.token)
        elif a.status < 500 and a.status != 429:
            problems.setdefault(f"answered {a.status} to a valid request", []).append(a.token)
        # 504 says the commit's outcome is unknown: such a message may go.
        if a.token in tokens and a.status != 504:
            problems.setdefault(f"answered {a.status}, yet delivered later", []).append(a.token)
    return problems


def judge(name, answers, records, events, in_flight=(), notes=()):
    """The scenario's report: figures, and every broken promise in `broken`."""
    deliveries, unconfirmed, attempts, tokens = sink_view(events)
    accepted = {a.id: a for a in answers if a.status == 202 and a.id}
    refused = [a for a in answers if a.status is not None and a.status != 202]
    by_status = Counter(a.status if a.status is not None else "no answer" for a in answers)
    problems = refusal_problems(refused, tokens)

    lost, pending = [], Counter()
    for id in accepted:
        record = records.get(id, {"status": "not read"})
        status = record.get("status")
        at_sink = deliveries[id] > 0
        if status == 404:
            problems.setdefault("answered 202, then 404 (not on disk)", []).append(id)
        if not at_sink and not (status == "failed" and record.get("last_error")):
            lost.append(id)
            pending[str(status)] += 1
        if (status == "sent") != at_sink and status not in ("queued", "sending", "retrying"):
            problems.setdefault("final status disagrees with the sink", []).append(
                f"{id} is {status}, delivered {deliveries[id]} time(s)")
        if status in ("queued", "sending", "retrying"):
            problems.setdefault("accepted but not final within the bound", []).append(
                f"{id} is {status}, delivered {deliveries[id]} time(s)")

    # Each message may go again once per attempt of it that was in flight at a fault.
    allowance = Counter(unconfirmed)
    for id in in_flight:
        allowance[id] += 1
    duplicates = sum(n - 1 for n in deliveries.values() if n > 1)
    beyond = {id: n - 1 - allowance[id] for id, n in deliveries.items() if n - 1 > allowance[id]}
    broken = [f"{len(items)} message(s) {kind}, e.g. {'; '.join(map(str, items[:3]))}"
              for kind, items in problems.items()]
    if lost:
        broken.append(f"{len(lost)} accepted message(s) lost (final status: {dict(pending)})")
    if beyond:
        broken.append(f"{sum(beyond.values())} duplicate deliveries of {len(beyond)} message(s) "
                      "that were not in flight at a fault")
    return {
        "scenario": name,
        "requests": len(answers),
        "answers": {str(k): v for k, v in sorted(by_status.items(), key=lambda kv: str(kv[0]))},
        "accepted": len(accepted),
        "delivered": sum(1 for id in accepted if deliveries[id]),
        "delivered_unanswered": sum(1 for id in deliveries if id not in accepted),
        "failed_with_reason": sum(1 for id in accepted if records.get(id, {}).get("status") == "failed"),
        "attempts_at_sink": sum(attempts.values()),
        "attempts_recorded": sum(records.get(id, {}).get("attempts") or 0 for id in accepted),
        "lost": len(lost),
        "duplicates": duplicates,
        "bound": sum(allowance.values()),
        "beyond_bound": sum(beyond.values()),
        "agree": not {"final status disagrees with the sink", "accepted but not final within the bound"} & set(problems),
        "notes": list(notes),
        "broken": broken,
    }

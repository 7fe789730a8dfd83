"""Checks that the fault suite's judgement fails when a promise breaks, on
made-up answers and sink journals (run by scripts/faults.sh before the
scenarios: `python -m unittest test_verdict`)."""

import tempfile
import unittest
import uuid

from context import Context
from load import Answer, body_for
from verdict import judge

DOMAIN = "localhost"


def accepted(n):
    ids = [str(uuid.uuid4()) for _ in range(n)]
    answers = [Answer(token=f"t{i}", target="x", status=202, id=id) for i, id in enumerate(ids)]
    return ids, answers


def delivery(id, conn, token="t", confirmed=True):
    mid = f"{uuid.UUID(id).hex}@{DOMAIN}"
    events = [["T", "1.0", str(conn), mid, token], ["A", "1.0", str(conn), mid, token]]
    return events + ([["C", "1.1", str(conn)]] if confirmed else [])


def sent(ids):
    return {id: {"status": "sent", "attempts": 1} for id in ids}


class Judge(unittest.TestCase):
    def test_all_delivered_once_keeps_every_promise(self):
        ids, answers = accepted(3)
        events = [e for n, id in enumerate(ids) for e in delivery(id, n)]
        report = judge("s", answers, sent(ids), events)
        self.assertEqual(report["broken"], [])
        self.assertEqual((report["delivered"], report["lost"], report["duplicates"]), (3, 0, 0))

    def test_an_accepted_message_never_delivered_is_lost(self):
        ids, answers = accepted(2)
        records = sent(ids[:1]) | {ids[1]: {"status": "queued"}}
        report = judge("s", answers, records, delivery(ids[0], 1))
        self.assertEqual(report["lost"], 1)
        self.assertTrue(report["broken"])

    def test_failed_with_a_reason_is_not_lost(self):
        ids, answers = accepted(1)
        records = {ids[0]: {"status": "failed", "last_error": "550 no such user"}}
        self.assertEqual(judge("s", answers, records, [])["broken"], [])

    def test_a_duplicate_needs_an_attempt_in_flight_at_a_fault(self):
        ids, answers = accepted(1)
        twice = delivery(ids[0], 1) + delivery(ids[0], 2)
        self.assertTrue(judge("s", answers, sent(ids), twice)["broken"])
        self.assertEqual(judge("s", answers, sent(ids), twice, in_flight=ids)["broken"], [])
        unconfirmed = delivery(ids[0], 1, confirmed=False) + delivery(ids[0], 2)
        self.assertEqual(judge("s", answers, sent(ids), unconfirmed)["broken"], [])

    def test_a_refused_message_must_never_be_delivered(self):
        answers = [Answer(token="r1", target="x", status=503, problem=True, retry_after="1")]
        self.assertEqual(judge("s", answers, {}, [])["broken"], [])
        events = delivery(str(uuid.uuid4()), 1, token="r1")
        self.assertTrue(judge("s", answers, {}, events)["broken"])

    def test_a_504_may_be_delivered_later(self):
        answers = [Answer(token="u1", target="x", status=504, problem=True)]
        events = delivery(str(uuid.uuid4()), 1, token="u1")
        self.assertEqual(judge("s", answers, {}, events)["broken"], [])
        answers[0].problem = False
        self.assertTrue(judge("s", answers, {}, events)["broken"])

    def test_only_503_with_problem_and_retry_after(self):
        for answer in (Answer(token="a", target="x", status=500, problem=True, retry_after="1"),
                       Answer(token="b", target="x", status=503, problem=False, retry_after="1"),
                       Answer(token="c", target="x", status=503, problem=True, retry_after=None)):
            self.assertTrue(judge("s", [answer], {}, [])["broken"], answer)

    def test_a_202_that_reads_back_404_is_not_on_disk(self):
        ids, answers = accepted(1)
        report = judge("s", answers, {ids[0]: {"status": 404}}, delivery(ids[0], 1))
        self.assertTrue(any("404" in b for b in report["broken"]))

    def test_statuses_must_agree_with_the_sink(self):
        ids, answers = accepted(2)
        records = {ids[0]: {"status": "failed", "last_error": "550"}, ids[1]: {"status": "sent"}}
        report = judge("s", answers, records, delivery(ids[0], 1))
        self.assertFalse(report["agree"])
        self.assertTrue(report["broken"])



class Logs(unittest.TestCase):
    def test_a_log_line_with_a_body_or_link_is_found(self):
        with tempfile.TemporaryDirectory() as work, Context("s", "bin", work, None) as ctx:
            text = body_for("t1", 200).decode()
            (ctx.work / "service.log").write_text("INFO accepted\n")
            self.assertEqual(ctx.leaking_log_lines(), [])
            (ctx.work / "replica1.log").write_text("ok\nDEBUG body=" + text[120:180] + "\n")
            (ctx.work / "sink.log").write_text(text)  # the sink sees bodies by design
            self.assertEqual(ctx.leaking_log_lines(), ["replica1.log:2"])
            link = "href=" + text.split("\\n")[0].split('"text": "')[1][:90]
            (ctx.work / "service.log").write_text(link + "\n")
            self.assertEqual(ctx.leaking_log_lines(), ["replica1.log:2", "service.log:1"])


if __name__ == "__main__":
    unittest.main()

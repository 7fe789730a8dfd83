"""Load for the fault scenarios: threads that POST /v1/messages over
keep-alive connections and write down every answer, and the read-back of
every accepted message's final status.

Each message's subject is a token unique to the run (``fault-<run>-<n>``),
so a message can be found at the sink whatever happened to its request.
"""

import http.client
import itertools
import json
import threading
import time
from dataclasses import dataclass


@dataclass
class Answer:
    """What one POST got back (status None: no answer at all)."""

    token: str
    target: str
    status: int | None = None
    id: str | None = None
    problem: bool = False
    retry_after: str | None = None
    error: str | None = None
    started: float = 0.0
    ended: float = 0.0


BODY_MARK = "quick brown fox"
LINK_MARK = "reset?key=RESETKEY"


def body_for(token, size, own_address=False):
    """A message whose text holds a reset link and a known phrase, so that
    logs can be searched for both; to Ada, or to an address of its own."""
    line = ("The quick brown fox jumps over the lazy dog " * 2)[:76] + "\n"
    link = f"https://sso.example/realms/acme/login-actions/{LINK_MARK}-{token}\n"
    text = link + (line * (size // len(line) + 1))[:size]
    email = f"{token}@example.com" if own_address else "ada@example.com"
    return json.dumps({"to": [{"email": email, "name": "Ada"}],
                       "subject": token, "text": text}).encode()


class Connection:
    """A keep-alive HTTP/1.1 connection that reconnects after an error."""

    def __init__(self, url, timeout=30):
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port, self.timeout = host, int(port), timeout
        self.conn = None

    def request(self, method, path, body=None):
        """(status, headers, body); raises OSError/HTTPException when nothing came back."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            headers = {"content-type": "application/json"} if body is not None else {}
            self.conn.request(method, path, body=body, headers=headers)
            r = self.conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise


class Load:
    """`concurrency` threads posting messages of `size` bytes to the targets
    (in turn) until stopped or until `limit` requests were made."""

    def __init__(self, run_id, targets, size=2000, concurrency=8, limit=5000, pause=0.0,
                 own_address=False):
        self.run_id, self.targets, self.size = run_id, targets, size
        self.own_address = own_address
        self.concurrency, self.limit, self.pause = concurrency, limit, pause
        self.answers = []
        self.lock = threading.Lock()
        self.counter = itertools.count(1)
        self.stopping = threading.Event()
        self.threads = []

    def start(self):
        for i in range(self.concurrency):
            t = threading.Thread(target=self.post_loop, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self):
        """Stops posting; the answers so far (a request still waiting after
        35 s is left to its daemon thread and not counted)."""
        self.stopping.set()
        deadline = time.monotonic() + 35
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        with self.lock:
            return list(self.answers)

    def post_loop(self, i):
        conns = {}
        while not self.stopping.is_set():
            n = next(self.counter)
            if n > self.limit:
                return
            target = self.targets[(n + i) % len(self.targets)]
            conn = conns.setdefault(target, Connection(target))
            answer = self.post(conn, target, f"fault-{self.run_id}-{n}")
            with self.lock:
                self.answers.append(answer)
            if answer.status is None or answer.status >= 500:
                time.sleep(0.05)  # a down service: do not spin
            elif self.pause:
                time.sleep(self.pause)

    def post(self, conn, target, token):
        answer = Answer(token=token, target=target, started=time.time())
        try:
            status, headers, body = conn.request("POST", "/v1/messages", body_for(token, self.size, self.own_address))
            answer.status = status
            answer.problem = headers.get("content-type", "").startswith("application/problem+json")
            answer.retry_after = headers.get("retry-after")
            if status == 202:
                answer.id = json.loads(body)["id"]
        except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
            answer.error = type(e).__name__
        answer.ended = time.time()
        return answer

    def count(self, status):
        with self.lock:
            return sum(1 for a in self.answers if a.status == status)


def final_statuses(url, ids, seconds, pending=("queued", "sending", "retrying")):
    """GET /v1/messages/{id} for every id, again for those still pending,
    until none is or `seconds` have passed. id -> record (or {"status": 404})."""
    conn = Connection(url, timeout=10)
    records, todo = {}, list(ids)
    deadline = time.monotonic() + seconds
    while todo:
        for id in todo:
            try:
                status, _, body = conn.request("GET", f"/v1/messages/{id}")
                records[id] = json.loads(body) if status == 200 else {"status": status}
            except (OSError, http.client.HTTPException, ValueError):
                records[id] = {"status": "no answer"}
        todo = [id for id in todo if records[id].get("status") in pending or records[id]["status"] == "no answer"]
        if not todo or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return records

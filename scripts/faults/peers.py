"""The real processes a fault scenario runs, all on 127.0.0.1: the service
(release binary), the fault sink, PostgreSQL, Toxiproxy, and a small tmpfs.

Every process is started with its output in the scenario's directory and is
stopped (or killed) when the scenario ends, whatever happened.
"""

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=2.0):
    """(status, body) of a GET, or (None, error text) when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, ValueError) as e:
        return None, str(e)


def wait_until(predicate, seconds, step=0.1):
    """True as soon as predicate() is true, False after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


class Process:
    """A child process with its output in a log file."""

    def __init__(self, argv, log, env=None, user=None):
        self.argv, self.log, self.env, self.user = argv, log, env, user
        self.proc = None

    def start(self):
        argv = (["runuser", "-u", self.user, "--"] if self.user else []) + self.argv
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                         stdin=subprocess.DEVNULL)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, grace=15):
        """SIGTERM, then SIGKILL after `grace` seconds; the exit code."""
        if not self.alive():
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill9()
            return "killed after SIGTERM timed out"


class Service:
    """One `mailbridge serve` process (the release binary)."""

    def __init__(self, binary, work, name, env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = {k: v for k, v in os.environ.items() if not k.startswith("MAILBRIDGE_")}
        full.update({
            "MAILBRIDGE_LISTEN": f"127.0.0.1:{self.port}",
            "MAILBRIDGE_TEMPLATES": str(ROOT / "templates"),
            "MAILBRIDGE_LOG": "info",
            "MAILBRIDGE_SHUTDOWN_DELAY": "0s",
            "MAILBRIDGE_MAX_PENDING": "100000000",
        })
        full.update(env)
        self.process = Process([str(binary), "serve", "--insecure-no-auth"],
                               Path(work) / f"{name}.log", env=full)

    def start(self, wait=30):
        """Starts and waits until /healthz answers (the store may still be down)."""
        self.process.start()
        if not wait_until(lambda: http_get(self.url + "/healthz")[0] == 200 or not self.process.alive(), wait):
            raise RuntimeError(f"service did not answer /healthz within {wait}s: see {self.process.log}")
        if not self.process.alive():
            raise RuntimeError(f"service exited at start: see {self.process.log}")
        return self

    def ready(self, timeout=2.0):
        return http_get(self.url + "/readyz", timeout)[0]

    def readiness(self, seconds, want):
        """Polls /readyz (5 s bound per call) until it answers `want` or
        `seconds` pass; (answered want, what it answered and how fast)."""
        seen = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            began = time.monotonic()
            code = self.ready(5.0)
            took = time.monotonic() - began
            seen.append(f"{code or 'no answer'} in {took:.1f}s")
            if code == want:
                return True, seen
            time.sleep(0.2)
        return False, seen


class Sink:
    """The fault SMTP server (sink.py), or the fault provider API
    (provider_sink.py, with `key` its API key), in a process of its own."""

    def __init__(self, work, key=None):
        self.port = free_port()
        self.journal = Path(work) / "sink.journal"
        self.faults_file = Path(work) / "sink.faults.json"
        self.set_faults({})
        script, extra = ("sink.py", []) if key is None else ("provider_sink.py", ["--key", key])
        self.process = Process([sys.executable, str(HERE / script), "--port", str(self.port),
                                "--journal", str(self.journal), "--faults", str(self.faults_file), *extra],
                               Path(work) / "sink.log")

    def start(self):
        self.process.start()
        if not wait_until(self.listening, 10):
            raise RuntimeError("the fault sink did not start")
        return self

    def listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.5).close()
            return True
        except OSError:
            return False

    def set_faults(self, faults):
        tmp = self.faults_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(faults))
        os.replace(tmp, self.faults_file)

    def events(self):
        """The journal's lines, split into fields."""
        if not self.journal.exists():
            return []
        return [line.split(" ") for line in self.journal.read_text().splitlines() if line]


def postgres_bin():
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return versions[-1].parent if versions else None


class Postgres:
    """A throwaway PostgreSQL server with fsync on, as in production."""

    def __init__(self, work, directory=None, small_wal=False):
        self.bin = postgres_bin()
        self.dir = Path(directory) if directory else Path(work) / "pg"
        # 1 MiB WAL segments and a small max_wal_size: a data directory that
        # fits a small disk.
        self.small_wal = small_wal
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        self.url = f"postgres://mailbridge@127.0.0.1:{self.port}/faults"

    def run(self, *argv, owner=True):
        prefix = ["runuser", "-u", self.user, "--"] if (owner and self.user) else []
        return subprocess.run(prefix + [str(self.bin / argv[0]), *argv[1:]], capture_output=True,
                              text=True, timeout=120, check=True)

    def create(self):
        self.dir.mkdir(exist_ok=True)
        if self.user:
            shutil.chown(self.dir.parent, self.user)
            shutil.chown(self.dir, self.user)
        wal = ["--wal-segsize=1"] if self.small_wal else []
        self.run("initdb", "--auth=trust", "--username=mailbridge", *wal, "-D", str(self.dir / "data"))
        self.start()
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "mailbridge", "faults", owner=False)
        return self

    def start(self):
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.dir} -c max_connections=200")
        if self.small_wal:
            options += " -c min_wal_size=2MB -c max_wal_size=4MB"
        self.run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.dir / "data"), "-o", options,
                 "-l", str(self.dir / "server.log"))

    def running(self):
        try:
            self.run("pg_ctl", "status", "-D", str(self.dir / "data"))
            return True
        except subprocess.CalledProcessError:
            return False

    def stop(self, mode="immediate"):
        try:
            self.run("pg_ctl", "stop", "-m", mode, "-w", "-t", "30", "-D", str(self.dir / "data"))
        except subprocess.CalledProcessError:
            pass  # not running

    def remove(self):
        """Stops the server and removes its data (its log stays)."""
        self.stop()
        shutil.rmtree(self.dir / "data", ignore_errors=True)

    def query(self, sql):
        out = subprocess.run([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                              "mailbridge", "-d", "faults", "-Atc", sql], capture_output=True, text=True,
                             timeout=30)
        return out.stdout.split() if out.returncode == 0 else None


class Toxiproxy:
    """Shopify's Toxiproxy server, driven through its HTTP API."""

    def __init__(self, work, binary):
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}"
        self.process = Process([str(binary), "-host", "127.0.0.1", "-port", str(self.port)],
                               Path(work) / "toxiproxy.log")

    def start(self):
        self.process.start()
        if not wait_until(lambda: http_get(self.api + "/version")[0] == 200, 10):
            raise RuntimeError("toxiproxy did not start")
        return self

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.api + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    def proxy(self, name, upstream_port):
        """A new proxy to 127.0.0.1:upstream_port; its listening port."""
        port = free_port()
        self.call("POST", "/proxies", {"name": name, "listen": f"127.0.0.1:{port}",
                                       "upstream": f"127.0.0.1:{upstream_port}", "enabled": True})
        return port

    def add(self, proxy, toxic, kind, stream="downstream", **attributes):
        self.call("POST", f"/proxies/{proxy}/toxics", {"name": toxic, "type": kind, "stream": stream,
                                                       "toxicity": 1.0, "attributes": attributes})

    def remove(self, proxy, toxic):
        self.call("DELETE", f"/proxies/{proxy}/toxics/{toxic}")


class Tmpfs:
    """A small tmpfs (needs root): mounted, grown (or shrunk to what it
    holds), unmounted."""

    def __init__(self, path, size):
        self.path, self.size = Path(path), size
        self.mounted = False

    def mount(self):
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs", str(self.path)],
                       check=True, timeout=30, capture_output=True)
        self.mounted = True
        return self

    def grow(self, size):
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True, timeout=30)

    def used_mib(self):
        st = os.statvfs(self.path)
        return (st.f_blocks - st.f_bfree) * st.f_frsize / (1 << 20)

    def unmount(self):
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False, timeout=30)
            self.mounted = False


class WebhookReceiver:
    """An application's webhook endpoint on 127.0.0.1: answers 204 to every
    POST and keeps the `message_id` and `type` of each body it got."""

    def __init__(self):
        received = self.received = []
        lock = self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    event = json.loads(body)
                    with lock:
                        received.append((event["type"], event["data"]["message_id"]))
                except (ValueError, KeyError, TypeError):
                    pass
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def ids(self, kind):
        """The message ids that webhooks of `kind` named."""
        with self.lock:
            return {message_id for t, message_id in self.received if t == kind}

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

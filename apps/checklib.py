"""What every application check shares: the CONDWRITE_* environment, the
deadline, progress lines and the one JSON line a check ends with.

condwrite runs each check as `.servers/apps/<id>/bin/python apps/<id>/check.py`
from the repository root. A check prints short progress lines on stderr and,
as the last line of stdout, one JSON object:

    {"client": "deltalake 1.6.6", "outcome": "safe", "summary": "...", "facts": {...}}

outcome is `safe` (the application's invariants hold), `unsafe` (it lost or
overwrote data, or two holders took one lock), `does-not-work` (its requests
fail but nothing is lost) or `unknown` (no judgement: a setup failure, the
deadline, a timing that did not overlap). The check exits 0 whenever it
printed that line; a crash exits non-zero. Standard library only: each
check's venv holds its own application and nothing else.
"""

import json
import os
import socket
import subprocess
import sys
import time
import traceback
import urllib.parse

OUTCOMES = ("safe", "unsafe", "does-not-work", "unknown")


class SetupError(Exception):
    """The check could not start: a missing variable, a missing tool."""


class DeadlineReached(Exception):
    """The check ran out of its time before it could judge."""


class Env:
    """The CONDWRITE_* variables condwrite hands every check."""

    def __init__(self, environ=None):
        e = os.environ if environ is None else environ

        def need(name):
            value = e.get(name, "")
            if not value:
                raise SetupError(f"{name} is not set")
            return value

        self.endpoint = need("CONDWRITE_ENDPOINT").rstrip("/")
        self.region = e.get("CONDWRITE_REGION") or "us-east-1"
        self.access_key = need("CONDWRITE_ACCESS_KEY")
        self.secret_key = need("CONDWRITE_SECRET_KEY")
        self.bucket = need("CONDWRITE_BUCKET")
        self.prefix = e.get("CONDWRITE_PREFIX", "")
        if self.prefix and not self.prefix.endswith("/"):
            self.prefix += "/"
        self.workdir = need("CONDWRITE_WORKDIR")
        if not os.path.isdir(self.workdir):
            raise SetupError(f"CONDWRITE_WORKDIR {self.workdir} is not a folder")
        raw = e.get("CONDWRITE_DEADLINE_S") or "120"
        try:
            self.deadline_s = float(raw)
        except ValueError:
            raise SetupError(f"CONDWRITE_DEADLINE_S is not a number: {raw!r}")
        self.started = time.monotonic()

    def preflight(self):
        """Raises SetupError unless the endpoint accepts a TCP connection."""
        url = urllib.parse.urlsplit(self.endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise SetupError(f"CONDWRITE_ENDPOINT is not an http(s) URL: {self.endpoint}")
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            socket.create_connection((url.hostname, port), timeout=5).close()
        except OSError as e:
            raise SetupError(f"cannot connect to {url.hostname}:{port}: {e}")

    def remaining(self, margin=3.0):
        """Seconds left before the deadline, less a margin for the report."""
        return self.deadline_s - margin - (time.monotonic() - self.started)

    def check_time(self, what):
        """Raises DeadlineReached when no time is left to go on with `what`."""
        if self.remaining() <= 0:
            raise DeadlineReached(f"the deadline ({self.deadline_s:.0f} s) came before {what}")

    def elapsed(self):
        return time.monotonic() - self.started


class Check:
    """One run of one check: progress on stderr, the verdict on stdout."""

    def __init__(self, app_id, package=None):
        self.app_id = app_id
        self.client = app_id
        if package:
            # Named before anything is imported, so a setup failure names it too.
            try:
                import importlib.metadata

                self.client = f"{package} {importlib.metadata.version(package)}"
            except Exception:  # noqa: BLE001 - not installed: the import will say so
                self.client = f"{package} (not installed)"
        self.facts = {}
        self._secrets = []
        self.env = None

    def progress(self, message):
        print(f"{self.app_id}: {self.redact(str(message))}", file=sys.stderr, flush=True)

    def redact(self, text):
        for s in self._secrets:
            if s:
                text = text.replace(s, "***")
        return text

    def finish(self, outcome, summary, hard_exit=False):
        """Prints the verdict line and exits 0. hard_exit skips interpreter
        shutdown, for a check whose library may still hold hung threads."""
        assert outcome in OUTCOMES, outcome
        if self.env is not None:
            self.facts.setdefault("seconds", round(self.env.elapsed(), 1))
        line = json.dumps(
            {
                "client": self.client,
                "outcome": outcome,
                "summary": short(self.redact(summary), 600),
                "facts": self.facts,
            },
            default=str,
        )
        sys.stdout.flush()
        print(self.redact(line), flush=True)
        if hard_exit:
            sys.stderr.flush()
            os._exit(0)
        sys.exit(0)

    def run(self, body):
        """Reads the environment, runs body(check, env) and turns a setup
        failure or the deadline into `unknown`. body calls finish()."""
        try:
            self.env = Env()
            self._secrets = [self.env.secret_key]
            self.env.preflight()
        except SetupError as e:
            self.finish("unknown", f"setup failed: {e}")
        try:
            body(self, self.env)
        except SetupError as e:
            self.finish("unknown", f"setup failed: {e}")
        except DeadlineReached as e:
            self.finish("unknown", f"no judgement: {e}")
        except ImportError as e:
            self.finish(
                "unknown",
                f"setup failed: {e} (is this the venv scripts/install-apps {self.app_id} makes?)",
            )
        except SystemExit:
            raise
        except BaseException:
            # A crash: the traceback goes to stderr and the exit is non-zero.
            print(self.redact(traceback.format_exc()), file=sys.stderr, flush=True)
            sys.exit(2)
        self.finish("unknown", "the check ended without a judgement")


def short(error, limit=200):
    """One line of an exception or text, cut to `limit` characters."""
    if isinstance(error, BaseException):
        text = f"{type(error).__name__}: {error}"
    else:
        text = str(error)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clean_aws_environment():
    """Removes AWS_* from the environment: the clients (object_store, the
    AWS SDKs, botocore) read it, and only the settings a check passes them
    may configure them."""
    for k in list(os.environ):
        if k.startswith("AWS_"):
            del os.environ[k]


def run_writers(env, script, count, start_delay):
    """Runs `count` writer processes of `script` at once: each is started as
    `script --writer W START_AT ACKS`, waits until START_AT (`start_delay`
    from now, so that all begin together) and writes one JSON line per
    operation to ACKS. Waits for them within the deadline, killing those
    past it. Returns `(writers, killed)`: per writer `(w, returncode,
    records, log_tail)`, the log tail (its last 300 characters) being what
    a crashed writer printed."""
    start_at = time.time() + start_delay
    procs = []
    for w in range(count):
        acks = os.path.join(env.workdir, f"writer-{w}.jsonl")
        open(acks, "w").close()
        log_path = os.path.join(env.workdir, f"writer-{w}.log")
        log = open(log_path, "w")
        p = subprocess.Popen(
            [sys.executable, os.path.abspath(script), "--writer", str(w), str(start_at), acks],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
        procs.append((w, p, acks, log, log_path))
    killed = 0
    for _, p, _, log, _ in procs:
        try:
            p.wait(timeout=max(1.0, env.remaining(margin=8)))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            killed += 1
        log.close()
    writers = []
    for w, p, acks, _, log_path in procs:
        with open(acks) as f:
            records = [json.loads(line) for line in f]
        with open(log_path) as f:
            tail = f.read()[-300:]
        writers.append((w, p.returncode, records, tail))
    return writers, killed

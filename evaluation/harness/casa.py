"""One `casa run` daemon per evaluation case (stdlib only).

Each case gets a fresh daemon with its own four logs, a latency trace and a recording of every
pipeline input (`casa run --record`), so the case's outputs need no slicing and its recording
replays to exactly the same logs. The harness waits for casa to say the session closed (a
`session_closed` record in sessions.log) instead of sleeping.

    d = Casa(binary, rules, out_dir, record=path)
    d.start()                     # returns once casa says its pipeline is running
    d.wait_closed("[case:M01]")  # True once that session's session_closed record is written
    d.stop()                      # SIGTERM; casa drains, writes shutdown snapshots, exits 0
"""

import json
import os
import signal
import subprocess
import time


class CasaError(Exception):
    pass


class Casa:
    def __init__(self, binary, rules, out_dir, record=None, extra=()):
        self.binary = binary
        self.rules = rules
        self.out_dir = out_dir
        self.record = record
        self.extra = list(extra)
        self.proc = None
        self.stderr_path = os.path.join(out_dir, "casa.stderr")

    def log(self, name):
        return os.path.join(self.out_dir, name)

    def argv(self):
        a = [self.binary, "run", "--rules", self.rules,
             "--events-log", self.log("events.log"), "--sessions-log", self.log("sessions.log"),
             "--audit-log", self.log("audit.log"), "--alert-log", self.log("alert.log"),
             "--pid-file", self.log("casa.pid"), "--latency-log", self.log("latency.jsonl"),
             "--stats-interval", "3600"]
        if self.record:
            a += ["--record", self.record]
        return a + self.extra

    def start(self, timeout=60):
        os.makedirs(self.out_dir, exist_ok=True)
        if self.record:
            os.makedirs(os.path.dirname(os.path.abspath(self.record)), exist_ok=True)
        for name in ("events.log", "sessions.log", "audit.log", "alert.log", "latency.jsonl",
                     "audit.log.head", "alert.log.head"):
            try:
                os.remove(self.log(name))
            except FileNotFoundError:
                pass
        env = dict(os.environ, RUST_LOG="info")
        for k in ("CASA_OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                  "OTEL_EXPORTER_OTLP_ENDPOINT"):
            env.pop(k, None)
        err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=err, env=env,
                                     cwd=self.out_dir, start_new_session=True)
        err.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CasaError(f"casa run exited with {self.proc.returncode}:\n{self.stderr_tail()}")
            if "CASA pipeline is running" in self.stderr():
                return
            time.sleep(0.05)
        self.stop()
        raise CasaError(f"casa run did not start within {timeout} s:\n{self.stderr_tail()}")

    def stderr(self):
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stderr_tail(self, n=15):
        return "\n".join(self.stderr().splitlines()[-n:])

    def closed_sessions(self):
        out = []
        try:
            with open(self.log("sessions.log"), encoding="utf-8") as f:
                for line in f:
                    if '"session_closed"' in line:
                        out.append(json.loads(line))
        except FileNotFoundError:
            pass
        return out

    def wait_closed(self, marker, timeout=60):
        """Wait until casa has closed the session whose invocation contains `marker`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for rec in self.closed_sessions():
                if any(marker in a for a in rec["session"].get("invocation", [])):
                    return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.1)
        return False

    def stop(self, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise CasaError(f"casa did not stop within {timeout} s after SIGTERM")

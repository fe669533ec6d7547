"""The corpus's external hosts: a network namespace on this machine (root, iproute2).

    with ExternalHosts(out_log, www) as ext:   # creates the namespace, starts attacker.py
        ...                                    # agents reach 198.51.100.2 / 203.0.113.10
    # on exit (also on an exception or Ctrl-C): attacker stopped, namespace and veth deleted

Layout (TEST-NET addresses only, nothing routed off the machine):

    host                                   namespace casa-eval-ext
    casa-ev-h 198.51.100.1/24  <-- veth -->  casa-ev-n 198.51.100.2/24 (attacker)
    route 203.0.113.0/24 via 198.51.100.2              203.0.113.10/24 (data host)

The namespace has no other interface and no route beyond its two on-link networks, so nothing
it answers can leave the machine; the host only gains the on-link /24 and one /24 route, both
removed with the veth. `teardown()` is idempotent and is also run before set-up, so a run
killed with SIGKILL is cleaned up by the next one. A lock (`flock` on LOCK_FILE, released by
the kernel when its holder dies) keeps a second run from tearing down a namespace in use.
"""

import fcntl
import os
import signal
import socket
import subprocess
import sys
import time

NS = "casa-eval-ext"
VETH_HOST = "casa-ev-h"
VETH_NS = "casa-ev-n"
HOST_ADDR = "198.51.100.1"
ATTACKER = "198.51.100.2"
DATA_HOST = "203.0.113.10"
EVAL_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCK_FILE = "/run/casa-eval-netns.lock"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


class NetnsError(Exception):
    pass


def _ip(*args, check=True):
    p = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {p.stderr.strip()}")
    return p


def exists():
    return NS in _ip("netns", "list", check=False).stdout.split()


def teardown():
    """Delete the namespace and the host end of the veth (whatever is left of them)."""
    if exists():
        # Processes still inside keep the namespace alive: only ours run there.
        pids = _ip("netns", "pids", NS, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        _ip("netns", "del", NS, check=False)
    if _ip("link", "show", VETH_HOST, check=False).returncode == 0:
        _ip("link", "del", VETH_HOST, check=False)


def setup():
    if os.geteuid() != 0:
        raise NetnsError("creating the network namespace needs root")
    teardown()
    _ip("netns", "add", NS)
    _ip("link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS)
    _ip("link", "set", VETH_NS, "netns", NS)
    _ip("addr", "add", f"{HOST_ADDR}/24", "dev", VETH_HOST)
    _ip("link", "set", VETH_HOST, "up")
    _ip("-n", NS, "addr", "add", f"{ATTACKER}/24", "dev", VETH_NS)
    _ip("-n", NS, "addr", "add", f"{DATA_HOST}/24", "dev", VETH_NS)
    _ip("-n", NS, "link", "set", VETH_NS, "up")
    _ip("-n", NS, "link", "set", "lo", "up")
    _ip("route", "add", "203.0.113.0/24", "via", ATTACKER, "dev", VETH_HOST)


def _reachable(addr, port):
    try:
        with socket.create_connection((addr, port), timeout=0.5):
            return True
    except OSError:
        return False


class ExternalHosts:
    """The namespace plus attacker.py inside it, for the length of a `with` block."""

    def __init__(self, out_log, www, console_log=None):
        self.out_log, self.www, self.console_log = out_log, www, console_log
        self.proc = None
        self._old_term = None
        self._lock = None

    def offset(self):
        """Current size of the attacker's log: a case's checks read from here on."""
        try:
            return os.path.getsize(self.out_log)
        except OSError:
            return 0

    def __enter__(self):
        self._lock = open(LOCK_FILE, "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            self._lock = None
            raise NetnsError(f"another evaluation run holds {LOCK_FILE} (namespace {NS} in use)")
        try:
            setup()
        except BaseException:
            self._unlock()
            raise
        # SIGTERM unwinds like Ctrl-C, so the `finally` blocks (and __exit__) still run.
        self._old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.out_log)), exist_ok=True)
            open(self.out_log, "a").close()
            out = open(self.console_log, "ab") if self.console_log else subprocess.DEVNULL
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", NS, PYTHON, os.path.join(EVAL_DIR, "attacker.py"),
                 "--www", self.www, "--out", self.out_log],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
            if self.console_log:
                out.close()
            deadline = time.monotonic() + 15
            while not (_reachable(ATTACKER, 80) and _reachable(DATA_HOST, 80)):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise NetnsError("attacker.py did not come up in the namespace")
                time.sleep(0.1)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        teardown()
        if self._old_term is not None:
            signal.signal(signal.SIGTERM, self._old_term)
            self._old_term = None
        self._unlock()
        return False

    def _unlock(self):
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")

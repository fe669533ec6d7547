"""Start/stop the evaluation's local services (scripted model server, POST sink) as children.

    start_model_server(log_path, cases=CASES_FILE, port=18080) -> subprocess.Popen
    start_sink(out_path, port=18000, mirror_port=None) -> subprocess.Popen
    stop(proc)   # stops only that child (its own process group)
"""

import os
import subprocess
import sys
import time

from .openclaw import CASES_FILE, EVAL_DIR, _kill_tree, _port_open

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def _start(argv, port, log_path, timeout=10):
    if _port_open(port):
        raise RuntimeError(f"127.0.0.1:{port} is already in use")
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    if log_path:
        out.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[1]} exited with code {proc.returncode}")
        if _port_open(port):
            return proc
        time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"{argv[1]} did not listen on 127.0.0.1:{port}")


def start_model_server(log_path, cases=CASES_FILE, port=18080, console_log=None):
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    argv = [PYTHON, os.path.join(EVAL_DIR, "model_server.py"), "--cases", cases,
            "--port", str(port), "--log", log_path]
    return _start(argv, port, console_log)


def start_sink(out_path, port=18000, mirror_port=None, console_log=None):
    argv = [PYTHON, os.path.join(EVAL_DIR, "sink.py"), "--port", str(port), "--out", out_path]
    if mirror_port:
        argv += ["--mirror-port", str(mirror_port)]
    return _start(argv, port, console_log)


def stop(proc):
    if proc is not None and proc.poll() is None:
        _kill_tree(proc, grace=5)

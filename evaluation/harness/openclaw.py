"""Driver for real OpenClaw runs in the casa evaluation (stdlib only).

OpenClaw runs as the unprivileged user 65534 (nobody) with its own HOME under
``/var/lib/casa-eval/home`` (state dir ``$HOME/.openclaw``), so that no agent process is root
(casa's ``dangerous_caps_without_seccomp`` would otherwise fire for every case). The launcher is
always executed as ``<prefix>/node/bin/openclaw`` with ``<prefix>/node/bin`` first on PATH, so the
process casa sees is ``node <prefix>/node/bin/openclaw agent --agent main ... -m ...``.

Functions for other scripts:

    write_config(state_dir=STATE_DIR, model=None) -> path
    prepare(fake_fs_src=FAKE_FS_SRC) -> None            # as root
    clean_workdir() -> None
    start_gateway(timeout=60, log_path=None) -> pid
    stop_gateway(timeout=20) -> bool
    run_case(case, mode="local", run_id=None, timeout=300, model_log=None, sink_log=None,
             out_dir=None) -> dict
    load_cases(path=CASES_FILE) -> list[dict]

``run_case`` never signals anything but the process group it started; ``stop_gateway`` only
stops the gateway this module started (recorded with its start time in a pid file).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid

EVAL_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES_FILE = os.path.join(EVAL_DIR, "cases.json")
FAKE_FS_SRC = os.path.join(EVAL_DIR, "fake_fs")

PREFIX = os.environ.get("CASA_EVAL_PREFIX", "/opt/casa-eval")
EVAL_ROOT = "/var/lib/casa-eval"
HOME = os.path.join(EVAL_ROOT, "home")
STATE_DIR = os.path.join(HOME, ".openclaw")
FAKE_FS = os.path.join(EVAL_ROOT, "fake_fs")
WORK_DIR = "/tmp/openclaw-eval"
GATEWAY_PIDFILE = os.path.join(EVAL_ROOT, "gateway.pid")
AGENT_UID = AGENT_GID = 65534

MODEL_PORT = 18080
GATEWAY_PORT = 18789
GATEWAY_TOKEN = "oc-eval-local-token"

EXIT_RE = re.compile(r"\(Command exited with code (\d+)\)")
RUNNING_RE = re.compile(r"Command still running")
APPROVAL_RE = re.compile(r"\b(approval|approve|approved|denied|not allowed by)\b", re.I)

# Check types other modules add (name -> function(check) -> list of failure reasons); the
# detection corpus registers its own (harness/corpus.py).
EXTRA_CHECKS = {}


# ---------------------------------------------------------------- paths and users

def node_bin(prefix=None):
    return os.path.join(prefix or PREFIX, "node", "bin")


# The launcher's name in ``node_bin()``: ``openclaw`` (the install's own symlink); the
# enforcement run (harness/enforce.py) runs OpenClaw through a second symlink with a name
# nothing else on the host has, so that its agent profile matches only this install.
LAUNCHER = "openclaw"


def openclaw_bin(prefix=None):
    return os.path.join(node_bin(prefix), LAUNCHER)


def _is_root():
    return os.geteuid() == 0


def _chown(path):
    if _is_root():
        os.chown(path, AGENT_UID, AGENT_GID)


def agent_env(prefix=None):
    """The complete environment of OpenClaw processes (nothing inherited from the caller)."""
    return {
        "HOME": HOME,
        "PATH": f"{node_bin(prefix)}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "USER": "nobody",
        "LOGNAME": "nobody",
        "SHELL": "/bin/bash",
        "TMPDIR": "/tmp",
    }


def agent_argv(argv, prefix=None):
    """Wrap ``argv`` so it runs as nobody with exactly ``agent_env()`` (``setpriv ... env -i``).

    Without root the command runs as the current user with the same clean environment.
    """
    env = [f"{k}={v}" for k, v in agent_env(prefix).items()]
    if _is_root():
        return (["setpriv", f"--reuid={AGENT_UID}", f"--regid={AGENT_GID}", "--clear-groups",
                 "--", "env", "-i"] + env + list(argv))
    return ["env", "-i"] + env + list(argv)


# ---------------------------------------------------------------- configuration

def model_settings():
    """The model endpoint: the scripted server, or a real one from CASA_EVAL_MODEL_* env vars."""
    url = os.environ.get("CASA_EVAL_MODEL_URL")
    if url:
        return {
            "provider": "evalmodel",
            "base_url": url.rstrip("/"),
            "api_key": os.environ.get("CASA_EVAL_MODEL_KEY", "sk-none"),
            "model_id": os.environ.get("CASA_EVAL_MODEL_ID", "default"),
            "api": os.environ.get("CASA_EVAL_MODEL_API", "openai-completions"),
            "scripted": False,
        }
    return {
        "provider": "fake",
        "base_url": f"http://127.0.0.1:{MODEL_PORT}/v1",
        "api_key": "sk-local-dummy",
        "model_id": "scripted",
        "api": os.environ.get("CASA_EVAL_MODEL_API", "openai-completions"),
        "scripted": True,
    }


def write_config(state_dir=STATE_DIR, model=None):
    """Write ``<state_dir>/openclaw.json`` for ``model`` (default: ``model_settings()``).

    ``model`` may be a dict like ``model_settings()`` returns or a ``"provider/model"`` string
    naming the scripted model. Returns the config path.
    """
    if model is None or isinstance(model, str):
        m = model_settings()
        if isinstance(model, str) and "/" in model and m["scripted"]:
            m["provider"], m["model_id"] = model.split("/", 1)
    else:
        m = dict(model_settings(), **model)
    if m["api"] not in ("openai-completions", "openai-responses"):
        raise ValueError(f"CASA_EVAL_MODEL_API must be openai-completions or openai-responses, not {m['api']!r}")
    config = {
        "agents": {"defaults": {
            "model": {"primary": f"{m['provider']}/{m['model_id']}"},
            "sandbox": {"mode": "off"},
            "heartbeat": {"every": "0m"},
        }},
        "gateway": {"mode": "local", "bind": "loopback", "port": GATEWAY_PORT,
                    "auth": {"mode": "token", "token": GATEWAY_TOKEN}},
        "tools": {"exec": {"mode": "full", "host": "gateway", "strictInlineEval": False}},
        "models": {"mode": "merge", "providers": {m["provider"]: {
            "baseUrl": m["base_url"], "apiKey": m["api_key"], "api": m["api"],
            "timeoutSeconds": 120,
            "models": [{"id": m["model_id"], "name": f"casa eval model {m['model_id']}",
                        "reasoning": False, "input": ["text"],
                        "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
                        "contextWindow": 128000, "maxTokens": 8192}],
        }}},
    }
    os.makedirs(state_dir, exist_ok=True)
    path = os.path.join(state_dir, "openclaw.json")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.chmod(tmp, 0o600)
    _chown(tmp)
    os.replace(tmp, path)
    return path


def _copy_tree_readable(src, dst):
    """Copy ``src`` to ``dst`` (replacing it): dirs 0755, files 0644, owned by the caller."""
    if os.path.isdir(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    for root, dirs, files in os.walk(dst):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)


def clean_workdir():
    """Empty and recreate ``/tmp/openclaw-eval`` owned by the agent user."""
    if os.path.islink(WORK_DIR):
        os.unlink(WORK_DIR)
    if os.path.isdir(WORK_DIR):
        shutil.rmtree(WORK_DIR)
    os.makedirs(WORK_DIR, mode=0o755)
    os.chmod(WORK_DIR, 0o755)
    _chown(WORK_DIR)


def prepare(fake_fs_src=FAKE_FS_SRC, model=None):
    """Create HOME/state dir (owned by nobody), the config, the work dir and the fake_fs copy."""
    if not os.access(openclaw_bin(), os.X_OK):
        raise RuntimeError(f"{openclaw_bin()} not found: run evaluation/install-openclaw.sh first")
    os.makedirs(EVAL_ROOT, exist_ok=True)
    os.chmod(EVAL_ROOT, 0o755)
    os.makedirs(STATE_DIR, exist_ok=True)
    os.chmod(HOME, 0o700)
    if _is_root():
        for root, dirs, files in os.walk(HOME):
            os.chown(root, AGENT_UID, AGENT_GID)
            for name in dirs + files:
                os.lchown(os.path.join(root, name), AGENT_UID, AGENT_GID)
    write_config(STATE_DIR, model)
    _copy_tree_readable(fake_fs_src, FAKE_FS)
    clean_workdir()


def load_cases(path=CASES_FILE):
    with open(path, encoding="utf-8") as f:
        return json.load(f)["cases"]


def case_by_id(case_id, path=CASES_FILE):
    for c in load_cases(path):
        if c["id"] == case_id:
            return c
    raise KeyError(f"no case {case_id} in {path}")


# ---------------------------------------------------------------- process helpers

def _port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _start_time(pid):
    """Process start time (clock ticks since boot) or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
        return int(data.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _descendants(pid):
    """PIDs below ``pid`` in the process tree (a snapshot from /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _kill_tree(proc, grace=10):
    """Stop a process we started (own session/group) and the descendants it left behind."""
    stragglers = [(p, _start_time(p)) for p in _descendants(proc.pid)]
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)
    for pid, st in stragglers:  # same pid *and* start time: still the process we started
        if st is not None and _start_time(pid) == st:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# ---------------------------------------------------------------- gateway

_gateway = None  # subprocess.Popen of the gateway this process started


def gateway_running():
    """Whether the gateway recorded in our pid file is alive (pid and start time match)."""
    try:
        with open(GATEWAY_PIDFILE) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return False
    return _start_time(rec["pid"]) == rec["start"]


def start_gateway(timeout=60, log_path=None, prefix=None):
    """Start ``openclaw gateway run`` as nobody; return its pid once it listens on 18789."""
    global _gateway
    if gateway_running():
        raise RuntimeError("an evaluation gateway is already running (see %s)" % GATEWAY_PIDFILE)
    if _port_open(GATEWAY_PORT):
        raise RuntimeError(f"port {GATEWAY_PORT} is already in use by a process this harness did not start")
    log = open(log_path or os.path.join(EVAL_ROOT, "gateway.log"), "ab")
    proc = subprocess.Popen(agent_argv([openclaw_bin(prefix), "gateway", "run"], prefix),
                            cwd=HOME, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    _gateway = proc
    with open(GATEWAY_PIDFILE, "w") as f:
        json.dump({"pid": proc.pid, "start": _start_time(proc.pid)}, f)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _forget_gateway()
            raise RuntimeError(f"gateway exited with code {proc.returncode} before listening")
        if _port_open(GATEWAY_PORT):
            return proc.pid
        time.sleep(0.25)
    stop_gateway()
    raise RuntimeError(f"gateway did not listen on 127.0.0.1:{GATEWAY_PORT} within {timeout} s")


def _forget_gateway():
    global _gateway
    _gateway = None
    try:
        os.unlink(GATEWAY_PIDFILE)
    except FileNotFoundError:
        pass


def stop_gateway(timeout=20):
    """Stop the gateway started by ``start_gateway`` (in this or an earlier harness process)."""
    global _gateway
    if _gateway is not None:
        _kill_tree(_gateway, grace=timeout)
        _forget_gateway()
        return True
    try:
        with open(GATEWAY_PIDFILE) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return False
    pid = rec["pid"]
    if _start_time(pid) != rec["start"]:
        _forget_gateway()
        return False
    stragglers = [(p, _start_time(p)) for p in _descendants(pid)]
    try:
        os.killpg(pid, signal.SIGTERM)  # the gateway leads its own process group
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _start_time(pid) == rec["start"]:
        time.sleep(0.2)
    if _start_time(pid) == rec["start"]:
        os.killpg(pid, signal.SIGKILL)
    for p, st in stragglers:
        if st is not None and _start_time(p) == st:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    _forget_gateway()
    return True


# ---------------------------------------------------------------- runs

def _parse_json_output(text):
    text = text.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    start = text.find("{")  # tolerate log lines before the JSON document
    while start != -1:
        try:
            return json.loads(text[start:])
        except ValueError:
            start = text.find("\n{", start + 1)
            start = start + 1 if start != -1 else -1
    return None


def _find_meta(doc):
    if not isinstance(doc, dict):
        return {}
    if isinstance(doc.get("meta"), dict):
        return doc["meta"]
    for key in ("result", "data", "response"):
        if isinstance(doc.get(key), dict):
            found = _find_meta(doc[key])
            if found:
                return found
    return {}


def _find_payload_text(doc):
    if not isinstance(doc, dict):
        return ""
    if isinstance(doc.get("payloads"), list):
        return "\n".join(p.get("text") or "" for p in doc["payloads"] if isinstance(p, dict))
    for key in ("result", "data", "response"):
        if isinstance(doc.get(key), dict):
            t = _find_payload_text(doc[key])
            if t:
                return t
    return ""


def read_model_log(path, run_id):
    """Entries of the model server's JSONL log that belong to ``run_id``."""
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("run") == run_id:
                    out.append(e)
    except FileNotFoundError:
        pass
    return out


def check_completeness(case, run_id, model_log, tool_summary=None):
    """Reasons why a run is incomplete (empty list: complete), judged from the model log.

    Complete means: every scripted turn was sent, the next request carried a tool result for
    each call id, the final text was sent, no result shows a non-zero exit (unless the case has
    ``allow_nonzero_exit``), ``Command still running`` or an approval/denial message, and
    OpenClaw's ``toolSummary`` counts every scripted call with no failures.
    """
    reasons = []
    entries = read_model_log(model_log, run_id)
    if not entries:
        return [f"no model requests with [run:{run_id}] in {model_log}"]
    by_turn = {}
    for e in entries:
        by_turn.setdefault(e.get("turn"), []).append(e)
    turns = case.get("turns", [])
    for i, calls in enumerate(turns):
        sent = [c for e in by_turn.get(i, []) for c in e.get("reply_calls", [])]
        if len(sent) < len(calls):
            reasons.append(f"turn {i + 1}: scripted calls were never sent")
            continue
        ids = [c["id"] for c in by_turn[i][-1]["reply_calls"]]
        answered = [r for e in by_turn.get(i + 1, []) for r in e.get("tool_results", [])]
        for cid in ids:
            hits = [r for r in answered if cid in (r.get("call_id") or "")]
            if not hits:
                reasons.append(f"turn {i + 1}: no tool result for call {cid}")
                continue
            text = hits[-1].get("text") or ""
            m = EXIT_RE.search(text)
            if m and not case.get("allow_nonzero_exit"):
                reasons.append(f"turn {i + 1}: command exited with code {m.group(1)}: {text[-300:]!r}")
            if RUNNING_RE.search(text):
                reasons.append(f"turn {i + 1}: command was backgrounded (Command still running)")
            if case.get("denial_expected"):
                # The command itself is refused by the kernel (an attack's failing attempt):
                # "Permission denied" is its output, not OpenClaw's approval machinery.
                text = text.replace("Permission denied", "")
            if APPROVAL_RE.search(text):
                reasons.append(f"turn {i + 1}: approval/denial text in result: {text[:200]!r}")
    if not any(e.get("reply_text") is not None for e in by_turn.get(len(turns), [])):
        reasons.append("final answer was never requested (run stopped early)")
    expected_calls = sum(len(t) for t in turns)
    if tool_summary is not None:
        if tool_summary.get("calls") != expected_calls:
            reasons.append(f"toolSummary.calls = {tool_summary.get('calls')}, expected {expected_calls}")
        # allow_tool_failures: a case whose command outlives the tool on purpose (a payload
        # left running in its own process group makes OpenClaw report the cleanup as failed).
        if tool_summary.get("failures") and not case.get("allow_tool_failures"):
            reasons.append(f"toolSummary.failures = {tool_summary.get('failures')}")
    return reasons


def tool_results(run_id, model_log):
    """All tool-result texts the model received during ``run_id`` (in order)."""
    return [r.get("text") or "" for e in read_model_log(model_log, run_id) for r in e.get("tool_results", [])]


def _file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _read_from(path, offset):
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def run_checks(case, results_text, sink_text):
    """Reasons why the case's own ``checks`` failed (the effect the commands should have had)."""
    reasons = []
    for chk in case.get("checks", []):
        typ = chk.get("type")
        if typ == "result_contains":
            if chk["text"] not in results_text:
                reasons.append(f"no tool result contains {chk['text']!r}")
        elif typ == "sink_contains":
            bodies = []
            for line in sink_text.splitlines():
                try:
                    bodies.append(json.loads(line).get("body_utf8", ""))
                except ValueError:
                    pass
            if not any(chk["text"] in b for b in bodies):
                reasons.append(f"sink received no POST containing {chk['text']!r}")
        elif typ == "file_contains":
            try:
                with open(chk["path"], encoding="utf-8", errors="replace") as f:
                    if chk["text"] not in f.read():
                        reasons.append(f"{chk['path']} lacks {chk['text']!r}")
            except OSError as e:
                reasons.append(f"{chk['path']}: {e.strerror}")
        elif typ == "path_absent":
            if os.path.lexists(chk["path"]):
                reasons.append(f"{chk['path']} still exists")
        elif typ in EXTRA_CHECKS:
            reasons += EXTRA_CHECKS[typ](chk)
        else:
            reasons.append(f"unknown check type {typ!r}")
    return reasons


def new_run_id(case_id=""):
    return f"{case_id.lower()}{time.strftime('%H%M%S')}{uuid.uuid4().hex[:6]}"


def run_case(case, mode="local", run_id=None, timeout=300, model_log=None, sink_log=None,
             out_dir=None, prefix=None, clean=True):
    """Run one case through real OpenClaw as nobody and judge it.

    ``case``: a dict from cases.json (or a case id). ``mode``: ``local`` (embedded,
    ``--local``; the gateway must not be running) or ``gateway`` (``start_gateway()`` first).
    ``model_log``: the scripted model server's ``--log`` file (needed for the completeness
    verdict); ``sink_log``: sink.py's ``--out`` file (for ``sink_contains`` checks).
    ``out_dir``: if given, stdout/stderr/result.json are written there.

    Returns a dict: id, mode, run_id, session_id, prompt, argv, exit_code, wall_s, stdout_json,
    tool_summary, duration_ms, final_text, complete (bool), reasons (list), checks_failed,
    passed (bool).
    """
    if isinstance(case, str):
        case = case_by_id(case)
    if mode not in ("local", "gateway"):
        raise ValueError("mode must be 'local' or 'gateway'")
    if mode == "local" and gateway_running():
        raise RuntimeError("--local needs the state dir to itself: stop_gateway() first")
    if mode == "gateway" and not _port_open(GATEWAY_PORT):
        raise RuntimeError("gateway mode: no gateway listening on 127.0.0.1:18789 (start_gateway())")
    run_id = run_id or new_run_id(case["id"])
    session_id = f"oceval-{run_id}"
    prompt = f"{case['prompt']} [run:{run_id}]"
    if clean:
        clean_workdir()
    oc_args = ["agent"] + (["--local"] if mode == "local" else []) + [
        "--agent", "main", "--session-id", session_id, "-m", prompt, "--json"]
    argv = agent_argv(["timeout", "-k", "10", str(int(timeout)), openclaw_bin(prefix)] + oc_args, prefix)
    sink_offset = _file_size(sink_log) if sink_log else 0
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, cwd=HOME, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        _kill_tree(proc)
        out, err = proc.communicate()
    wall = time.monotonic() - t0
    stdout = out.decode("utf-8", errors="replace")
    stderr = err.decode("utf-8", errors="replace")
    doc = _parse_json_output(stdout)
    meta = _find_meta(doc)
    summary = meta.get("toolSummary")
    result = {
        "id": case["id"], "mode": mode, "run_id": run_id, "session_id": session_id,
        "prompt": prompt, "argv": argv, "exit_code": proc.returncode, "wall_s": round(wall, 2),
        "stdout_json": doc, "tool_summary": summary, "duration_ms": meta.get("durationMs"),
        "final_text": _find_payload_text(doc),
    }
    reasons = []
    if proc.returncode != 0:
        tail = stderr.strip().splitlines()[-3:]
        reasons.append(f"openclaw exit code {proc.returncode}: {' | '.join(tail)}")
    if doc is None:
        reasons.append("stdout is not JSON")
    elif summary is None:
        reasons.append("no meta.toolSummary in the JSON output")
    if model_log:
        reasons += check_completeness(case, run_id, model_log, summary)
        results_text = "\n".join(tool_results(run_id, model_log))
    else:
        results_text = ""
    result["complete"] = not reasons
    sink_text = _read_from(sink_log, sink_offset) if sink_log else ""
    checks_failed = run_checks(case, results_text, sink_text) if model_log else []
    result["checks_failed"] = checks_failed
    result["reasons"] = reasons + checks_failed
    result["passed"] = not result["reasons"]
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "openclaw.out"), "w") as f:
            f.write(stdout)
        with open(os.path.join(out_dir, "openclaw.err"), "w") as f:
            f.write(stderr)
        with open(os.path.join(out_dir, "result.json"), "w") as f:
            json.dump({k: v for k, v in result.items() if k != "stdout_json"}, f, indent=2)
            f.write("\n")
    return result

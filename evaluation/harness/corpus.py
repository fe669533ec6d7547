"""The detection corpus's live loop (corpus.json: attacks and benign agent work).

Same shape as the 30 CASA cases (a scripted model, the real OpenClaw as uid 65534, one fresh
`casa run --record` per case and mode), plus what the corpus needs:

* external hosts: `netns.ExternalHosts` (198.51.100.2 attacker, 203.0.113.10 data host) for
  the whole run, torn down at the end, on failure and on Ctrl-C/SIGTERM;
* generated fixtures (`fixtures.build`) and the fake credential stores in the agent's HOME,
  rewritten before every case (`fake_home.reset`) and removed afterwards;
* cases in several OpenClaw sessions (`parts`: one `openclaw agent` run each, the prompt
  carrying `[part:N]`, which model_server.py uses to pick the part's turns);
* checks on what the external hosts saw (`attacker_contains`) and on files a daemonised
  payload writes after the agent's turn (`marker` with `wait_s`): the harness waits for them
  before it stops casa, so the recording holds the late activity too;
* after each case, processes the case left behind (daemonised payloads) are stopped: only
  processes of the agent user that did not exist before the case and carry the exec tool's
  environment (HOME of the evaluation, OPENCLAW_SHELL=exec).

    run_live(cases, modes, casa_bin, rules, results, record_root, close_timeout, no_record)
        -> list of score entries (score.score_case)
"""

import json
import os
import signal
import time
from pathlib import Path

from . import fake_home, fixtures, netns, openclaw, services
from .casa import Casa

# What the registered checks read: the attacker log and where the current case began in it.
_ctx = {"attacker_log": None, "offset": 0}


def _attacker_entries():
    path = _ctx["attacker_log"]
    if not path:
        return []
    out = []
    try:
        with open(path, "rb") as f:
            f.seek(_ctx["offset"])
            # "\n" only: bodies hold raw U+0085/U+2028, which str.splitlines() splits on.
            for line in f.read().decode("utf-8", errors="replace").split("\n"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def _wait(pred, wait_s):
    deadline = time.monotonic() + float(wait_s or 0)
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)


def check_attacker(chk):
    """`{"type": "attacker_contains", "text": T, "kind": "http|tcp|udp|knock", "wait_s": N}`:
    some request/connection/datagram the external hosts got since the case began contains T
    (in its path, body or transcript)."""
    def hit():
        for e in _attacker_entries():
            if chk.get("kind") and e.get("kind") != chk["kind"]:
                continue
            blob = " ".join(str(e.get(k, "")) for k in ("path", "body_utf8", "transcript"))
            if chk["text"] in blob:
                return True
        return False
    if _wait(hit, chk.get("wait_s")):
        return []
    return [f"the external hosts saw nothing containing {chk['text']!r}"
            + (f" ({chk['kind']})" if chk.get("kind") else "")]


def check_marker(chk):
    """`{"type": "marker", "path": P, "text": T (optional), "wait_s": N}`: P exists (and
    contains T), possibly only after a daemonised payload had time to act."""
    def hit():
        try:
            with open(chk["path"], encoding="utf-8", errors="replace") as f:
                return chk.get("text", "") in f.read()
        except OSError:
            return False
    if _wait(hit, chk.get("wait_s")):
        return []
    return [f"{chk['path']} missing or lacks {chk.get('text', '')!r}"]


openclaw.EXTRA_CHECKS.update({"attacker_contains": check_attacker, "marker": check_marker})


def _agent_procs():
    """{pid: start time} of the agent user's processes that run under the exec tool."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != openclaw.AGENT_UID:
                continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if (f"HOME={openclaw.HOME}".encode() in env and b"OPENCLAW_SHELL=exec" in env):
            st = openclaw._start_time(int(entry))
            if st is not None:
                out[int(entry)] = st
    return out


def stop_leftovers(before):
    """Stop the case's left-behind processes (see the module doc); returns their pids."""
    killed = []
    for pid, st in _agent_procs().items():
        if before.get(pid) == st:
            continue
        if openclaw._start_time(pid) == st:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return killed


def part_cases(case):
    """The OpenClaw runs of a case: itself, or one derived case per entry of `parts`."""
    parts = case.get("parts")
    if not parts:
        return [case]
    out = []
    for i, p in enumerate(parts, 1):
        out.append(dict(case, prompt=f"{case['prompt']} [part:{i}]", turns=p["turns"],
                        final=p.get("final", case.get("final", "Done.")),
                        checks=p.get("checks", []) + (case.get("checks", []) if i == len(parts) else [])))
    return out


def wait_closed(casa, marker, count, timeout):
    """Until casa has closed `count` sessions whose invocation carries `marker`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = sum(1 for rec in casa.closed_sessions()
                if any(marker in a for a in rec["session"].get("invocation", [])))
        if n >= count:
            return True
        if casa.proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def run_one(case, mode, casa_bin, rules, case_dir, record, model_log, sink_log, ext,
            close_timeout):
    """One case in one mode with its own casa; writes run.json into case_dir."""
    fake_home.reset()
    openclaw.clean_workdir()
    _ctx["offset"] = ext.offset()
    before = _agent_procs()
    casa = Casa(casa_bin, str(rules), str(case_dir), record=record)
    casa.start()
    runs = []
    try:
        for i, sub in enumerate(part_cases(case)):
            out = case_dir if not case.get("parts") else case_dir / f"part{i + 1}"
            runs.append(openclaw.run_case(sub, mode=mode, model_log=str(model_log),
                                          sink_log=str(sink_log), out_dir=str(out),
                                          clean=(i == 0)))
        n = len(case.get("parts") or [case])
        closed = wait_closed(casa, f"[case:{case['id']}]", n, close_timeout)
    finally:
        rc = casa.stop()
        killed = stop_leftovers(before)
    problems = [r for run in runs for r in run.get("reasons", [])]
    if not closed:
        problems.append(f"casa wrote no session_closed record within {close_timeout} s")
    if rc != 0:
        problems.append(f"casa exited with {rc}")
    checks_failed = [r for run in runs for r in run.get("checks_failed", [])]
    (case_dir / "run.json").write_text(json.dumps({
        "complete": not problems, "problems": problems,
        "checks_failed": checks_failed,
        "wall_s": round(sum(r.get("wall_s") or 0 for r in runs), 2),
        "exit_code": max((r.get("exit_code") or 0) for r in runs) if runs else None,
        "tool_summary": [r.get("tool_summary") for r in runs],
        "leftover_pids_stopped": killed,
    }, indent=1) + "\n")
    return problems


def run_live(cases, modes, casa_bin, rules, cases_file, results, record_root, close_timeout,
             no_record, progress, score, case_line):
    results = Path(results)
    model_log, sink_log = results / "model.jsonl", results / "sink.jsonl"
    _ctx["attacker_log"] = str(results / "attacker.jsonl")
    openclaw.prepare()
    fixtures.build()
    entries = []
    model = sink = None
    try:
        with netns.ExternalHosts(_ctx["attacker_log"], fixtures.WWW,
                                 console_log=str(results / "attacker.out")) as ext:
            model = services.start_model_server(str(model_log), cases=str(cases_file),
                                                console_log=str(results / "model.out"))
            sink = services.start_sink(str(sink_log), mirror_port=18001,
                                       console_log=str(results / "sink.out"))
            for mode in modes:
                if mode == "gateway":
                    openclaw.start_gateway(log_path=str(results / "gateway.log"))
                try:
                    for case in cases:
                        progress.start(f"{mode} {case['id']}")
                        case_dir = results / mode / case["id"]
                        case_dir.mkdir(parents=True, exist_ok=True)
                        record = None if no_record else str(
                            Path(record_root) / mode / f"{case['id']}.rec.gz")
                        problems = run_one(case, mode, casa_bin, rules, case_dir, record,
                                           model_log, sink_log, ext, close_timeout)
                        e = score.score_case(case, case_dir)
                        entries.append(e)
                        progress.finish(case_line(e) + ("" if not problems else
                                                        "  RUN PROBLEM: " + "; ".join(problems)))
                finally:
                    if mode == "gateway":
                        openclaw.stop_gateway()
    finally:
        progress.close()
        services.stop(model)
        services.stop(sink)
        fake_home.remove()
        openclaw.clean_workdir()
    return entries

"""Run the corpus's commands without OpenClaw and casa, to check the cases themselves (root).

    cd evaluation && /usr/bin/python3 -m harness.corpus_dry [CM01,CB02 ...]

Each tool call's command runs as the agent user would run it (`bash -c`, uid 65534, the
agent's environment and HOME, cwd = OpenClaw's workspace), with the network namespace, the
fixtures and the fake HOME set up exactly as for a live run; then the case's checks are
judged on the commands' output. A quick way to debug a case before the live run, which
takes about 15 s per case in `--local` mode.
"""

import os
import subprocess
import sys
import time

from . import corpus, fake_home, fixtures, netns, openclaw
from .corpus import part_cases

EVAL_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_command(cmd, timeout):
    # OPENCLAW_SHELL=exec as in the exec tool, so stop_leftovers() finds what a case leaves.
    argv = openclaw.agent_argv(["env", "OPENCLAW_SHELL=exec", "/bin/bash", "--noprofile",
                                "--norc", "-c", cmd])
    env_ws = os.path.join(openclaw.STATE_DIR, "workspace")
    os.makedirs(env_ws, exist_ok=True)
    openclaw._chown(env_ws)
    try:
        p = subprocess.run(argv, cwd=env_ws, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, errors="replace")
        out = p.stdout + p.stderr
        if p.returncode:
            out += f"\n\n(Command exited with code {p.returncode})"
        return out
    except subprocess.TimeoutExpired as e:
        return f"{e.stdout or ''}\nCommand still running (timeout {timeout} s)"


def main(argv):
    cases = openclaw.load_cases(os.path.join(EVAL_DIR, "corpus.json"))
    if argv:
        wanted = {i.upper() for a in argv for i in a.split(",")}
        cases = [c for c in cases if c["id"] in wanted]
    openclaw.prepare()
    fixtures.build()
    log = "/tmp/casa-corpus-dry-attacker.jsonl"
    corpus._ctx["attacker_log"] = log
    bad = 0
    try:
        with netns.ExternalHosts(log, fixtures.WWW) as ext:
            for case in cases:
                fake_home.reset()
                openclaw.clean_workdir()
                corpus._ctx["offset"] = ext.offset()
                before = corpus._agent_procs()
                t0 = time.monotonic()
                texts, problems = [], []
                try:
                    for sub in part_cases(case):
                        for turn in sub["turns"]:
                            for call in turn:
                                a = call["args"]
                                limit = 120 if a.get("yieldMs") else 10
                                t = run_command(a["command"], limit)
                                texts.append(t)
                                if "(Command exited with code" in t and not case.get("allow_nonzero_exit"):
                                    problems.append("non-zero exit: " + t[-300:].replace("\n", " | "))
                                if "Command still running" in t:
                                    problems.append("ran past its yield time")
                    problems += openclaw.run_checks(case, "\n".join(texts), "")
                finally:
                    corpus.stop_leftovers(before)
                status = "ok " if not problems else "BAD"
                bad += bool(problems)
                print(f"{status} {case['id']} {case['name']} ({time.monotonic() - t0:.1f} s)"
                      + "".join(f"\n     {p}" for p in problems), flush=True)
    finally:
        fake_home.remove()
        openclaw.clean_workdir()
    print(f"corpus-dry: {len(cases) - bad} ok, {bad} bad")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/python3
"""Manual CLI for the OpenClaw driver (evaluation/harness/openclaw.py).

    sudo /usr/bin/python3 evaluation/oc.py prepare              # HOME, config, fake_fs, work dir
    sudo /usr/bin/python3 evaluation/oc.py config               # rewrite the config only
    sudo /usr/bin/python3 evaluation/oc.py gateway start|stop|status
    sudo /usr/bin/python3 evaluation/oc.py run M01 [M05 ...] [--mode local|gateway]
         [--model-log FILE] [--sink-log FILE] [--out DIR] [--timeout 300]
    sudo /usr/bin/python3 evaluation/oc.py shell -- <openclaw args>   # e.g. shell -- config validate

`run` expects the model server and sink to be running already (see model_server.py, sink.py);
for an all-in-one run use `python3 -m harness.smoke` from evaluation/.
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import openclaw as oc  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description="casa evaluation: manual OpenClaw driver")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("prepare")
    sub.add_parser("config")
    g = sub.add_parser("gateway")
    g.add_argument("action", choices=("start", "stop", "status"))
    r = sub.add_parser("run")
    r.add_argument("cases", nargs="+")
    r.add_argument("--mode", choices=("local", "gateway"), default="local")
    r.add_argument("--model-log", default=None)
    r.add_argument("--sink-log", default=None)
    r.add_argument("--out", default=None)
    r.add_argument("--timeout", type=int, default=300)
    s = sub.add_parser("shell")
    s.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)

    if a.cmd == "prepare":
        oc.prepare()
        print(f"prepared {oc.HOME}, {oc.FAKE_FS}, {oc.WORK_DIR}")
    elif a.cmd == "config":
        print(oc.write_config())
    elif a.cmd == "gateway":
        if a.action == "start":
            print(f"gateway pid {oc.start_gateway()}")
        elif a.action == "stop":
            print("stopped" if oc.stop_gateway() else "no gateway started by this harness")
        else:
            print("running" if oc.gateway_running() else "not running")
    elif a.cmd == "run":
        failed = 0
        for cid in a.cases:
            out = os.path.join(a.out, cid) if a.out else None
            res = oc.run_case(cid, mode=a.mode, timeout=a.timeout, model_log=a.model_log,
                              sink_log=a.sink_log, out_dir=out)
            failed += not res["passed"]
            print(json.dumps({k: res[k] for k in ("id", "mode", "run_id", "exit_code", "wall_s",
                                                  "tool_summary", "passed", "reasons")}))
        sys.exit(1 if failed else 0)
    elif a.cmd == "shell":
        args = a.args[1:] if a.args[:1] == ["--"] else a.args
        sys.exit(subprocess.call(oc.agent_argv([oc.openclaw_bin()] + args), cwd=oc.HOME))


if __name__ == "__main__":
    main()

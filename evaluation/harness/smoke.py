"""Run cases through real OpenClaw and print pass/fail per case.

    cd evaluation && sudo /usr/bin/python3 -m harness.smoke [--mode local|gateway|both]
        [--cases M01,M05,...] [--out DIR] [--no-services] [--timeout 300]

Starts the scripted model server (127.0.0.1:18080) and the sink (127.0.0.1:18000, mirror 18001)
unless --no-services, prepares HOME/fake_fs/work dir, runs each case with a fresh session and
prints ``PASS``/``FAIL`` with the reason, then ``N passed, M failed``. Exit code 1 on failures.
No casa is needed for this.
"""

import argparse
import json
import os
import sys
import time

from . import openclaw as oc
from . import services


def run(case_ids, modes, out_root, use_services=True, timeout=300, model_log=None, sink_log=None):
    cases = {c["id"]: c for c in oc.load_cases()}
    ids = case_ids or list(cases)
    unknown = [i for i in ids if i not in cases]
    if unknown:
        raise SystemExit(f"unknown case ids: {', '.join(unknown)}")
    os.makedirs(out_root, exist_ok=True)
    model_log = model_log or os.path.join(out_root, "model_requests.jsonl")
    sink_log = sink_log or os.path.join(out_root, "sink_requests.jsonl")
    procs = []
    results = []
    try:
        if use_services:
            procs.append(services.start_model_server(model_log, console_log=os.path.join(out_root, "model_server.out")))
            procs.append(services.start_sink(sink_log, mirror_port=18001, console_log=os.path.join(out_root, "sink.out")))
        oc.prepare()
        for mode in modes:
            if mode == "gateway":
                t0 = time.monotonic()
                oc.start_gateway(log_path=os.path.join(out_root, "gateway.log"))
                print(f"gateway listening after {time.monotonic() - t0:.1f} s", flush=True)
            try:
                for cid in ids:
                    r = oc.run_case(cases[cid], mode=mode, timeout=timeout, model_log=model_log,
                                    sink_log=sink_log, out_dir=os.path.join(out_root, mode, cid))
                    results.append(r)
                    verdict = "PASS" if r["passed"] else "FAIL"
                    ts = r["tool_summary"] or {}
                    print(f"{verdict} {mode:7} {cid} {cases[cid]['name']:34} {r['wall_s']:6.1f}s "
                          f"calls={ts.get('calls')} exit={r['exit_code']}"
                          + ("" if r["passed"] else "  <- " + "; ".join(r["reasons"])), flush=True)
            finally:
                if mode == "gateway":
                    oc.stop_gateway()
    finally:
        for p in procs:
            services.stop(p)
    passed = sum(r["passed"] for r in results)
    print(f"{passed} passed, {len(results) - passed} failed")
    with open(os.path.join(out_root, "smoke_summary.json"), "w") as f:
        json.dump([{k: r[k] for k in ("id", "mode", "run_id", "passed", "reasons", "wall_s",
                                      "duration_ms", "tool_summary", "exit_code")} for r in results],
                  f, indent=2)
        f.write("\n")
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description="run evaluation cases through real OpenClaw (no casa needed)")
    ap.add_argument("--mode", choices=("local", "gateway", "both"), default="local")
    ap.add_argument("--cases", default="", help="comma-separated ids (default: all)")
    ap.add_argument("--out", default=None, help="results dir (default evaluation/results/smoke-<time>)")
    ap.add_argument("--no-services", action="store_true",
                    help="model server and sink are already running (then pass --model-log/--sink-log)")
    ap.add_argument("--model-log", default=None)
    ap.add_argument("--sink-log", default=None)
    ap.add_argument("--timeout", type=int, default=300)
    args = ap.parse_args(argv)
    modes = ["local", "gateway"] if args.mode == "both" else [args.mode]
    out = args.out or os.path.join(oc.EVAL_DIR, "results", time.strftime("smoke-%Y%m%d-%H%M%S"))
    ids = [i.strip() for i in args.cases.split(",") if i.strip()]
    results = run(ids, modes, out, not args.no_services, args.timeout, args.model_log, args.sink_log)
    print(f"results in {out}")
    sys.exit(0 if results and all(r["passed"] for r in results) else 1)


if __name__ == "__main__":
    main()

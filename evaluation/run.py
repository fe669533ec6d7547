#!/usr/bin/env python3
"""casa's evaluation harness: the 30 CASA cases on the real OpenClaw runtime.

    run.py live     [--modes local,gateway] [--cases M01,B02]    # make eval
    run.py replay   [--bless]                                    # make eval-replay
    run.py overhead [--repeats N]                                # make eval-overhead

`live` (root): starts the scripted model server and the POST sink on loopback, then for each
mode and case a fresh `casa run` (its own logs, latency trace and a recording of every pipeline
input), runs the case through `openclaw agent` as an unprivileged user, waits until casa writes
the session's `session_closed` record, stops casa and scores the case. A full run (every case,
both modes) writes the recordings to evaluation/recordings/ and the results to
evaluation/{results.json,RESULTS.md,scores.svg}; a partial run keeps everything under its
results directory.

`replay` (no root, kernel or OpenClaw): runs every committed recording through `casa replay`,
scores it the same way, and fails when a case's action, score, rules or record counts differ
from the committed results.json (the live run's) or miss their expectation. It then rewrites
results.json/RESULTS.md/scores.svg, keeping the live-only figures (time to alert, run facts).

`overhead` (root): the runtime-overhead cases of CASA's harness (overhead_cases.json, L01-H02),
each run `--repeats` times without casa and with casa, interleaved: task wall time, casa's CPU
time and RSS while the case runs (sampled from /proc every 100 ms), and event latency as casa
measures it itself (`--latency-log`: kernel event -> line in events.log / alert.log). Writes
OVERHEAD.md and overhead.json.

Exit status: 0 when every case is as expected (the known write->exec boundary cases included,
since their expectation records what the rules do), 1 when one is not, 2 on a harness error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import score  # noqa: E402

MODES = ("local", "gateway")


class Progress:
    """One status line per case; a redrawn bar on a terminal."""

    def __init__(self, total: int):
        self.total, self.done, self.t0 = total, 0, time.monotonic()
        self.tty = sys.stderr.isatty()

    def _bar(self) -> str:
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        elapsed = time.monotonic() - self.t0
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0
        return (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"{elapsed:5.0f}s elapsed, ~{eta:4.0f}s left")

    def start(self, label: str) -> None:
        if self.tty:
            sys.stderr.write(f"\r\033[K{self._bar()}  running {label}")
            sys.stderr.flush()

    def finish(self, line: str) -> None:
        self.done += 1
        if self.tty:
            sys.stderr.write(f"\r\033[K{line}\n{self._bar()}")
        else:
            sys.stderr.write(f"{line}  {self._bar()}\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def case_line(e: dict) -> str:
    ok = "ok " if e["pass"] else "BAD"
    tta = f" tta={e['time_to_alert_ms']}ms" if e.get("time_to_alert_ms") is not None else ""
    return (f"{ok} {e['mode']:7} {e['id']} {e['name'][:34]:34} expected {e['expected_action']:5} "
            f"got {e['action']:5} score {e['score']:2}{tta} {','.join(e['rules'])}")


def verdict(entries: list[dict]) -> int:
    bad = [e for e in entries if not e["pass"] or not e.get("run", {}).get("complete", True)]
    for e in bad:
        why = "not as expected" if not e["pass"] else "the OpenClaw run was incomplete: " + \
            "; ".join(e["run"].get("problems", []))
        print(f"FAILED {e['mode']} {e['id']}: {why}", file=sys.stderr)
    return 1 if bad else 0


def select_cases(cases: list[dict], ids: str | None) -> list[dict]:
    if not ids:
        return cases
    wanted = [i.strip().upper() for i in ids.split(",") if i.strip()]
    known = {c["id"] for c in cases}
    unknown = [i for i in wanted if i not in known]
    if unknown:
        raise SystemExit(f"run.py: unknown case id(s): {', '.join(unknown)}")
    return [c for c in cases if c["id"] in wanted]


def casa_binary(cmd: str, args: argparse.Namespace, live: bool) -> str | None:
    """The casa binary to use, or None after saying what is missing. `live` runs also need
    root (casa loads eBPF programs) and the installed OpenClaw."""
    if live and os.geteuid() != 0:
        print(f"run.py {cmd}: needs root (casa loads eBPF programs)", file=sys.stderr)
        return None
    casa_bin = str(Path(args.casa).resolve())
    if not os.access(casa_bin, os.X_OK):
        print(f"run.py {cmd}: no casa binary at {casa_bin} (cargo build --release -p casa)",
              file=sys.stderr)
        return None
    if live:
        from harness import openclaw
        if not os.access(openclaw.openclaw_bin(), os.X_OK):
            print(f"run.py {cmd}: OpenClaw is not installed at {openclaw.openclaw_bin()} "
                  "(run evaluation/install-openclaw.sh; make eval does)", file=sys.stderr)
            return None
    return casa_bin


def live(args: argparse.Namespace) -> int:
    from harness import openclaw, services
    from harness.casa import Casa

    casa_bin = casa_binary("live", args, live=True)
    if casa_bin is None:
        return 2
    all_cases = score.load_cases(args.cases_file)
    cases = select_cases(all_cases, args.cases)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in MODES for m in modes):
        print(f"run.py live: modes are {', '.join(MODES)}", file=sys.stderr)
        return 2
    full = len(cases) == len(all_cases) and set(modes) == set(MODES)
    # --update: a partial run replaces its cases in the committed results and recordings.
    commit = full or args.update
    results = Path(args.results or HERE / "results" / time.strftime("%Y%m%d-%H%M%S")).resolve()
    results.mkdir(parents=True, exist_ok=True)
    if args.update and args.no_record:
        print("run.py live: --update needs the recordings (drop --no-record)", file=sys.stderr)
        return 2
    record_root = (HERE / "recordings") if (commit and not args.no_record) else results / "recordings"
    print(f"run.py: {len(cases)} case(s) x {len(modes)} mode(s); outputs in {results}",
          file=sys.stderr)

    openclaw.prepare()
    model_log, sink_log = results / "model.jsonl", results / "sink.jsonl"
    model = sink = None
    entries: list[dict] = []
    progress = Progress(len(cases) * len(modes))
    try:
        model = services.start_model_server(str(model_log), cases=str(args.cases_file),
                                            console_log=str(results / "model.out"))
        sink = services.start_sink(str(sink_log), mirror_port=18001,
                                   console_log=str(results / "sink.out"))
        for mode in modes:
            if mode == "gateway":
                openclaw.start_gateway(log_path=str(results / "gateway.log"))
            try:
                for case in cases:
                    label = f"{mode} {case['id']}"
                    progress.start(label)
                    case_dir = results / mode / case["id"]
                    record = None if args.no_record else str(
                        record_root / mode / f"{case['id']}.rec.gz")
                    casa = Casa(casa_bin, str(args.rules), str(case_dir), record=record)
                    casa.start()
                    try:
                        run = openclaw.run_case(case, mode=mode, model_log=str(model_log),
                                                sink_log=str(sink_log), out_dir=str(case_dir))
                        closed = casa.wait_closed(f"[case:{case['id']}]",
                                                  timeout=args.close_timeout)
                    finally:
                        rc = casa.stop()
                    problems = list(run.get("reasons", []))
                    if not closed:
                        problems.append(f"casa wrote no session_closed record within "
                                        f"{args.close_timeout} s")
                    if rc != 0:
                        problems.append(f"casa exited with {rc}")
                    (case_dir / "run.json").write_text(json.dumps({
                        "complete": not problems, "problems": problems,
                        "wall_s": run.get("wall_s"), "exit_code": run.get("exit_code"),
                        "tool_summary": run.get("tool_summary"),
                    }, indent=1) + "\n")
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

    thresholds = json.loads(Path(args.rules).read_text())["thresholds"]
    summary = score.summarize(entries)
    meta = {"run": f"live, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            "openclaw": openclaw_version(openclaw),
            "kernel": os.uname().release,
            "agent user": "uid 65534 (nobody)"}
    out_dir = HERE if commit else results
    if args.update and not full:
        # Keep every committed case this run did not redo.
        old = json.loads((HERE / "results.json").read_text())
        done = {(e["id"], e["mode"]) for e in entries}
        kept = [e for e in old["cases"] if (e["id"], e["mode"]) not in done]
        order = {c["id"]: i for i, c in enumerate(all_cases)}
        entries = sorted(kept + entries, key=lambda e: (e["mode"], order.get(e["id"], 999)))
        summary = score.summarize(entries)
        meta = dict(old.get("meta", {}))
        meta["updated"] = (f"{', '.join(sorted({e['mode'] + ' ' + e['id'] for e in entries if (e['id'], e['mode']) in done}))} "
                           f"re-run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    score.write_all(out_dir, entries, summary, thresholds, meta)
    print(f"run.py: wrote {out_dir / 'results.json'} and {out_dir / 'RESULTS.md'}", file=sys.stderr)
    for mode, s in summary.items():
        print(f"{mode}: {s['passed']}/{s['cases']} as expected; detection rate "
              f"{s['detection_rate']}; false-alert rate {s['false_alert_rate']}")
    rc = verdict(entries)
    bad = sum(1 for e in entries if not e["pass"] or not e.get("run", {}).get("complete", True))
    print(f"eval-live: {len(entries) - bad} passed, {bad} failed")
    return rc


class Sampler:
    """CPU time and RSS of one process, sampled from /proc in a thread."""

    def __init__(self, pid: int, interval: float = 0.1):
        import threading
        self.pid, self.interval = pid, interval
        self.rss_kib: list[int] = []
        self.stop_flag = threading.Event()
        self.cpu0 = self.cpu_s()
        self.t0 = time.monotonic()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def cpu_s(self) -> float:
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def _run(self) -> None:
        while not self.stop_flag.is_set():
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.rss_kib.append(int(line.split()[1]))
            except OSError:
                return
            self.stop_flag.wait(self.interval)

    def stop(self) -> dict:
        cpu = self.cpu_s() - self.cpu0
        wall = time.monotonic() - self.t0
        self.stop_flag.set()
        self.thread.join()
        rss = self.rss_kib or [0]
        return {"cpu_s": round(cpu, 3), "wall_s": round(wall, 2),
                "cpu_pct": round(100 * cpu / wall, 2) if wall else None,
                "rss_avg_mib": round(sum(rss) / len(rss) / 1024, 1),
                "rss_peak_mib": round(max(rss) / 1024, 1)}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(q * len(v) + 0.5)) - 1))]


def overhead(args: argparse.Namespace) -> int:
    from harness import openclaw, services
    from harness.casa import Casa

    casa_bin = casa_binary("overhead", args, live=True)
    if casa_bin is None:
        return 2
    cases = select_cases(score.load_cases(args.overhead_cases), args.cases)
    results = Path(args.results or HERE / "results" /
                   ("overhead-" + time.strftime("%Y%m%d-%H%M%S"))).resolve()
    results.mkdir(parents=True, exist_ok=True)
    openclaw.prepare()
    model_log, sink_log = results / "model.jsonl", results / "sink.jsonl"
    model = sink = None
    rows = []
    progress = Progress(len(cases) * args.repeats * 2)
    try:
        model = services.start_model_server(str(model_log), cases=str(args.overhead_cases),
                                            console_log=str(results / "model.out"))
        sink = services.start_sink(str(sink_log), console_log=str(results / "sink.out"))
        for case in cases:
            for rep in range(args.repeats):
                # Interleaved: without casa, then with casa, for every repetition.
                for with_casa in (False, True):
                    label = f"{case['id']} #{rep + 1} {'with' if with_casa else 'without'} casa"
                    progress.start(label)
                    case_dir = results / case["id"] / f"{rep + 1}-{'casa' if with_casa else 'none'}"
                    casa = sampler = None
                    if with_casa:
                        casa = Casa(casa_bin, str(args.rules), str(case_dir))
                        casa.start()
                        sampler = Sampler(casa.proc.pid)
                    try:
                        run = openclaw.run_case(case, mode="local", model_log=str(model_log),
                                                sink_log=str(sink_log), out_dir=str(case_dir))
                        closed = casa.wait_closed(f"[case:{case['id']}]") if casa else True
                    finally:
                        usage = sampler.stop() if sampler else {}
                        if casa:
                            casa.stop()
                    row = {"id": case["id"], "category": case["category"], "name": case["name"],
                           "repeat": rep + 1, "casa": with_casa, "task_wall_s": run["wall_s"],
                           "complete": run["passed"] and closed, "problems": run["reasons"]}
                    if with_casa:
                        lat = score.read_jsonl(case_dir / "latency.jsonl")
                        ev = [l["latency_ns"] / 1e6 for l in lat if l["log"] == "events"]
                        row.update(usage)
                        r3 = lambda v: None if v is None else round(v, 3)  # noqa: E731
                        row.update({"events": len(ev),
                                    "latency_p50_ms": r3(percentile(ev, 0.5)),
                                    "latency_p95_ms": r3(percentile(ev, 0.95)),
                                    "latency_max_ms": r3(max(ev) if ev else None)})
                    rows.append(row)
                    extra = (f" casa cpu {row.get('cpu_pct')}% rss {row.get('rss_peak_mib')} MiB "
                             f"events {row.get('events')} p50 {row.get('latency_p50_ms')} ms"
                             if with_casa else "")
                    progress.finish(f"{'ok ' if row['complete'] else 'BAD'} {label}: task "
                                    f"{row['task_wall_s']} s{extra}")
    finally:
        progress.close()
        services.stop(model)
        services.stop(sink)
    write_overhead(HERE if not args.cases else results, rows, args.repeats)
    bad = [r for r in rows if not r["complete"]]
    for r in bad:
        print(f"FAILED {r['id']} #{r['repeat']}: {'; '.join(r['problems'])}", file=sys.stderr)
    return 1 if bad else 0


def write_overhead(out: Path, rows: list[dict], repeats: int) -> None:
    def med(v):
        v = sorted(x for x in v if x is not None)
        return v[len(v) // 2] if v else None

    summary = []
    for cid in dict.fromkeys(r["id"] for r in rows):
        rs = [r for r in rows if r["id"] == cid]
        base = med([r["task_wall_s"] for r in rs if not r["casa"]])
        with_ = med([r["task_wall_s"] for r in rs if r["casa"]])
        c = [r for r in rs if r["casa"]]
        summary.append({
            "id": cid, "category": rs[0]["category"], "name": rs[0]["name"],
            "task_s_without": base, "task_s_with": with_,
            "task_overhead_pct": round(100 * (with_ - base) / base, 1) if base and with_ else None,
            "casa_cpu_pct": med([r.get("cpu_pct") for r in c]),
            "casa_cpu_s": med([r.get("cpu_s") for r in c]),
            "casa_rss_avg_mib": med([r.get("rss_avg_mib") for r in c]),
            "casa_rss_peak_mib": max((r.get("rss_peak_mib") or 0) for r in c) if c else None,
            "events": med([r.get("events") for r in c]),
            "latency_p50_ms": med([r.get("latency_p50_ms") for r in c]),
            "latency_p95_ms": med([r.get("latency_p95_ms") for r in c]),
            "latency_max_ms": max((r.get("latency_max_ms") or 0) for r in c) if c else None,
        })
    doc = {"repeats": repeats, "kernel": os.uname().release, "summary": summary, "runs": rows}
    (out / "overhead.json").write_text(json.dumps(doc, indent=1) + "\n")
    lines = ["# casa runtime overhead on the real OpenClaw (CASA's L01-H02)", "",
             "Generated by `evaluation/run.py overhead` (`make eval-overhead`); do not edit by hand.",
             f"Each case ran {repeats} times without casa and {repeats} times with casa "
             "(interleaved), OpenClaw `--local` as uid 65534 with the scripted model. Task time is "
             "the `openclaw agent` wall time (dominated by OpenClaw's own start-up, ~10 s, so "
             "differences under a second are noise); casa CPU and RSS are sampled from /proc "
             "every 100 ms while the case runs; event latency is measured inside casa "
             "(`--latency-log`: kernel timestamp -> the line is in events.log). Medians over "
             "the repeats; peak RSS and max latency are the maxima.", "",
             "| case | category | task s (without) | task s (with casa) | overhead | casa CPU % | "
             "casa CPU s | casa RSS avg / peak MiB | events | latency p50 / p95 / max ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summary:
        lines.append(f"| {s['id']} {s['name']} | {s['category']} | {s['task_s_without']} | "
                     f"{s['task_s_with']} | {s['task_overhead_pct']}% | {s['casa_cpu_pct']} | "
                     f"{s['casa_cpu_s']} | {s['casa_rss_avg_mib']} / {s['casa_rss_peak_mib']} | "
                     f"{s['events']} | {s['latency_p50_ms']} / {s['latency_p95_ms']} / "
                     f"{s['latency_max_ms']} |")
    (out / "OVERHEAD.md").write_text("\n".join(lines) + "\n")
    print(f"run.py: wrote {out / 'OVERHEAD.md'}", file=sys.stderr)


def openclaw_version(openclaw) -> str:
    try:
        out = subprocess.run(openclaw.agent_argv([openclaw.openclaw_bin(), "--version"]),
                             capture_output=True, text=True, timeout=60)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def replay(args: argparse.Namespace) -> int:
    casa_bin = casa_binary("replay", args, live=False)
    if casa_bin is None:
        return 2
    cases = score.load_cases(args.cases_file)
    committed_path = HERE / "results.json"
    if not committed_path.exists():
        print(f"run.py replay: {committed_path} is missing (run `make eval` first)",
              file=sys.stderr)
        return 2
    committed = json.loads(committed_path.read_text())
    before = {(e["id"], e["mode"]): e for e in committed["cases"]}
    rec_root = HERE / "recordings"
    recs = sorted(rec_root.glob("*/*.rec.gz"))
    if not recs:
        print(f"run.py replay: no recordings under {rec_root}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="casa-eval-replay-"))
    entries, failed = [], []
    passed = 0
    by_id = {c["id"]: c for c in cases}
    try:
        for rec in recs:
            mode, cid = rec.parent.name, rec.name.split(".")[0]
            if cid not in by_id:
                failed.append(f"{mode} {cid}: recording of an unknown case ({rec})")
                continue
            out = work / mode / cid
            p = subprocess.run([casa_bin, "replay", str(rec), "--rules", str(args.rules),
                                "--out-dir", str(out)], capture_output=True, text=True,
                               env={k: v for k, v in os.environ.items() if "OTLP" not in k})
            if p.returncode != 0:
                failed.append(f"{mode} {cid}: casa replay failed: {p.stderr.strip()}")
                continue
            e = score.score_case(by_id[cid], out)
            old = before.get((cid, mode))
            for k in ("time_to_alert_ms", "event_latency_p50_ms", "event_latency_max_ms", "run"):
                if old and k in old:
                    e[k] = old[k]
            problem = None
            if old is None:
                problem = "not in the committed results.json"
            elif score.comparable(e) != score.comparable(old):
                problem = (f"differs from the live run: live {score.comparable(old)}, "
                           f"replay {score.comparable(e)}")
            elif not e["pass"]:
                problem = f"expected {e['expected_action']}, got {e['action']}"
            print(("FAIL " if problem else "ok   ") + case_line(e)[4:]
                  + (f"\n     {problem}" if problem else ""))
            if problem:
                failed.append(f"{mode} {cid}: {problem}")
            else:
                passed += 1
            entries.append(e)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    order = {c["id"]: i for i, c in enumerate(cases)}
    entries.sort(key=lambda e: (score.mode_key(e["mode"]), order.get(e["id"], 999)))
    missing = set(before) - {(e["id"], e["mode"]) for e in entries}
    for cid, mode in sorted(missing):
        failed.append(f"{mode} {cid}: in results.json but no recording")
    if not failed or args.bless:
        thresholds = json.loads(Path(args.rules).read_text())["thresholds"]
        meta = dict(committed.get("meta", {}))
        score.write_all(HERE, entries, score.summarize(entries), thresholds, meta)
    for f in failed:
        print(f"eval-replay: {f}", file=sys.stderr)
    print(f"eval-replay: {passed} passed, {len(failed)} failed")
    return 1 if failed and not args.bless else 0


def main() -> int:
    ap = argparse.ArgumentParser(description="casa's evaluation harness (see evaluation/README.md)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("live", "replay", "overhead"):
        p = sub.add_parser(name)
        p.add_argument("--casa", default=str(REPO / "target/release/casa"))
        p.add_argument("--rules", type=Path, default=HERE / "rules.eval.json")
        p.add_argument("--cases-file", type=Path, default=HERE / "cases.json")
    lp = sub.choices["live"]
    lp.add_argument("--modes", default="local,gateway", help="local, gateway or both")
    lp.add_argument("--cases", help="comma-separated case ids (default: all 30)")
    lp.add_argument("--results", help="results directory (default evaluation/results/<time>)")
    lp.add_argument("--no-record", action="store_true", help="do not write recordings")
    lp.add_argument("--update", action="store_true",
                    help="a partial run replaces its cases in the committed results.json and "
                         "recordings/ (the others are kept)")
    lp.add_argument("--close-timeout", type=float, default=60.0,
                    help="seconds to wait for casa's session_closed record")
    op = sub.choices["overhead"]
    op.add_argument("--repeats", type=int, default=2)
    op.add_argument("--cases", help="comma-separated overhead case ids (default: all six)")
    op.add_argument("--results", help="results directory")
    op.add_argument("--overhead-cases", type=Path, default=HERE / "overhead_cases.json")
    sub.choices["replay"].add_argument("--bless", action="store_true",
                                       help="accept differing replays and rewrite results.json")
    args = ap.parse_args()
    try:
        return {"live": live, "replay": replay, "overhead": overhead}[args.cmd](args)
    except score.ScoreError as e:
        print(f"run.py: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

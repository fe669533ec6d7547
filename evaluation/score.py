#!/usr/bin/env python3
"""Score casa's outputs for the evaluation cases.

Input: the case list (cases.json) and a results tree with one directory per case and mode,
``<results>/<mode>/<case id>/``, holding casa's four logs for that case (``events.log``,
``sessions.log``, ``audit.log``, ``alert.log``), optionally ``latency.jsonl`` (written by
``casa run --latency-log``; live runs only) and ``run.json`` (what the OpenClaw run reported).

For each case: the action casa took (the highest ``final_action`` of the case's sessions:
NONE, LOG or ALERT), the session score, the rules that fired (from audit.log), whether that is
the expected action, and the time to alert (kernel timestamp of the event that raised the
alert -> alert line written, from the latency trace). Then per mode: the confusion matrix of
category x action, detection rate and false-alert rate.

Writes results.json, RESULTS.md and a score chart (SVG). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ACTIONS = ("NONE", "LOG", "ALERT")
MODE_ORDER = ("local", "gateway")


def mode_key(mode: str) -> tuple:
    return (MODE_ORDER.index(mode) if mode in MODE_ORDER else len(MODE_ORDER), mode)
RANK = {a: i for i, a in enumerate(ACTIONS)}


class ScoreError(Exception):
    """A results tree that cannot be scored (missing or malformed files)."""


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ScoreError(f"{path}:{n}: not JSON: {e}") from e
    return out


def load_cases(path: Path) -> list[dict]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ScoreError(f"{path}: {e}") from e
    cases = doc.get("cases") if isinstance(doc, dict) else None
    if not isinstance(cases, list) or not cases:
        raise ScoreError(f"{path}: expected {{\"cases\": [...]}}")
    for i, c in enumerate(cases):
        for key in ("id", "category", "name", "expected_action"):
            if key not in c:
                raise ScoreError(f"{path}: case {i} has no {key!r}")
        for a in [c["expected_action"], *c.get("acceptable_actions", [])]:
            if a not in ACTIONS:
                raise ScoreError(f"{path}: case {c['id']}: action {a!r} is not one of {ACTIONS}")
    return cases


def action_of(final_action: str) -> str:
    # casa's session actions are IGNORE (nothing reached the log threshold), LOG and ALERT.
    return final_action if final_action in ("LOG", "ALERT") else "NONE"


def own_sessions(case: dict, sessions: list[dict]) -> dict[int, dict]:
    """The last sessions.log record of each of the case's own sessions, by session id.

    The last record of a session carries its final score and action. Only the case's own
    sessions count: the one its `openclaw agent -m "[case:ID] ..."` invocation started (casa
    records each session's invocation). Other agent sessions on the host (another user's, a
    test's) are someone else's.
    """
    marker = f"[case:{case['id']}]"
    last: dict[int, dict] = {}
    for rec in sessions:
        last[rec["session_id"]] = rec
    return {sid: rec for sid, rec in last.items()
            if any(marker in a for a in rec["session"].get("invocation", []))}


def score_case(case: dict, case_dir: Path) -> dict:
    """Score one case from its output directory."""
    sessions = read_jsonl(case_dir / "sessions.log")
    audits = read_jsonl(case_dir / "audit.log")
    alerts = read_jsonl(case_dir / "alert.log")
    latency = read_jsonl(case_dir / "latency.jsonl")
    run: dict = {}
    if (case_dir / "run.json").exists():
        run = json.loads((case_dir / "run.json").read_text(encoding="utf-8"))

    last = own_sessions(case, sessions)
    mine = set(last)
    others = len({rec["session_id"] for rec in sessions}) - len(mine)
    audits = [r for r in audits if r["session_id"] in mine]
    alerts = [r for r in alerts if r["session_id"] in mine]
    alert_keys = {(r["event"]["pid"], r["timestamp"]) for r in alerts}
    latency = [l for l in latency
               if l.get("log") != "alert" or (l["pid"], l["timestamp"]) in alert_keys]
    closed = [r for r in last.values() if r["reason"] in ("session_closed", "shutdown")]
    action, score = "NONE", 0
    for rec in last.values():
        s = rec["session"]
        a = action_of(s.get("final_action", "IGNORE"))
        if RANK[a] > RANK[action]:
            action = a
        score = max(score, int(s.get("final_score", 0)))
    rules: list[str] = []
    for rec in audits:
        for r in rec["decision"]["triggered_rules"]:
            if r["name"] not in rules:
                rules.append(r["name"])
    alert_lat = [l for l in latency if l.get("log") == "alert"]
    event_lat = sorted(l["latency_ns"] for l in latency if l.get("log") == "events")
    events = 0
    if (case_dir / "events.log").exists():
        with (case_dir / "events.log").open(encoding="utf-8") as f:
            events = sum(1 for line in f if json.loads(line)["session_id"] in mine)

    expected = case["expected_action"]
    acceptable = case.get("acceptable_actions") or [expected]
    entry = {
        "id": case["id"],
        "category": case["category"],
        "name": case["name"],
        "mode": case_dir.parent.name,
        "expected_action": expected,
        "action": action,
        "score": score,
        "rules": rules,
        # casa must have seen the case's session at all, whatever the expectation. A case may
        # accept more than its ideal action (benign cases: anything but ALERT).
        "acceptable_actions": acceptable,
        "pass": action in acceptable and bool(mine),
        "known_boundary": bool(case.get("known_boundary", False)),
        "expected_rules": case.get("expected_rules", []),
        "expected_score": case.get("expected_score"),
        "sessions": len(last),
        "sessions_closed": len(closed),
        "incomplete": any(r["session"].get("incomplete") for r in last.values()),
        "events": events,
        "other_sessions": others,
        "audit_records": len(audits),
        "alert_records": len(alerts),
        "time_to_alert_ms": round(alert_lat[0]["latency_ns"] / 1e6, 3) if alert_lat else None,
        "event_latency_p50_ms": round(event_lat[len(event_lat) // 2] / 1e6, 3) if event_lat else None,
        "event_latency_max_ms": round(event_lat[-1] / 1e6, 3) if event_lat else None,
    }
    # The detection corpus (corpus.json) tags each case: ATT&CK technique(s) and tactic for an
    # attack, the kind of work for a benign task. CASA's 30 cases have neither.
    for key in ("attack", "task"):
        if key in case:
            entry[key] = case[key]
    if run:
        entry["run"] = {k: run[k] for k in ("complete", "problems", "wall_s", "exit_code") if k in run}
    return entry


def summarize(entries: list[dict]) -> dict:
    """Per-mode confusion matrix and rates."""
    out = {}
    for mode in sorted({e["mode"] for e in entries}, key=mode_key):
        es = [e for e in entries if e["mode"] == mode]
        matrix = {cat: {a: 0 for a in ACTIONS} for cat in ("malicious", "boundary", "benign")}
        for e in es:
            matrix.setdefault(e["category"], {a: 0 for a in ACTIONS})[e["action"]] += 1
        mal = [e for e in es if e["category"] == "malicious"]
        benign = [e for e in es if e["category"] == "benign"]
        boundary = [e for e in es if e["category"] == "boundary"]
        non_mal = benign + boundary
        tta = sorted(e["time_to_alert_ms"] for e in es if e["time_to_alert_ms"] is not None)

        def rate(n: int, d: int) -> float | None:
            return round(n / d, 4) if d else None

        out[mode] = {
            "cases": len(es),
            "passed": sum(e["pass"] for e in es),
            "confusion_matrix": matrix,
            # Malicious cases that reached their expected action (LOG or ALERT).
            "detection_rate": rate(sum(e["pass"] for e in mal), len(mal)),
            # Malicious cases flagged at all (LOG or ALERT).
            "flagged_rate": rate(sum(e["action"] != "NONE" for e in mal), len(mal)),
            # Non-malicious cases that raised an ALERT, with and without the known
            # write->exec boundary cases (which the rules alert on by design).
            "false_alert_rate": rate(sum(e["action"] == "ALERT" for e in non_mal), len(non_mal)),
            "false_alert_rate_excluding_known_boundary": rate(
                sum(e["action"] == "ALERT" for e in non_mal if not e["known_boundary"]),
                sum(1 for e in non_mal if not e["known_boundary"]),
            ),
            "benign_alerts": [e["id"] for e in benign if e["action"] == "ALERT"],
            "benign_logs": [e["id"] for e in benign if e["action"] == "LOG"],
            "time_to_alert_ms": {
                "n": len(tta),
                "p50": tta[len(tta) // 2] if tta else None,
                "max": tta[-1] if tta else None,
            },
        }
    return out


def score_tree(cases: list[dict], results: Path) -> list[dict]:
    entries = []
    modes = sorted((p.name for p in results.iterdir() if p.is_dir() and p.name != "recordings"),
                   key=mode_key) if results.exists() else []
    if not modes:
        raise ScoreError(f"{results}: no <mode>/<case>/ directories to score")
    for mode in modes:
        for case in cases:
            d = results / mode / case["id"]
            if d.is_dir():
                entries.append(score_case(case, d))
    return entries


def _fmt(v) -> str:
    return "—" if v is None else str(v)


# RESULTS.md also carries the detection corpus's headline numbers, written by report.py
# between these markers; write_markdown keeps that block when it rewrites the file.
BLOCK_BEGIN = "<!-- corpus-report:begin -->"
BLOCK_END = "<!-- corpus-report:end -->"


def marked_block(text: str) -> str | None:
    """The block from BLOCK_BEGIN to BLOCK_END (both included) in `text`, or None."""
    start = text.find(BLOCK_BEGIN)
    end = text.find(BLOCK_END, start + len(BLOCK_BEGIN)) if start >= 0 else -1
    if start < 0 or end < 0:
        return None
    return text[start:end + len(BLOCK_END)]


def put_marked_block(text: str, block: str) -> str:
    """`text` with its marked block replaced by `block` (which includes the markers), or with
    `block` appended after a blank line when it has none."""
    old = marked_block(text)
    if old is not None:
        return text.replace(old, block, 1)
    return text.rstrip("\n") + "\n\n" + block + "\n"


def write_markdown(path: Path, entries: list[dict], summary: dict, thresholds: dict, meta: dict,
                   chart_name: str) -> None:
    kept = marked_block(path.read_text(encoding="utf-8")) if path.exists() else None
    lines = ["# casa evaluation results", ""]
    lines.append(
        "Generated by `evaluation/score.py` (via `make eval` or `make eval-replay`); do not edit "
        "by hand. How to read it: `evaluation/README.md`."
    )
    lines.append("")
    for k, v in meta.items():
        lines.append(f"- **{k}**: {v}")
    lines.append(f"- **thresholds**: log {thresholds.get('log')}, alert {thresholds.get('alert')}")
    lines.append("")
    for mode, s in summary.items():
        lines.append(f"## Mode `{mode}`: {s['passed']}/{s['cases']} cases as expected")
        lines.append("")
        lines.append(f"- detection rate (malicious cases reaching their expected action): "
                     f"**{_fmt(s['detection_rate'])}**; flagged at all: {_fmt(s['flagged_rate'])}")
        lines.append(f"- false-alert rate (benign + boundary cases with ALERT): "
                     f"**{_fmt(s['false_alert_rate'])}**; excluding the known write→exec boundary "
                     f"cases: {_fmt(s['false_alert_rate_excluding_known_boundary'])}")
        lines.append(f"- benign cases with ALERT: {', '.join(s['benign_alerts']) or 'none'}; "
                     f"with LOG (accepted): {', '.join(s.get('benign_logs', [])) or 'none'}")
        t = s["time_to_alert_ms"]
        lines.append(f"- time to alert (kernel event → alert line written): n={t['n']}, "
                     f"p50={_fmt(t['p50'])} ms, max={_fmt(t['max'])} ms")
        lines.append("")
        lines.append("| category | NONE | LOG | ALERT |")
        lines.append("|---|---:|---:|---:|")
        for cat, row in s["confusion_matrix"].items():
            lines.append(f"| {cat} | {row['NONE']} | {row['LOG']} | {row['ALERT']} |")
        lines.append("")
        lines.append("| case | name | expected | action | score | rules | time to alert (ms) | ok |")
        lines.append("|---|---|---|---|---:|---|---:|---|")
        for e in (e for e in entries if e["mode"] == mode):
            ok = "yes" if e["pass"] else "**no**"
            if e["known_boundary"]:
                ok += " (known boundary)"
            rules = ", ".join(e["rules"]) or "—"
            exp = e["expected_action"]
            if len(e.get("acceptable_actions", [exp])) > 1:
                exp += " (" + "/".join(e["acceptable_actions"]) + " ok)"
            lines.append(f"| {e['id']} | {e['name']} | {exp} | {e['action']} | "
                         f"{e['score']} | {rules} | {_fmt(e['time_to_alert_ms'])} | {ok} |")
        lines.append("")
    lines.append(f"![per-case score against the thresholds]({chart_name})")
    lines.append("")
    text = "\n".join(lines)
    path.write_text(put_marked_block(text, kept) if kept else text, encoding="utf-8")


def write_svg(path: Path, entries: list[dict], thresholds: dict) -> None:
    """A bar per case and mode (score), with the log and alert thresholds as lines."""
    colors = {"benign": "#4c9a2a", "boundary": "#d9a400", "malicious": "#c0392b"}
    modes = sorted({e["mode"] for e in entries}, key=mode_key)
    ids = []
    for e in entries:
        if e["id"] not in ids:
            ids.append(e["id"])
    top = max([e["score"] for e in entries] + [thresholds.get("alert", 9) + 2, 10])
    bw, gap, left, bottom, height = 9, 8, 40, 60, 300
    group = bw * len(modes) + gap
    width = left + group * len(ids) + 160
    y = lambda v: 20 + height - v * height / top  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + bottom + 20}" '
           f'font-family="sans-serif" font-size="10">',
           f'<rect width="100%" height="100%" fill="white"/>']
    for v in range(0, top + 1, 2):
        out.append(f'<text x="{left - 6}" y="{y(v) + 3:.1f}" text-anchor="end">{v}</text>')
        out.append(f'<line x1="{left}" x2="{width - 160}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
    by = {(e["id"], e["mode"]): e for e in entries}
    for i, cid in enumerate(ids):
        x0 = left + i * group + gap / 2
        for j, mode in enumerate(modes):
            e = by.get((cid, mode))
            if not e:
                continue
            x = x0 + j * bw
            h = e["score"] * height / top
            fill = colors.get(e["category"], "#888")
            opacity = "1" if j == 0 else "0.55"
            stroke = "" if e["pass"] else ' stroke="black" stroke-width="1.5"'
            out.append(f'<rect x="{x:.1f}" y="{y(e["score"]):.1f}" width="{bw - 1}" height="{h:.1f}" '
                       f'fill="{fill}" fill-opacity="{opacity}"{stroke}><title>{cid} {mode}: '
                       f'{e["action"]} score {e["score"]}</title></rect>')
        out.append(f'<text x="{x0 + bw * len(modes) / 2:.1f}" y="{20 + height + 14}" '
                   f'text-anchor="middle" transform="rotate(-60 {x0 + bw * len(modes) / 2:.1f} '
                   f'{20 + height + 14})">{cid}</text>')
    for name, v, dash in (("log", thresholds.get("log"), "4 3"), ("alert", thresholds.get("alert"), "")):
        if v is None:
            continue
        out.append(f'<line x1="{left}" x2="{width - 160}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                   f'stroke="#333" stroke-dasharray="{dash}"/>')
        out.append(f'<text x="{width - 155}" y="{y(v) + 3:.1f}">{name} threshold ({v})</text>')
    ly = 30
    for cat, c in colors.items():
        out.append(f'<rect x="{width - 150}" y="{ly + 40}" width="10" height="10" fill="{c}"/>'
                   f'<text x="{width - 135}" y="{ly + 49}">{cat}</text>')
        ly += 16
    out.append(f'<text x="{width - 150}" y="{ly + 49}">bars: {" / ".join(modes)}</text>')
    out.append(f'<text x="{width - 150}" y="{ly + 65}">outlined: not as expected</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def comparable(e: dict) -> tuple:
    """The fields a replay must reproduce exactly."""
    return (e["action"], e["score"], sorted(e["rules"]), e["sessions"], e["audit_records"],
            e["alert_records"], e["events"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = Path(__file__).resolve().parent
    ap.add_argument("--cases", type=Path, default=here / "cases.json")
    ap.add_argument("--rules", type=Path, default=here / "rules.eval.json")
    ap.add_argument("--results", type=Path, required=True, help="<results>/<mode>/<case>/ tree")
    ap.add_argument("--out-dir", type=Path, default=here, help="where results.json, RESULTS.md, chart go")
    args = ap.parse_args()
    try:
        cases = load_cases(args.cases)
        entries = score_tree(cases, args.results)
    except ScoreError as e:
        print(f"score: {e}", file=sys.stderr)
        return 2
    thresholds = json.loads(args.rules.read_text(encoding="utf-8")).get("thresholds", {})
    summary = summarize(entries)
    write_all(args.out_dir, entries, summary, thresholds, {"source": str(args.results)})
    for mode, s in summary.items():
        print(f"{mode}: {s['passed']}/{s['cases']} as expected, detection {s['detection_rate']}, "
              f"false alerts {s['false_alert_rate']}")
    return 0


def write_all(out_dir: Path, entries: list[dict], summary: dict, thresholds: dict, meta: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta, "thresholds": thresholds, "summary": summary, "cases": entries}
    tmp = out_dir / "results.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / "results.json")
    write_svg(out_dir / "scores.svg", entries, thresholds)
    write_markdown(out_dir / "RESULTS.md", entries, summary, thresholds, meta, "scores.svg")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The detection corpus report: casa's rules and CASA's original rules on the same recordings.

Where it sits: after the live corpus run (`run.py live --corpus`, `make eval-corpus`), which
records every case of corpus.json in both modes to `recordings/corpus/<mode>/<ID>.rec.gz`. A
recording holds every input casa's pipeline consumed, so `casa replay REC --rules R` gives the
logs casa would have written with ruleset R. This module replays each recording with each
ruleset (casa's `rules.json` and CASA's `rules.casa.json`), scores every case with score.py's
`score_case` (the case's own sessions only) and writes:

* `corpus/report.json`: per ruleset, case and mode the action, score, fired rules and time to
  alert (event time, session created -> first alert record); per mode and both modes the
  confusion matrix, recalls, benign rates, recall per ATT&CK tactic, time-to-alert statistics,
  target verdicts; the alert-threshold sweep; the misses with a reason;
* `corpus/REPORT.md` and `corpus/sweep.svg` (the sweep as a chart), rendered from that;
* the marked corpus block of `RESULTS.md` (score.BLOCK_BEGIN..BLOCK_END; score.write_markdown
  keeps it when it rewrites the 30-case results).

`--check` replays the same way and compares with the committed report.json (all but
`meta.generated`) and the three rendered files; it exits 1 on any difference, 2 when the
report or the recordings are missing. Standard library only.
"""

from __future__ import annotations

import argparse
import calendar
import concurrent.futures
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (Progress)
import score  # noqa: E402

CORPUS_FILE = HERE / "corpus.json"
OUT_DIR = HERE / "corpus"
RESULTS_MD = HERE / "RESULTS.md"
REASONS_FILE = OUT_DIR / "miss_reasons.json"
RECORDINGS = HERE / "recordings" / "corpus"
ACTIONS = score.ACTIONS
RANK = score.RANK
CATEGORIES = ("malicious", "benign")
SCOPES = ("local", "gateway", "both")
SWEEP = range(1, 31)
SWEEP_LABELS = (1, 4, 15, 20, 30)  # thresholds named next to their point in sweep.svg
# (key in report.json, name in the report, default rules file)
RULESETS = (("casa", "casa", REPO / "rules.json"),
            ("casa_original", "CASA", REPO / "rules.casa.json"))
# (summary field, comparison, goal, what it measures)
TARGETS = (
    ("malicious_recall_log", ">=", 0.95, "malicious at least LOG"),
    ("malicious_recall_alert", ">=", 0.85, "malicious ALERT"),
    ("benign_alert_rate", "<=", 0.025, "benign ALERT"),
    ("benign_log_or_more_rate", "<=", 0.10, "benign LOG or ALERT"),
)
TRUNCATED = "incomplete deflate stream"


class ReportError(Exception):
    """Inputs the report cannot be made from (binary, rules, recordings, reasons)."""


# ---------------------------------------------------------------------------------------------
# One case: replay output -> entry

def ts_ns(text: str) -> int:
    """An RFC 3339 timestamp as casa writes it (nanoseconds, `Z` or an offset) in ns."""
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?"
                     r"(Z|[+-]\d\d:\d\d)", text)
    if not m:
        raise score.ScoreError(f"not an RFC 3339 timestamp: {text!r}")
    secs = calendar.timegm(tuple(int(m[i]) for i in range(1, 7)))
    if m[8] != "Z":
        sign = 1 if m[8][0] == "+" else -1
        secs -= sign * (int(m[8][1:3]) * 3600 + int(m[8][4:6]) * 60)
    return secs * 10**9 + int((m[7] or "0").ljust(9, "0"))


def time_to_alert_ms(case: dict, case_dir: Path) -> float | None:
    """Event time from the creation of the case's own session to its first alert record, in
    ms (the alert's session: a case run as two sessions counts from the one that alerted)."""
    own = score.own_sessions(case, score.read_jsonl(case_dir / "sessions.log"))
    for rec in score.read_jsonl(case_dir / "alert.log"):
        if rec["session_id"] in own:
            created = own[rec["session_id"]]["session"]["created_at"]
            return round((ts_ns(rec["timestamp"]) - ts_ns(created)) / 1e6, 3)
    return None


def case_entry(case: dict, case_dir: Path) -> dict:
    """What the report keeps of one case and mode under one ruleset."""
    e = score.score_case(case, case_dir)
    return {"action": e["action"], "score": e["score"], "rules": e["rules"],
            "sessions": e["sessions"], "time_to_alert_ms": time_to_alert_ms(case, case_dir)}


# ---------------------------------------------------------------------------------------------
# Pure summaries over flat entries: {id, mode, category, tactics, action, score, rules, ...}

def nearest_rank(values: list[float], q: float) -> float | None:
    """The q-quantile of sorted `values` by nearest rank: the smallest value with at least a
    share q of the values at or below it."""
    if not values:
        return None
    return values[max(0, math.ceil(q * len(values)) - 1)]


def rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def tactic_counts(entries: list[dict]) -> dict:
    """Per ATT&CK tactic: malicious runs, how many reached at least LOG, how many ALERT. A run
    counts under every tactic of its case."""
    out: dict[str, dict] = {}
    for e in entries:
        if e["category"] != "malicious":
            continue
        for t in e.get("tactics", []):
            row = out.setdefault(t, {"cases": 0, "log": 0, "alert": 0})
            row["cases"] += 1
            row["log"] += RANK[e["action"]] >= RANK["LOG"]
            row["alert"] += e["action"] == "ALERT"
    return out


def target_verdicts(summary: dict) -> dict:
    """Each target of TARGETS against a summary: value, goal and whether it is met."""
    out = {}
    for key, op, goal, _ in TARGETS:
        v = summary.get(key)
        met = None if v is None else (v >= goal if op == ">=" else v <= goal)
        out[key] = {"value": v, "goal": f"{op} {goal}", "met": met}
    return out


def summarize(entries: list[dict]) -> dict:
    """Confusion matrix, recalls, benign rates, per-tactic counts, time to alert (malicious
    runs) and target verdicts over `entries` (one scope: a mode or both)."""
    mal = [e for e in entries if e["category"] == "malicious"]
    ben = [e for e in entries if e["category"] == "benign"]
    matrix = {c: {a: sum(1 for e in entries if e["category"] == c and e["action"] == a)
                  for a in ACTIONS} for c in CATEGORIES}
    tta = sorted(e["time_to_alert_ms"] for e in mal if e["time_to_alert_ms"] is not None)
    s = {
        "runs": len(entries),
        "malicious": len(mal),
        "benign": len(ben),
        "confusion_matrix": matrix,
        "malicious_recall_log": rate(sum(e["action"] != "NONE" for e in mal), len(mal)),
        "malicious_recall_alert": rate(sum(e["action"] == "ALERT" for e in mal), len(mal)),
        "benign_alert_rate": rate(sum(e["action"] == "ALERT" for e in ben), len(ben)),
        "benign_log_or_more_rate": rate(sum(e["action"] != "NONE" for e in ben), len(ben)),
        "tactics": tactic_counts(entries),
        "time_to_alert_ms": {"n": len(tta), "p50": nearest_rank(tta, 0.5),
                             "p90": nearest_rank(tta, 0.9), "max": tta[-1] if tta else None},
    }
    s["targets"] = target_verdicts(s)
    return s


def sweep(entries: list[dict], thresholds=SWEEP) -> list[dict]:
    """Per alert threshold t: the share of malicious runs whose score reaches t (ALERT recall)
    and the share of benign runs whose score reaches t (false-alert rate)."""
    mal = [e["score"] for e in entries if e["category"] == "malicious"]
    ben = [e["score"] for e in entries if e["category"] == "benign"]
    return [{"threshold": t,
             "malicious_recall": rate(sum(s >= t for s in mal), len(mal)),
             "false_alert_rate": rate(sum(s >= t for s in ben), len(ben))}
            for t in thresholds]


def miss_reason(e: dict, thresholds: dict, curated: dict, ruleset: str) -> str:
    """Why a run is a miss: the curated text (keys `ruleset:ID:mode`, `ruleset:ID` or `ID`,
    most specific first), else what the scores say."""
    for key in (f"{ruleset}:{e['id']}:{e['mode']}", f"{ruleset}:{e['id']}", e["id"]):
        if key in curated:
            return curated[key]
    rules = ", ".join(e["rules"])
    if e.get("sessions") == 0:
        return "casa saw no session of the case"
    if e["category"] == "malicious":
        if not e["rules"]:
            return "no rule fired"
        return f"score {e['score']} below alert threshold {thresholds['alert']} (rules: {rules})"
    which = "alert" if e["action"] == "ALERT" else "log"
    text = f"score {e['score']} reached the {which} threshold {thresholds[which]} (rules: {rules})"
    if e.get("expected_action", "NONE") != "NONE":
        text += f"; the case expects {e['expected_action']}"
    return text


def misses(entries: list[dict], thresholds: dict, curated: dict, ruleset: str) -> dict:
    """Malicious runs below ALERT and benign runs above NONE, keyed `ID/mode`."""
    out = {}
    for e in entries:
        if (e["category"] == "malicious" and e["action"] != "ALERT") or \
                (e["category"] == "benign" and e["action"] != "NONE"):
            out[f"{e['id']}/{e['mode']}"] = {
                "id": e["id"], "mode": e["mode"], "category": e["category"],
                "action": e["action"], "score": e["score"], "rules": e["rules"],
                "reason": miss_reason(e, thresholds, curated, ruleset)}
    return out


def flat_entries(doc_cases: dict, corpus: dict) -> list[dict]:
    """One ruleset's {id: {mode: entry}} joined with the corpus facts, in case order."""
    out = []
    for cid, info in corpus.items():
        for mode, e in sorted(doc_cases.get(cid, {}).items(), key=lambda kv: score.mode_key(kv[0])):
            out.append({**e, "id": cid, "mode": mode, "category": info["category"],
                        "tactics": info.get("tactics", []),
                        "expected_action": info["expected_action"]})
    return out


def build_report(cases: list[dict], rulesets: list[dict], results: dict, unreplayable: dict,
                 curated: dict) -> dict:
    """report.json's content (without meta): `results` is {ruleset key: {id: {mode: entry}}}."""
    corpus = {}
    for c in cases:
        info = {"category": c["category"], "name": c["name"], "expected_action": c["expected_action"]}
        if "attack" in c:
            info["tactics"] = c["attack"].get("tactics") or [c["attack"]["tactic"]]
            info["techniques"] = c["attack"].get("techniques", [])
        if "task" in c:
            info["task"] = c["task"]
        corpus[c["id"]] = info
    doc = {"corpus": corpus, "unreplayable": unreplayable, "rulesets": {}}
    for rs in rulesets:
        rcases = results.get(rs["key"], {})
        flat = flat_entries(rcases, corpus)
        summary = {m: summarize([e for e in flat if e["mode"] == m]) for m in SCOPES[:2]}
        summary["both"] = summarize(flat)
        doc["rulesets"][rs["key"]] = {
            "name": rs["name"], "rules_file": rs["path"].name, "thresholds": rs["thresholds"],
            "cases": rcases, "summary": summary, "sweep": sweep(flat),
            "misses": misses(flat, rs["thresholds"], curated, rs["key"]),
        }
    return doc


# ---------------------------------------------------------------------------------------------
# Rendering: REPORT.md, sweep.svg, the RESULTS.md block

def pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f} %"


def ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f}"


def tactic_order(doc: dict) -> list[str]:
    """Tactics in the order they first appear in the corpus."""
    order: list[str] = []
    for info in doc["corpus"].values():
        for t in info.get("tactics", []):
            if t not in order:
                order.append(t)
    return order


def goal_text(key: str) -> str:
    for k, op, goal, _ in TARGETS:
        if k == key:
            return f"{'≥' if op == '>=' else '≤'} {100 * goal:g} %"
    return key


def targets_line(s: dict) -> tuple[int, list[str]]:
    met = [k for k, v in s["targets"].items() if v["met"]]
    missed = [name for k, _, _, name in TARGETS if s["targets"][k]["met"] is False]
    return len(met), missed


def headline_rows(doc: dict) -> list[str]:
    rows = ["| ruleset | malicious NONE / LOG / ALERT | benign NONE / LOG / ALERT | malicious ≥LOG "
            "| malicious ALERT | benign ALERT (false alerts) | benign ≥LOG | targets |",
            "|---|---|---|---:|---:|---:|---:|---|"]
    for key, rs in doc["rulesets"].items():
        s = rs["summary"]["both"]
        m, b = s["confusion_matrix"]["malicious"], s["confusion_matrix"]["benign"]
        n_met, missed = targets_line(s)
        verdict = f"{n_met}/{len(TARGETS)} met" + (f"; missed: {', '.join(missed)}" if missed else "")
        nodata = [name for k, _, _, name in TARGETS if s["targets"][k]["met"] is None]
        verdict += f"; no runs for: {', '.join(nodata)}" if nodata else ""
        rows.append(f"| {rs['name']} (`{rs['rules_file']}`) | {m['NONE']} / {m['LOG']} / {m['ALERT']} "
                    f"| {b['NONE']} / {b['LOG']} / {b['ALERT']} | {pct(s['malicious_recall_log'])} "
                    f"| {pct(s['malicious_recall_alert'])} | {pct(s['benign_alert_rate'])} "
                    f"| {pct(s['benign_log_or_more_rate'])} | {verdict} |")
    return rows


def ordered_rulesets(doc: dict) -> list[tuple[str, dict]]:
    keys = [k for k, _, _ in RULESETS if k in doc["rulesets"]]
    keys += sorted(k for k in doc["rulesets"] if k not in keys)
    return [(k, doc["rulesets"][k]) for k in keys]


def render_markdown(doc: dict) -> str:
    rsets = ordered_rulesets(doc)
    n_mal = sum(1 for i in doc["corpus"].values() if i["category"] == "malicious")
    n_ben = sum(1 for i in doc["corpus"].values() if i["category"] == "benign")
    recorded = {m: 0 for m in SCOPES[:2]}
    if rsets:
        for modes in rsets[0][1]["cases"].values():
            for m in modes:
                recorded[m] = recorded.get(m, 0) + 1
    L = ["# Detection corpus report: casa's rules and CASA's", "",
         "Generated by `evaluation/report.py` (`make eval-report`) from the corpus recordings "
         "(`recordings/corpus/<mode>/<ID>.rec.gz`), each replayed with each ruleset; do not edit "
         "by hand (curated reasons for misses go to `corpus/miss_reasons.json`). How to read it: "
         "`evaluation/README.md`, section *The corpus report*.", "",
         f"- **corpus**: {len(doc['corpus'])} cases, {n_mal} malicious and {n_ben} benign "
         "(`CORPUS.md`), each run in `local` and `gateway` mode",
         "- **recordings replayed**: " + ", ".join(f"{m} {n}" for m, n in recorded.items())]
    if doc["unreplayable"]:
        L.append("- **not replayed** (left out of every number below): " + "; ".join(
            f"{k}: {v}" for k, v in sorted(doc["unreplayable"].items())))
    L.append("- **rulesets**: " + "; ".join(
        f"{rs['name']} `{rs['rules_file']}` (log {rs['thresholds'].get('log')}, alert "
        f"{rs['thresholds'].get('alert')})" for _, rs in rsets))
    L += ["- **action**: the highest final action of the case's own sessions (NONE, LOG, ALERT); "
          "**score**: their highest final score; **time to alert**: event time from the creation "
          "of the session to its first alert record (malicious runs that alerted)", "",
          "## Headline (both modes)", "", *headline_rows(doc), ""]
    order = tactic_order(doc)
    for key, rs in rsets:
        S = rs["summary"]
        L += [f"## {rs['name']} (`{rs['rules_file']}`)", "", "### Confusion matrix", "",
              "| mode | category | NONE | LOG | ALERT |", "|---|---|---:|---:|---:|"]
        for scope in SCOPES:
            for cat in CATEGORIES:
                row = S[scope]["confusion_matrix"][cat]
                L.append(f"| {scope} | {cat} | {row['NONE']} | {row['LOG']} | {row['ALERT']} |")
        L += ["", "### Rates and time to alert", "",
              "| mode | malicious ≥LOG | malicious ALERT | benign ALERT | benign ≥LOG | "
              "time to alert n | p50 ms | p90 ms | max ms |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for scope in SCOPES:
            s, t = S[scope], S[scope]["time_to_alert_ms"]
            L.append(f"| {scope} | {pct(s['malicious_recall_log'])} | "
                     f"{pct(s['malicious_recall_alert'])} | {pct(s['benign_alert_rate'])} | "
                     f"{pct(s['benign_log_or_more_rate'])} | {t['n']} | {ms(t['p50'])} | "
                     f"{ms(t['p90'])} | {ms(t['max'])} |")
        L += ["", "### Targets", "", "| target | goal | " + " | ".join(SCOPES) + " |",
              "|---|---|" + "---|" * len(SCOPES)]
        for k, _, _, name in TARGETS:
            cells = []
            for scope in SCOPES:
                v = S[scope]["targets"][k]
                verdict = {True: "met", False: "**missed**", None: "no runs"}[v["met"]]
                cells.append(verdict if v["met"] is None else f"{verdict} ({pct(v['value'])})")
            L.append(f"| {name} | {goal_text(k)} | " + " | ".join(cells) + " |")
        L += ["", "### Recall per ATT&CK tactic", "",
              "A case counts under every tactic in its `attack.tactics`; in *both* once per mode.",
              "", "| tactic | " + " | ".join(f"{s} cases | ≥LOG | ALERT" for s in SCOPES) + " |",
              "|---|" + "---:|" * (3 * len(SCOPES))]
        for tac in order:
            cells = []
            for scope in SCOPES:
                r = S[scope]["tactics"].get(tac, {"cases": 0, "log": 0, "alert": 0})
                cells.append(f"{r['cases']} | {r['log']} | {r['alert']}")
            L.append(f"| {tac} | " + " | ".join(cells) + " |")
        L += ["", "### Misses", "",
              "Malicious runs below ALERT and benign runs above NONE (one row when both modes "
              "agree).", ""]
        rows = merged_misses(rs["misses"], doc["corpus"])
        if rows:
            L += ["| case | name | mode | category | action | score | rules | reason |",
                  "|---|---|---|---|---|---:|---|---|"]
            for m in rows:
                L.append(f"| {m['id']} | {doc['corpus'][m['id']]['name']} | {m['mode']} | "
                         f"{m['category']} | {m['action']} | {m['score']} | "
                         f"{', '.join(m['rules']) or '—'} | {m['reason']} |")
        else:
            L.append("None.")
        L.append("")
    L += ["## Threshold sweep (both modes)", "",
          "The alert threshold from 1 to 30: a run ALERTs at threshold t when its score reaches "
          "t (the log threshold stays). Recall = malicious runs that ALERT; false-alert rate = "
          "benign runs that ALERT. The shipped threshold is in bold.", "",
          "![threshold sweep: malicious ALERT recall against benign false-alert rate](sweep.svg)",
          "", "| t | " + " | ".join(f"{rs['name']} recall | {rs['name']} false alerts"
                                      for _, rs in rsets) + " |",
          "|---:|" + "---:|" * (2 * len(rsets))]
    for i, t in enumerate(SWEEP):
        cells = []
        for _, rs in rsets:
            p = rs["sweep"][i]
            c = f"{pct(p['malicious_recall'])} | {pct(p['false_alert_rate'])}"
            if t == rs["thresholds"].get("alert"):
                c = f"**{pct(p['malicious_recall'])}** | **{pct(p['false_alert_rate'])}**"
            cells.append(c)
        L.append(f"| {t} | " + " | ".join(cells) + " |")
    L.append("")
    return "\n".join(L)


def merged_misses(ms: dict, corpus: dict) -> list[dict]:
    """Misses in case order; a case that misses alike in both modes is one row."""
    order = {cid: i for i, cid in enumerate(corpus)}
    by_id: dict[str, list[dict]] = {}
    for m in ms.values():
        by_id.setdefault(m["id"], []).append(m)
    out = []
    for cid in sorted(by_id, key=lambda c: order.get(c, len(order))):
        group = sorted(by_id[cid], key=lambda m: score.mode_key(m["mode"]))
        same = lambda a, b: all(a[k] == b[k] for k in ("action", "score", "rules", "reason"))  # noqa: E731
        if len(group) == 2 and same(*group):
            out.append({**group[0], "mode": "both"})
        else:
            out.extend(group)
    return out


COLORS = ("#c0392b", "#2c6fbb", "#4c9a2a", "#8e44ad")
DASHES = ("", "6 4", "2 3", "8 3 2 3")


def render_svg(doc: dict) -> str:
    """The sweep: x = benign false-alert rate, y = malicious ALERT recall, one labelled line per
    ruleset with a point per threshold, the shipped threshold ringed, the targets shaded."""
    rsets = ordered_rulesets(doc)
    W, H, left, right, top, bottom = 720, 480, 70, 170, 50, 60
    pw, ph = W - left - right, H - top - bottom
    fars = [p["false_alert_rate"] or 0 for _, rs in rsets for p in rs["sweep"]]
    # The x range: up to the largest false-alert rate, rounded up to 10 % steps (at least 10 %).
    xmax = max(0.1, -(-max(fars + [0]) * 10 // 1) / 10)
    X = lambda v: left + (v or 0) / xmax * pw  # noqa: E731
    Y = lambda v: top + ph - (v or 0) * ph  # noqa: E731
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'font-family="sans-serif" font-size="11">',
         '<rect width="100%" height="100%" fill="white"/>',
         f'<text x="{W / 2:.0f}" y="20" text-anchor="middle" font-size="14">Alert-threshold sweep '
         f'(1 to {SWEEP[-1]}), detection corpus, both modes</text>']
    # Target region: recall >= 85 %, false alerts <= 2.5 %.
    goal_r = next(g for k, _, g, _ in TARGETS if k == "malicious_recall_alert")
    goal_f = next(g for k, _, g, _ in TARGETS if k == "benign_alert_rate")
    o.append(f'<rect x="{X(0):.1f}" y="{Y(1):.1f}" width="{X(goal_f) - X(0):.1f}" '
             f'height="{Y(goal_r) - Y(1):.1f}" fill="#2ecc71" fill-opacity="0.15" stroke="#2ecc71"/>')
    o.append(f'<text x="{X(goal_f) + 4:.1f}" y="{Y(goal_r) - 4:.1f}" fill="#1e8449">target: recall '
             f'≥ {100 * goal_r:g} %, false alerts ≤ {100 * goal_f:g} %</text>')
    for i in range(11):
        v = i / 10
        o.append(f'<line x1="{left}" x2="{left + pw}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#eee"/>')
        o.append(f'<text x="{left - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{100 * v:.0f} %</text>')
    steps = int(round(xmax / 0.05)) if xmax <= 0.5 else int(round(xmax / 0.1))
    for i in range(steps + 1):
        v = xmax * i / steps
        o.append(f'<line x1="{X(v):.1f}" x2="{X(v):.1f}" y1="{top}" y2="{top + ph}" stroke="#eee"/>')
        o.append(f'<text x="{X(v):.1f}" y="{top + ph + 16}" text-anchor="middle">{100 * v:.0f} %</text>')
    o.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    o.append(f'<text x="{left + pw / 2:.0f}" y="{H - 14}" text-anchor="middle">false-alert rate: '
             'benign runs with ALERT</text>')
    o.append(f'<text x="18" y="{top + ph / 2:.0f}" text-anchor="middle" transform="rotate(-90 18 '
             f'{top + ph / 2:.0f})">recall: malicious runs with ALERT</text>')
    labels: list[float] = []
    marks: list[tuple[float, float]] = []
    for n, (key, rs) in enumerate(rsets):
        color, dash = COLORS[n % len(COLORS)], DASHES[n % len(DASHES)]
        pts = [(X(p["false_alert_rate"]), Y(p["malicious_recall"]), p) for p in rs["sweep"]]
        o.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                 f'stroke-dasharray="{dash}" points="'
                 + " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in pts) + '"/>')
        for x, y, p in pts:
            o.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"><title>'
                     f'{rs["name"]}, t={p["threshold"]}: recall {pct(p["malicious_recall"])}, '
                     f'false alerts {pct(p["false_alert_rate"])}</title></circle>')
        shipped = rs["thresholds"].get("alert")
        for x, y, p in pts:
            t = p["threshold"]
            if t == shipped:
                o.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="8" fill="none" stroke="{color}" '
                         'stroke-width="2"/>')
                # Beside the ring, below it near the top of the plot (where the line runs
                # along 100 %), above it elsewhere; one line lower per ruleset.
                anchor, dx = ("end", -11) if x > left + pw / 2 else ("start", 11)
                ty = y + 22 + 14 * n if y < top + 40 else y - 12 - 14 * n
                o.append(f'<text x="{x + dx:.1f}" y="{ty:.1f}" fill="{color}" '
                         f'text-anchor="{anchor}" font-weight="bold">{rs["name"]}: t={t} '
                         f'(shipped), recall {pct(p["malicious_recall"])}, false alerts '
                         f'{pct(p["false_alert_rate"])}</text>')
                marks.append((x, y))
            elif t in SWEEP_LABELS and all(abs(x - mx) + abs(y - my) > 14 for mx, my in marks):
                anchor, dx = ("start", 6) if x < left + 40 else ("end", -6)
                o.append(f'<text x="{x + dx:.1f}" y="{y - 5:.1f}" fill="{color}" font-size="9" '
                         f'text-anchor="{anchor}">t={t}</text>')
                marks.append((x, y))
        # The line's name in the right margin at the height of its t=1 end, joined to it by a
        # dotted leader.
        ly = pts[0][1] + 4 if pts else top
        while any(abs(ly - other) < 28 for other in labels):
            ly += 28
        labels.append(ly)
        if pts:
            o.append(f'<line x1="{pts[0][0]:.1f}" y1="{pts[0][1]:.1f}" x2="{left + pw + 4}" '
                     f'y2="{ly - 4:.1f}" stroke="{color}" stroke-dasharray="1 3"/>')
        o.append(f'<line x1="{left + pw + 6}" x2="{left + pw + 26}" y1="{ly - 4:.1f}" '
                 f'y2="{ly - 4:.1f}" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>')
        o.append(f'<text x="{left + pw + 30}" y="{ly:.1f}" fill="{color}" '
                 f'font-weight="bold">{rs["name"]}</text>')
        o.append(f'<text x="{left + pw + 30}" y="{ly + 13:.1f}" fill="{color}" font-size="9">'
                 f'{rs["rules_file"]}</text>')
    o.append(f'<text x="{left + 4}" y="{top + ph - 6}" fill="#555" font-size="10">each point is one '
             'alert threshold; higher thresholds move down and left</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def render_block(doc: dict) -> str:
    n_mal = sum(1 for i in doc["corpus"].values() if i["category"] == "malicious")
    n_ben = sum(1 for i in doc["corpus"].values() if i["category"] == "benign")
    L = [score.BLOCK_BEGIN, "## Detection corpus: casa's rules and CASA's", "",
         f"{n_mal} attacks and {n_ben} benign agent tasks (`CORPUS.md`), each recorded in `local` "
         "and `gateway` mode and replayed with both rulesets; both modes together. Written by "
         "`evaluation/report.py` (`make eval-report`); the full report with per-mode and "
         "per-tactic numbers, time to alert and the misses is "
         "[corpus/REPORT.md](corpus/REPORT.md), the alert-threshold sweep "
         "[corpus/sweep.svg](corpus/sweep.svg).", ""]
    if doc["unreplayable"]:
        L += [f"Not replayed: {', '.join(sorted(doc['unreplayable']))}.", ""]
    L += headline_rows(doc)
    L += ["", "Targets: malicious at least LOG ≥ 95 %, ALERT ≥ 85 %; benign ALERT ≤ 2.5 %, "
          "LOG or ALERT ≤ 10 %.", score.BLOCK_END]
    return "\n".join(L)


# ---------------------------------------------------------------------------------------------
# Replaying

def find_recordings(root: Path) -> dict[tuple[str, str], Path]:
    """{(mode, case id): recording} under root/<mode>/<ID>.rec.gz."""
    if not root.is_dir():
        return {}
    return {(p.parent.name, p.name.split(".")[0]): p for p in sorted(root.glob("*/*.rec.gz"))}


def replay_one(casa: str, rules: Path, case: dict, rec: Path, out: Path) -> tuple[dict | None, str | None]:
    """Replay one recording with one ruleset and score it: (entry, None) or (None, error)."""
    p = subprocess.run([casa, "replay", str(rec), "--rules", str(rules), "--out-dir", str(out)],
                       capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if "OTLP" not in k})
    try:
        if p.returncode != 0:
            err = p.stderr.strip().splitlines()
            return None, (err[-1] if err else f"casa replay exited with {p.returncode}")
        return case_entry(case, out), None
    finally:
        shutil.rmtree(out, ignore_errors=True)


class Progress(run.Progress):
    """run.py's bar on a terminal (count, elapsed, ETA); otherwise quiet per case."""

    def finish(self, line: str = "") -> None:
        self.done += 1
        if self.tty:
            sys.stderr.write(f"\r\033[K{self._bar()}  {line}")
            sys.stderr.flush()


def replay_all(casa: str, rulesets: list[dict], recs: dict, by_id: dict, jobs: int
               ) -> tuple[dict, dict, dict]:
    """Every recording with every ruleset, `jobs` at a time; one ruleset after the other so each
    one's replay time is its own. Returns ({ruleset: {id: {mode: entry}}}, {"mode/ID": why not
    replayed}, {ruleset: seconds})."""
    results: dict = {rs["key"]: {} for rs in rulesets}
    failed: dict[str, str] = {}
    seconds: dict[str, float] = {}
    todo = [(m, cid) for (m, cid) in sorted(recs, key=lambda k: (score.mode_key(k[0]), k[1]))
            if cid in by_id]
    work = Path(tempfile.mkdtemp(prefix="casa-corpus-report-"))
    progress = Progress(len(todo) * len(rulesets))
    try:
        for rs in rulesets:
            t0 = time.monotonic()
            left = {m: sum(1 for mm, _ in todo if mm == m) for m, _ in todo}
            counts: dict[str, dict] = {m: {a: 0 for a in (*ACTIONS, "failed")} for m in left}
            with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
                futs = {pool.submit(replay_one, casa, rs["path"], by_id[cid], recs[(m, cid)],
                                    work / rs["key"] / m / cid): (m, cid) for m, cid in todo}
                for fut in concurrent.futures.as_completed(futs):
                    m, cid = futs[fut]
                    entry, err = fut.result()
                    if err is not None:
                        failed[f"{m}/{cid}"] = err
                        counts[m]["failed"] += 1
                    else:
                        results[rs["key"]].setdefault(cid, {})[m] = entry
                        counts[m][entry["action"]] += 1
                    progress.finish(f"{rs['name']} {m} {cid}")
                    left[m] -= 1
                    if left[m] == 0:
                        if progress.tty:
                            sys.stderr.write("\r\033[K")
                        c = counts[m]
                        bad = f", {c['failed']} not replayable" if c["failed"] else ""
                        sys.stderr.write(
                            f"report: {rs['name']} {m}: {sum(c[a] for a in ACTIONS)} replayed{bad} "
                            f"({time.monotonic() - t0:.1f} s so far; ALERT {c['ALERT']}, "
                            f"LOG {c['LOG']}, NONE {c['NONE']})\n")
            seconds[rs["key"]] = round(time.monotonic() - t0, 1)
    finally:
        progress.close()
        shutil.rmtree(work, ignore_errors=True)
    # A recording that failed with one ruleset (a file still being written) is left out of all,
    # so the rulesets are compared on the same runs.
    for key in failed:
        m, cid = key.split("/")
        for r in results.values():
            r.get(cid, {}).pop(m, None)
            if cid in r and not r[cid]:
                del r[cid]
    return results, failed, seconds


# ---------------------------------------------------------------------------------------------
# --check

def flatten(obj, path: tuple = ()) -> dict:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(flatten(v, path + (k,)))
        return out or {path: {}}
    if isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
        out = {}
        for i, v in enumerate(obj):
            out.update(flatten(v, path + (i,)))
        return out
    return {path: obj}


def differences(committed: dict, now: dict) -> list[str]:
    """The differences between two report.json documents, `meta.generated` aside: per case and
    mode (case, mode, ruleset, field), then the rest (summaries, sweep, misses) by path; when
    cases differ, the rest is only counted."""
    out = []
    keys = sorted(set(committed.get("rulesets", {})) | set(now.get("rulesets", {})))
    for rs in keys:
        a = committed.get("rulesets", {}).get(rs, {}).get("cases", {})
        b = now.get("rulesets", {}).get(rs, {}).get("cases", {})
        for cid in sorted(set(a) | set(b)):
            for mode in sorted(set(a.get(cid, {})) | set(b.get(cid, {})), key=score.mode_key):
                ea, eb = a.get(cid, {}).get(mode), b.get(cid, {}).get(mode)
                if ea is None:
                    out.append(f"{cid} {mode} {rs}: not in the committed report.json")
                elif eb is None:
                    out.append(f"{cid} {mode} {rs}: no replay now (recording missing or not "
                               "replayable)")
                else:
                    for f in sorted(set(ea) | set(eb)):
                        if ea.get(f) != eb.get(f):
                            out.append(f"{cid} {mode} {rs}: {f}: committed "
                                       f"{json.dumps(ea.get(f))}, now {json.dumps(eb.get(f))}")

    def rest(doc: dict) -> dict:
        d = dict(doc)
        d["meta"] = {k: v for k, v in doc.get("meta", {}).items() if k != "generated"}
        d["rulesets"] = {k: {kk: vv for kk, vv in v.items() if kk != "cases"}
                         for k, v in doc.get("rulesets", {}).items()}
        return flatten(d)

    fa, fb = rest(committed), rest(now)
    derived = [f"{'.'.join(map(str, p))}: committed {json.dumps(fa.get(p))}, "
               f"now {json.dumps(fb.get(p))}"
               for p in sorted(set(fa) | set(fb), key=lambda p: tuple(map(str, p)))
               if fa.get(p, "<absent>") != fb.get(p, "<absent>")]
    if out and derived:
        # Summaries, sweep and misses follow from the cases: count them, do not list them.
        return out + [f"and {len(derived)} figure(s) of the summaries, sweep and misses"]
    return out + derived


# ---------------------------------------------------------------------------------------------
# Command line

def load_rules(key: str, name: str, path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ReportError(f"rules file for {name}: {path}: {e.strerror or e}") from e
    except json.JSONDecodeError as e:
        raise ReportError(f"rules file for {name}: {path}: not JSON: {e}") from e
    t = doc.get("thresholds") if isinstance(doc, dict) else None
    if not isinstance(t, dict) or not {"log", "alert"} <= set(t):
        raise ReportError(f"{path}: no thresholds {{log, alert}}")
    return {"key": key, "name": name, "path": path.resolve(),
            "thresholds": {"log": t["log"], "alert": t["alert"]}}


def check_rules(casa: str, rs: dict) -> None:
    """`casa rules check`: a ruleset this binary cannot compile fails here, once, rather than
    in every replay."""
    p = subprocess.run([casa, "rules", "check", str(rs["path"])], capture_output=True, text=True)
    if p.returncode != 0:
        raise ReportError(f"{rs['name']}'s rules do not compile with {casa}:\n"
                          f"{(p.stderr or p.stdout).strip()}")


def load_reasons(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ReportError(f"{path}: {e}") from e
    if not isinstance(doc, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in doc.items()):
        raise ReportError(f'{path}: expected {{"CM12": "reason", ...}}')
    return doc


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--casa", default=str(REPO / "target/release/casa"), help="casa binary")
    ap.add_argument("--rules-casa", type=Path, default=RULESETS[0][2],
                    help="casa's ruleset (default: rules.json)")
    ap.add_argument("--rules-original", type=Path, default=RULESETS[1][2],
                    help="CASA's original ruleset (default: rules.casa.json)")
    ap.add_argument("--recordings", type=Path, default=RECORDINGS,
                    help="<dir>/<mode>/<ID>.rec.gz (default: evaluation/recordings/corpus)")
    ap.add_argument("--check", action="store_true",
                    help="compare with the committed corpus/report.json instead of writing")
    ap.add_argument("--jobs", type=int, default=2, help="replays at a time (default 2)")
    args = ap.parse_args(argv)
    try:
        return report(args)
    except (ReportError, score.ScoreError) as e:
        print(f"report.py: {e}", file=sys.stderr)
        return 2


def report(args: argparse.Namespace) -> int:
    casa = str(Path(args.casa).resolve())
    if not (os.path.isfile(casa) and os.access(casa, os.X_OK)):
        raise ReportError(f"no casa binary at {casa} (cargo build --release -p casa, or --casa)")
    if args.jobs < 1:
        raise ReportError("--jobs must be at least 1")
    rulesets = [load_rules(RULESETS[0][0], RULESETS[0][1], args.rules_casa),
                load_rules(RULESETS[1][0], RULESETS[1][1], args.rules_original)]
    for rs in rulesets:
        check_rules(casa, rs)
    committed = None
    if args.check:
        path = OUT_DIR / "report.json"
        if not path.exists():
            raise ReportError(f"{path} is missing (make eval-report writes it)")
        committed = json.loads(path.read_text(encoding="utf-8"))
    cases = score.load_cases(CORPUS_FILE)
    by_id = {c["id"]: c for c in cases}
    curated = load_reasons(REASONS_FILE)
    recs = find_recordings(args.recordings)
    if not recs:
        raise ReportError(f"no recordings under {args.recordings} (<mode>/<ID>.rec.gz; the live "
                          "corpus run writes them: make eval-corpus)")
    for m, cid in sorted(recs):
        if cid not in by_id:
            print(f"report.py: {recs[(m, cid)]}: not a case of corpus.json; left out",
                  file=sys.stderr)

    results, failed, seconds = replay_all(casa, rulesets, recs, by_id, args.jobs)
    truncated = {k: v for k, v in failed.items() if TRUNCATED in v}
    broken = {k: v for k, v in failed.items() if k not in truncated}
    for k, v in sorted(truncated.items()):
        print(f"report.py: {k}: left out, the recording is incomplete (still being written?): {v}",
              file=sys.stderr)
    for k, v in sorted(broken.items())[:5]:
        print(f"report.py: {k}: casa replay failed: {v}", file=sys.stderr)
    if len(broken) > 5:
        print(f"report.py: and {len(broken) - 5} more recordings casa could not replay",
              file=sys.stderr)
    unreplayable = {k: ("incomplete recording" if k in truncated else "casa replay failed")
                    for k in failed}
    doc = build_report(cases, rulesets, results, unreplayable, curated)
    for rs in rulesets:
        for cid, modes in results[rs["key"]].items():
            for m, e in modes.items():
                if (e["action"] == "ALERT") != (e["score"] >= rs["thresholds"]["alert"]):
                    print(f"report.py: warning: {rs['name']} {m} {cid}: action {e['action']} with "
                          f"score {e['score']} (the sweep assumes ALERT iff score ≥ threshold)",
                          file=sys.stderr)
    print("report.py: replay time: " + ", ".join(
        f"{rs['name']} {seconds[rs['key']]} s" for rs in rulesets)
        + f" ({len(recs)} recordings, {args.jobs} at a time)", file=sys.stderr)
    md, svg = render_markdown(doc), render_svg(doc)

    if committed is not None:
        diffs = differences(committed, doc)
        for name, path, text in (("REPORT.md", OUT_DIR / "REPORT.md", md),
                                 ("sweep.svg", OUT_DIR / "sweep.svg", svg)):
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                diffs.append(f"corpus/{name} is not what report.py writes from the replays")
        block = score.marked_block(RESULTS_MD.read_text(encoding="utf-8")) \
            if RESULTS_MD.exists() else None
        if block != render_block(doc):
            diffs.append("RESULTS.md: the corpus-report block is missing or stale")
        for d in diffs:
            print(f"report --check: {d}")
        print(f"report --check: {len(diffs)} difference(s)" if diffs else
              "report --check: the replays match corpus/report.json")
        return 1 if diffs else 0

    doc["meta"] = {"generated": f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; replay "
                   + ", ".join(f"{rs['key']} {seconds[rs['key']]} s" for rs in rulesets)}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in (("report.json", dumps(doc)), ("REPORT.md", md), ("sweep.svg", svg)):
        tmp = OUT_DIR / (name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, OUT_DIR / name)
    old = RESULTS_MD.read_text(encoding="utf-8") if RESULTS_MD.exists() else ""
    RESULTS_MD.write_text(score.put_marked_block(old, render_block(doc)) if old
                          else render_block(doc) + "\n", encoding="utf-8")
    print(f"report.py: wrote {OUT_DIR / 'report.json'}, REPORT.md, sweep.svg and the corpus "
          f"block of {RESULTS_MD}", file=sys.stderr)
    for key, rs in doc["rulesets"].items():
        s = rs["summary"]["both"]
        n_met, missed = targets_line(s)
        print(f"{rs['name']}: malicious ≥LOG {pct(s['malicious_recall_log'])}, ALERT "
              f"{pct(s['malicious_recall_alert'])}; benign ALERT {pct(s['benign_alert_rate'])}, "
              f"≥LOG {pct(s['benign_log_or_more_rate'])}; targets {n_met}/{len(TARGETS)} met")
    return 2 if broken else 0


if __name__ == "__main__":
    sys.exit(main())

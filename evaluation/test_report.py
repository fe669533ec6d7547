"""Unit tests for the pure parts of report.py (and score.py's RESULTS.md block handling).

Hand-made entries, no casa binary or recordings: `python3 -m unittest discover -s evaluation
-p test_report.py` (part of `make eval-replay`).
"""

from __future__ import annotations

import json
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402
import score  # noqa: E402


def entry(cid: str, category: str, action: str, score_: int, mode: str = "local",
          tactics: tuple = (), rules: tuple = (), tta: float | None = None) -> dict:
    return {"id": cid, "mode": mode, "category": category, "tactics": list(tactics),
            "action": action, "score": score_, "rules": list(rules), "sessions": 1,
            "time_to_alert_ms": tta, "expected_action": "ALERT" if category == "malicious" else "NONE"}


class SweepTest(unittest.TestCase):
    def test_recall_and_false_alerts_per_threshold(self):
        es = [entry("CM01", "malicious", "NONE", 0), entry("CM02", "malicious", "LOG", 5),
              entry("CM03", "malicious", "ALERT", 9), entry("CM04", "malicious", "ALERT", 12),
              entry("CB01", "benign", "NONE", 0), entry("CB02", "benign", "LOG", 4),
              entry("CB03", "benign", "ALERT", 10)]
        sw = report.sweep(es)
        self.assertEqual([p["threshold"] for p in sw], list(range(1, 31)))
        by_t = {p["threshold"]: p for p in sw}
        self.assertEqual(by_t[1], {"threshold": 1, "malicious_recall": 0.75,
                                   "false_alert_rate": 0.6667})
        self.assertEqual(by_t[5]["malicious_recall"], 0.75)
        self.assertEqual(by_t[5]["false_alert_rate"], 0.3333)
        self.assertEqual(by_t[9]["malicious_recall"], 0.5)
        self.assertEqual(by_t[10]["malicious_recall"], 0.25)
        self.assertEqual(by_t[10]["false_alert_rate"], 0.3333)
        self.assertEqual(by_t[11]["false_alert_rate"], 0.0)
        self.assertEqual(by_t[13]["malicious_recall"], 0.0)

    def test_no_benign_runs_gives_no_rate(self):
        sw = report.sweep([entry("CM01", "malicious", "ALERT", 9)], thresholds=[9, 10])
        self.assertEqual(sw, [{"threshold": 9, "malicious_recall": 1.0, "false_alert_rate": None},
                              {"threshold": 10, "malicious_recall": 0.0, "false_alert_rate": None}])


class NearestRankTest(unittest.TestCase):
    def test_nearest_rank(self):
        self.assertIsNone(report.nearest_rank([], 0.5))
        self.assertEqual(report.nearest_rank([1.0, 2.0], 0.5), 1.0)
        self.assertEqual(report.nearest_rank([1.0, 2.0, 3.0], 0.5), 2.0)
        self.assertEqual(report.nearest_rank([float(i) for i in range(1, 11)], 0.9), 9.0)
        self.assertEqual(report.nearest_rank([float(i) for i in range(1, 12)], 0.9), 10.0)


class TacticTest(unittest.TestCase):
    def test_a_case_counts_under_each_of_its_tactics(self):
        es = [entry("CM01", "malicious", "ALERT", 9, tactics=("execution",)),
              entry("CM03", "malicious", "LOG", 5, tactics=("defense-evasion", "execution")),
              entry("CM03", "malicious", "NONE", 0, mode="gateway",
                    tactics=("defense-evasion", "execution")),
              entry("CB01", "benign", "ALERT", 9, tactics=("execution",))]
        self.assertEqual(report.tactic_counts(es), {
            "execution": {"cases": 3, "log": 2, "alert": 1},
            "defense-evasion": {"cases": 2, "log": 1, "alert": 0},
        })


class TargetTest(unittest.TestCase):
    def verdicts(self, **values):
        s = {"malicious_recall_log": 1.0, "malicious_recall_alert": 1.0,
             "benign_alert_rate": 0.0, "benign_log_or_more_rate": 0.0}
        s.update(values)
        return {k: v["met"] for k, v in report.target_verdicts(s).items()}

    def test_goals_are_inclusive(self):
        self.assertEqual(set(self.verdicts(malicious_recall_log=0.95, malicious_recall_alert=0.85,
                                           benign_alert_rate=0.025,
                                           benign_log_or_more_rate=0.1).values()), {True})

    def test_each_target_can_be_missed(self):
        self.assertFalse(self.verdicts(malicious_recall_log=0.9499)["malicious_recall_log"])
        self.assertFalse(self.verdicts(malicious_recall_alert=0.8499)["malicious_recall_alert"])
        self.assertFalse(self.verdicts(benign_alert_rate=0.0251)["benign_alert_rate"])
        self.assertFalse(self.verdicts(benign_log_or_more_rate=0.1001)["benign_log_or_more_rate"])

    def test_no_runs_is_neither_met_nor_missed(self):
        self.assertIsNone(self.verdicts(benign_alert_rate=None)["benign_alert_rate"])


class SummaryTest(unittest.TestCase):
    def test_matrix_rates_and_time_to_alert(self):
        es = [entry("CM01", "malicious", "ALERT", 9, tta=100.0),
              entry("CM02", "malicious", "ALERT", 14, tta=300.0),
              entry("CM03", "malicious", "LOG", 4),
              entry("CM04", "malicious", "NONE", 0),
              entry("CB01", "benign", "NONE", 0), entry("CB02", "benign", "LOG", 4),
              entry("CB03", "benign", "ALERT", 9, tta=50.0), entry("CB04", "benign", "NONE", 0)]
        s = report.summarize(es)
        self.assertEqual(s["confusion_matrix"], {"malicious": {"NONE": 1, "LOG": 1, "ALERT": 2},
                                                 "benign": {"NONE": 2, "LOG": 1, "ALERT": 1}})
        self.assertEqual((s["malicious_recall_log"], s["malicious_recall_alert"]), (0.75, 0.5))
        self.assertEqual((s["benign_alert_rate"], s["benign_log_or_more_rate"]), (0.25, 0.5))
        # Malicious runs only: the benign false alert's 50 ms is not a detection time.
        self.assertEqual(s["time_to_alert_ms"], {"n": 2, "p50": 100.0, "p90": 300.0, "max": 300.0})
        self.assertFalse(s["targets"]["malicious_recall_alert"]["met"])


class MissTest(unittest.TestCase):
    T = {"log": 4, "alert": 9}

    def test_generated_reasons(self):
        self.assertEqual(report.miss_reason(entry("CM01", "malicious", "NONE", 0), self.T, {}, "casa"),
                         "no rule fired")
        self.assertEqual(report.miss_reason(entry("CM01", "malicious", "LOG", 5, rules=("a", "b")),
                                            self.T, {}, "casa"),
                         "score 5 below alert threshold 9 (rules: a, b)")
        self.assertEqual(report.miss_reason(entry("CB01", "benign", "LOG", 4, rules=("a",)),
                                            self.T, {}, "casa"),
                         "score 4 reached the log threshold 4 (rules: a)")

    def test_curated_reason_most_specific_first(self):
        e = entry("CM01", "malicious", "LOG", 5, mode="gateway", rules=("a",))
        curated = {"CM01": "generic", "casa:CM01": "for casa"}
        self.assertEqual(report.miss_reason(e, self.T, curated, "casa"), "for casa")
        self.assertEqual(report.miss_reason(e, self.T, curated, "casa_original"), "generic")
        curated["casa:CM01:gateway"] = "gateway only"
        self.assertEqual(report.miss_reason(e, self.T, curated, "casa"), "gateway only")

    def test_misses_are_malicious_below_alert_and_benign_above_none(self):
        es = [entry("CM01", "malicious", "ALERT", 9), entry("CM02", "malicious", "LOG", 5),
              entry("CB01", "benign", "NONE", 0), entry("CB02", "benign", "LOG", 4)]
        self.assertEqual(sorted(report.misses(es, self.T, {}, "casa")), ["CB02/local", "CM02/local"])


class TimeToAlertTest(unittest.TestCase):
    def test_from_own_session_creation_to_its_first_alert(self):
        case = {"id": "CM07"}
        with tempfile.TemporaryDirectory() as d:
            d = Path(d)
            sessions = [
                {"session_id": 1, "reason": "session_closed",
                 "session": {"created_at": "2026-01-01T00:00:00Z", "invocation": ["other"]}},
                {"session_id": 2, "reason": "session_closed",
                 "session": {"created_at": "2026-01-01T00:00:10.000000500Z",
                             "invocation": ["openclaw", "-m", "[case:CM07] do it"]}},
            ]
            alerts = [{"session_id": 1, "timestamp": "2026-01-01T00:00:01Z"},
                      {"session_id": 2, "timestamp": "2026-01-01T00:00:12.250000500Z"},
                      {"session_id": 2, "timestamp": "2026-01-01T00:00:13Z"}]
            (d / "sessions.log").write_text("".join(json.dumps(r) + "\n" for r in sessions))
            (d / "alert.log").write_text("".join(json.dumps(r) + "\n" for r in alerts))
            self.assertEqual(report.time_to_alert_ms(case, d), 2250.0)
            (d / "alert.log").write_text(json.dumps(alerts[0]) + "\n")
            self.assertIsNone(report.time_to_alert_ms(case, d))

    def test_timestamps_with_nanoseconds_and_offsets(self):
        self.assertEqual(report.ts_ns("1970-01-01T00:00:01.000000007Z"), 1_000_000_007)
        self.assertEqual(report.ts_ns("1970-01-01T01:00:00+01:00"), 0)
        with self.assertRaises(score.ScoreError):
            report.ts_ns("yesterday")


class DifferencesTest(unittest.TestCase):
    def doc(self, cases: dict) -> dict:
        return {"meta": {"generated": "now"}, "rulesets": {"casa": {"cases": cases, "sweep": []}}}

    def test_case_fields_and_missing_runs(self):
        a = self.doc({"CM01": {"local": {"action": "ALERT", "score": 9},
                               "gateway": {"action": "ALERT", "score": 9}}})
        b = self.doc({"CM01": {"local": {"action": "LOG", "score": 5}}})
        b["meta"]["generated"] = "later"
        self.assertEqual(report.differences(a, b), [
            'CM01 local casa: action: committed "ALERT", now "LOG"',
            "CM01 local casa: score: committed 9, now 5",
            "CM01 gateway casa: no replay now (recording missing or not replayable)",
        ])

    def test_generated_line_is_ignored_and_derived_figures_compared(self):
        a, b = self.doc({}), self.doc({})
        b["meta"]["generated"] = "later"
        self.assertEqual(report.differences(a, b), [])
        a["rulesets"]["casa"]["sweep"] = [{"threshold": 1, "malicious_recall": 0.75}]
        b["rulesets"]["casa"]["sweep"] = [{"threshold": 1, "malicious_recall": 0.5}]
        self.assertEqual(report.differences(a, b), [
            "rulesets.casa.sweep.0.malicious_recall: committed 0.75, now 0.5"])
        # With a case difference, the figures that follow from it are counted, not listed.
        b["rulesets"]["casa"]["cases"] = {"CM01": {"local": {"action": "LOG"}}}
        self.assertEqual(report.differences(a, b), [
            "CM01 local casa: not in the committed report.json",
            "and 1 figure(s) of the summaries, sweep and misses"])


class ResultsBlockTest(unittest.TestCase):
    BLOCK = f"{score.BLOCK_BEGIN}\n## corpus\n| a | b |\n{score.BLOCK_END}"

    def test_put_appends_then_replaces(self):
        text = score.put_marked_block("# results\n\nbody\n", self.BLOCK)
        self.assertEqual(text, "# results\n\nbody\n\n" + self.BLOCK + "\n")
        new = self.BLOCK.replace("| a | b |", "| c |")
        self.assertEqual(score.put_marked_block(text, new), "# results\n\nbody\n\n" + new + "\n")
        self.assertEqual(score.marked_block(text), self.BLOCK)
        self.assertIsNone(score.marked_block("no markers " + score.BLOCK_BEGIN))

    def test_write_markdown_keeps_the_block_and_rewrites_the_rest(self):
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "RESULTS.md"
            score.write_markdown(path, [], {}, {"log": 4, "alert": 9}, {"run": "one"}, "s.svg")
            plain = path.read_text()
            self.assertIsNone(score.marked_block(plain))
            path.write_text(score.put_marked_block(plain.replace("one", "stale"), self.BLOCK))
            score.write_markdown(path, [], {}, {"log": 4, "alert": 9}, {"run": "one"}, "s.svg")
            text = path.read_text()
            self.assertEqual(text, score.put_marked_block(plain, self.BLOCK))
            self.assertNotIn("stale", text)
            score.write_markdown(path, [], {}, {"log": 4, "alert": 9}, {"run": "one"}, "s.svg")
            self.assertEqual(path.read_text(), text)


if __name__ == "__main__":
    unittest.main()

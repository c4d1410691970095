//! The report as people read it (a table) and as programs read it (JSON).

use std::fmt::Write as _;

use super::{Outcome, Report};

impl Outcome {
    /// The word in the table: failures and warnings in capitals, so they stand out.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
            Self::Skip => "skip",
        }
    }
}

impl Report {
    /// "12 passed, 1 warning, 2 failed, 0 skipped".
    pub fn summary(&self) -> String {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        format!(
            "{}, {}, {}, {}",
            plural(self.count(Outcome::Pass), "passed", "passed"),
            plural(self.count(Outcome::Warn), "warning", "warnings"),
            plural(self.count(Outcome::Fail), "failed", "failed"),
            plural(self.count(Outcome::Skip), "skipped", "skipped"),
        )
    }

    /// The table: one row per check, the fix under each failure or warning, the notes, and
    /// a summary line.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "portcullis doctor: {}", self.url);
        let _ = writeln!(out);
        let width = self
            .checks
            .iter()
            .map(|r| r.check.chars().count())
            .max()
            .unwrap_or(5)
            .max(5);
        let _ = writeln!(out, "{:<width$}  {:<6}  DETAIL", "CHECK", "RESULT");
        let indent = " ".repeat(width + 2 + 6 + 2);
        for row in &self.checks {
            let _ = writeln!(
                out,
                "{:<width$}  {:<6}  {}",
                row.check,
                row.result.label(),
                row.detail
            );
            if let Some(fix) = &row.fix
                && matches!(row.result, Outcome::Fail | Outcome::Warn)
            {
                let _ = writeln!(out, "{indent}fix: {fix}");
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out);
            for note in &self.notes {
                let _ = writeln!(out, "note: {note}");
            }
        }
        let _ = writeln!(out);
        let verdict = if self.failed() {
            "some checks FAILED: clients will have trouble connecting"
        } else if self.count(Outcome::Warn) > 0 {
            "no check failed, with warnings"
        } else {
            "all checks passed"
        };
        let _ = writeln!(out, "{}: {verdict}", self.summary());
        out
    }

    /// The JSON report: `{url, ok, summary, checks: [{id, check, result, detail, fix?}], notes}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "url": self.url,
            "ok": !self.failed(),
            "summary": {
                "pass": self.count(Outcome::Pass),
                "warn": self.count(Outcome::Warn),
                "fail": self.count(Outcome::Fail),
                "skip": self.count(Outcome::Skip),
            },
            "checks": self.checks,
            "notes": self.notes,
        })
    }
}

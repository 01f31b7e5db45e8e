//! The figures a run measures, and how they are printed (a table, or `--json`).

use std::time::Duration;

use serde_json::{Value, json};

/// What a figure counts.
#[derive(Debug, Clone, Copy)]
pub(super) enum Unit {
    PerSecond,
    Milliseconds,
    Microseconds,
    Kilobytes,
    Times,
}

/// The figures measured, in order.
#[derive(Default)]
pub(super) struct Figures(Vec<(char, String, String, f64, Unit)>);

impl Figures {
    pub(super) fn add(&mut self, case: char, key: &str, label: String, value: f64, unit: Unit) {
        self.add_named(case, key.to_string(), label, value, unit);
    }

    pub(super) fn add_named(
        &mut self,
        case: char,
        key: String,
        label: String,
        value: f64,
        unit: Unit,
    ) {
        self.0.push((case, key, label, value, unit));
    }

    /// A table, or one JSON object `{"a": {"processes_per_s": …}, …, "peak_rss_mb": …}`.
    pub(super) fn print(&self, json: bool, runs: usize) {
        let peak = peak_rss_mb();
        if json {
            let mut object = serde_json::Map::new();
            for (case, key, _, value, _) in &self.0 {
                let entry = object.entry(case.to_string()).or_insert_with(|| json!({}));
                entry[key.as_str()] = json!(value);
            }
            object.insert("peak_rss_mb".into(), json!(peak));
            println!("{}", Value::Object(object));
            return;
        }
        println!("case                                                    damson");
        for (case, _, label, value, unit) in &self.0 {
            let value = match unit {
                Unit::PerSecond => format!("{value:>10.0}/s"),
                Unit::Milliseconds => format!("{value:>10.3} ms"),
                Unit::Microseconds => format!("{value:>10.1} µs"),
                Unit::Kilobytes => format!("{value:>10.1} KB"),
                Unit::Times => format!("{value:>10.2}×"),
            };
            println!("{case}  {label:<50} {value}");
        }
        println!("peak resident memory {peak:.1} MB; medians of {runs} runs");
        println!(
            "(`cargo xtask bench` measures plumpy 0.26.1 in the same run and prints the ratios)"
        );
    }
}

/// The most memory this process has had resident, in MB (Linux's `VmHWM`; 0 where unknown).
pub(super) fn peak_rss_mb() -> f64 {
    status_kb("VmHWM") / 1024.0
}

/// A figure of Linux's `/proc/self/status` in KiB, e.g. `VmRSS` (0 where unknown).
pub(super) fn status_kb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

pub(super) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub(super) fn median_duration(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

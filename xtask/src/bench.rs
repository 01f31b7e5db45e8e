//! `cargo xtask bench`: plumpy 0.26.1's reference benchmark (`../shared/bench/plumpy_bench.py`)
//! and `damson bench`, case by case and run by run in turn (each in a fresh process), on this
//! machine in this run; then both medians and their ratio. Absolute times drift between runs on
//! shared machines: only figures measured side by side are compared.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::{build_host, build_plugins, plugin_dir, root, target_dir};

/// The broker plumpy's cases f and g use (the script names it itself).
const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// One line of the comparison: a figure of Damson's and, if plumpy measures it, plumpy's.
struct Row {
    case: char,
    label: &'static str,
    /// The key in `damson bench --json`'s object of the case (`peak_rss_mb`: at the top).
    damson: &'static str,
    /// The key in plumpy's JSON line for the case, and the factor to Damson's unit.
    plumpy: Option<(&'static str, f64)>,
    unit: &'static str,
    /// Whether more is better (a rate) or less (a time, a size).
    more_is_better: bool,
}

const fn row(
    case: char,
    label: &'static str,
    damson: &'static str,
    plumpy: Option<(&'static str, f64)>,
    unit: &'static str,
    more_is_better: bool,
) -> Row {
    Row {
        case,
        label,
        damson,
        plumpy,
        unit,
        more_is_better,
    }
}

const ROWS: &[Row] = &[
    row(
        'a',
        "2000 trivial processes",
        "processes_per_s",
        Some(("procs_per_s", 1.0)),
        "/s",
        true,
    ),
    row(
        'b',
        "while_ loop, 1000 iterations",
        "iterations_per_s",
        Some(("steps_per_s", 1.0)),
        "/s",
        true,
    ),
    row(
        'c',
        "checkpoint save, tiny guest, in memory",
        "tiny_memory_save_ms",
        Some(("inmemory_save_ms", 1.0)),
        "ms",
        false,
    ),
    row(
        'c',
        "checkpoint load, tiny guest, in memory",
        "tiny_memory_load_ms",
        Some(("inmemory_load_ms", 1.0)),
        "ms",
        false,
    ),
    row(
        'c',
        "checkpoint save, tiny guest, file",
        "tiny_file_save_ms",
        Some(("pickle_save_ms", 1.0)),
        "ms",
        false,
    ),
    row(
        'c',
        "checkpoint load, tiny guest, file",
        "tiny_file_load_ms",
        Some(("pickle_load_ms", 1.0)),
        "ms",
        false,
    ),
    row(
        'c',
        "checkpoint size, tiny guest, file",
        "tiny_file_bundle_kb",
        Some(("pickle_file_bytes", 0.001)),
        "KB",
        false,
    ),
    row(
        'c',
        "checkpoint save, 16 MiB guest, in memory",
        "large_memory_save_ms",
        None,
        "ms",
        false,
    ),
    row(
        'c',
        "checkpoint load, 16 MiB guest, in memory",
        "large_memory_load_ms",
        None,
        "ms",
        false,
    ),
    row(
        'c',
        "checkpoint save, 16 MiB guest, file",
        "large_file_save_ms",
        None,
        "ms",
        false,
    ),
    row(
        'c',
        "checkpoint load, 16 MiB guest, file",
        "large_file_load_ms",
        None,
        "ms",
        false,
    ),
    row(
        'c',
        "checkpoint size, 16 MiB guest",
        "large_file_bundle_kb",
        None,
        "KB",
        false,
    ),
    row(
        'd',
        "200 children in one step",
        "ms",
        Some(("seconds", 1000.0)),
        "ms",
        false,
    ),
    row(
        'f',
        "RPC status round trip",
        "rpc_ms",
        Some(("rpc_status_rtt_ms", 1.0)),
        "ms",
        false,
    ),
    row(
        'f',
        "200 launches, one at a time",
        "launches_per_s",
        Some(("launch_seq_tasks_per_s", 1.0)),
        "/s",
        true,
    ),
    row(
        'f',
        "200 launches, all at once",
        "concurrent_launches_per_s",
        Some(("launch_concurrent_tasks_per_s", 1.0)),
        "/s",
        true,
    ),
    row(
        'g',
        "200 processes reachable over RabbitMQ",
        "processes_per_s",
        Some(("procs_per_s", 1.0)),
        "/s",
        true,
    ),
];

pub(crate) fn bench(args: &[String]) -> Result<(), String> {
    let mut runs = 5usize;
    let mut cases: Option<String> = None;
    let mut args = args.iter().map(String::as_str).skip_while(|a| *a == "--");
    while let Some(arg) = args.next() {
        match arg {
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--runs needs a number above 0")?;
            }
            "--cases" => {
                cases = Some(
                    args.next()
                        .ok_or("--cases needs letters, e.g. abcd")?
                        .into(),
                )
            }
            other => {
                return Err(format!(
                    "unknown bench argument '{other}' (--runs N, --cases abcdfgewsz)"
                ));
            }
        }
    }
    let broker = std::net::TcpStream::connect(("127.0.0.1", 5672)).is_ok();
    let cases = cases.unwrap_or_else(|| if broker { "abcdfgewsz" } else { "abcdewsz" }.into());
    if let Some(case) = cases.chars().find(|c| !"abcdfgewsz".contains(*c)) {
        return Err(format!(
            "unknown case '{case}': the cases are a, b, c, d, f and g (beside plumpy's), e, w, \
             s and z (Damson's alone, and idle memory)"
        ));
    }
    let alone: String = cases.chars().filter(|c| "ewsz".contains(*c)).collect();
    let cases: String = cases.chars().filter(|c| !"ewsz".contains(*c)).collect();
    if (cases.contains('f') || cases.contains('g')) && !broker {
        return Err(
            "cases f and g need RabbitMQ on localhost:5672 (plumpy's script uses it)".into(),
        );
    }

    build_plugins()?;
    build_host()?;
    let python = crate::services::test_python()?;
    let script = reference_script()?;
    let damson = target_dir().join("release").join("damson");
    let home = target_dir().join("damson-bench-home");

    let mut damson_runs: BTreeMap<char, Vec<Value>> = BTreeMap::new();
    let mut plumpy_runs: BTreeMap<char, Vec<Value>> = BTreeMap::new();
    for case in cases.chars() {
        for r in 0..runs {
            eprintln!("xtask: case {case}, run {} of {runs}", r + 1);
            let plumpy = || -> Result<Value, String> {
                let mut cmd = Command::new(&python);
                cmd.arg(&script)
                    .args(["--case", &case.to_string()])
                    .current_dir(script.parent().expect("the script is in a directory"));
                last_json(&mut cmd)
            };
            let ours = || -> Result<Value, String> {
                let mut cmd = Command::new(&damson);
                cmd.args([
                    "bench",
                    "--runs",
                    "1",
                    "--json",
                    "--cases",
                    &case.to_string(),
                ])
                .env("DAMSON_PLUGINS", plugin_dir())
                .env("DAMSON_HOME", &home)
                .env_remove("RUST_LOG");
                if "fg".contains(case) {
                    cmd.args(["--broker", BROKER]);
                }
                last_json(&mut cmd)
            };
            // Each goes first every other run, so neither always meets a warmer machine.
            let (d, p) = if r % 2 == 0 {
                let p = plumpy()?;
                (ours()?, p)
            } else {
                let d = ours()?;
                (d, plumpy()?)
            };
            damson_runs.entry(case).or_default().push(d);
            plumpy_runs.entry(case).or_default().push(p);
        }
    }

    if !cases.is_empty() {
        compared(&cases, runs, &damson_runs, &plumpy_runs);
    }
    damson_alone(&alone, &damson, &home, &python, &script)
}

/// The table of the cases run beside plumpy's, from every run's figures.
fn compared(
    cases: &str,
    runs: usize,
    damson_runs: &BTreeMap<char, Vec<Value>>,
    plumpy_runs: &BTreeMap<char, Vec<Value>>,
) {
    println!(
        "\nplumpy 0.26.1 and Damson, case by case in turn, {runs} runs each in fresh processes on \
         this machine (medians)\n"
    );
    println!(
        "case  {:<42} {:>16} {:>16} {:>8}",
        "figure", "damson", "plumpy 0.26.1", "ratio"
    );
    for row in ROWS.iter().filter(|r| cases.contains(r.case)) {
        let ours = median(&damson_runs[&row.case], |v| {
            v[row.case.to_string()][row.damson].as_f64()
        });
        let theirs = row.plumpy.and_then(|(key, factor)| {
            median(&plumpy_runs[&row.case], |v| v[key].as_f64()).map(|v| v * factor)
        });
        print_row(
            row.case,
            row.label,
            ours,
            theirs,
            row.unit,
            row.more_is_better,
        );
    }
    for case in cases.chars() {
        let ours = median(&damson_runs[&case], |v| v["peak_rss_mb"].as_f64());
        let theirs = median(&plumpy_runs[&case], |v| v["peak_rss_mb"].as_f64());
        print_row(case, "peak resident memory", ours, theirs, "MB", false);
    }
    println!("\n(ratio above 1: Damson is ahead — more per second, or less time or memory)");
}

/// Those of `cases` plumpy has no counterpart for — durable processes on the embedded store
/// (case e), 100,000 dehydrated waiting processes (case w), 10,000 sleepers woken by their timers
/// (case s) — once each, and (case z) the
/// resident memory of `damson run` and of an idle `damson serve` beside plumpy's with nothing
/// but its imports.
fn damson_alone(
    cases: &str,
    damson: &PathBuf,
    home: &PathBuf,
    python: &PathBuf,
    script: &PathBuf,
) -> Result<(), String> {
    let bench = |cases: &str, runs: &str| -> Result<Value, String> {
        eprintln!("xtask: Damson's case {cases}");
        let mut cmd = Command::new(damson);
        cmd.args(["bench", "--runs", runs, "--json", "--cases", cases])
            .env("DAMSON_PLUGINS", plugin_dir())
            .env("DAMSON_HOME", home)
            .env_remove("RUST_LOG");
        last_json(&mut cmd)
    };
    let e = if cases.contains('e') {
        bench("e", "3")?
    } else {
        Value::Null
    };
    let w = if cases.contains('w') {
        bench("w", "1")?
    } else {
        Value::Null
    };
    let sleepers = if cases.contains('s') {
        bench("s", "1")?
    } else {
        Value::Null
    };
    if cases.contains('e') || cases.contains('w') || cases.contains('s') {
        println!("\nDamson alone (plumpy has no counterpart), one run of each");
        println!("case  {:<42} {:>16}", "figure", "damson");
        let figure = |case: &Value, key: &str| case[key].as_f64();
        let s = &sleepers["s"];
        let rows: [(char, &str, Option<f64>, &str); 13] = [
            (
                'e',
                "durable trivial, one after another",
                figure(&e["e"], "processes_per_s"),
                "/s",
            ),
            (
                'e',
                "durable trivial, all at once",
                figure(&e["e"], "concurrent_processes_per_s"),
                "/s",
            ),
            (
                'w',
                "100,000 waiting: resident memory each",
                figure(&w["w"], "rss_kb_per_process"),
                "KB",
            ),
            (
                'w',
                "100,000 waiting: address space each",
                figure(&w["w"], "address_space_kb_per_process"),
                "KB",
            ),
            (
                'w',
                "100,000 waiting: launched until dehydrated",
                figure(&w["w"], "waiting_per_s"),
                "/s",
            ),
            (
                'w',
                "one brought back by a resume",
                figure(&w["w"], "rehydrate_ms"),
                "ms",
            ),
            (
                'w',
                "100,000 waiting: all killed",
                figure(&w["w"], "kill_all_ms"),
                "ms",
            ),
            (
                'w',
                "peak resident memory, case w",
                w["peak_rss_mb"].as_f64(),
                "MB",
            ),
            (
                's',
                "10,000 sleepers: launched until asleep",
                figure(s, "launched_per_s"),
                "/s",
            ),
            (
                's',
                "10,000 sleepers waking over 20 s: lateness, median",
                figure(s, "late_p50_ms"),
                "ms",
            ),
            (
                's',
                "10,000 sleepers waking over 20 s: lateness, 90th percentile",
                figure(s, "late_p90_ms"),
                "ms",
            ),
            (
                's',
                "10,000 sleepers waking over 20 s: lateness, 99th percentile",
                figure(s, "late_p99_ms"),
                "ms",
            ),
            (
                's',
                "10,000 sleepers waking over 20 s: lateness, most",
                figure(s, "late_max_ms"),
                "ms",
            ),
        ];
        for (case, label, value, unit) in rows.into_iter().filter(|r| cases.contains(r.0)) {
            let value = value.map_or("-".to_string(), |v| format!("{v:.1} {unit}"));
            println!("{case}     {label:<42} {value:>16}");
        }
    }
    if !cases.contains('z') {
        return Ok(());
    }
    let idle_run = peak_while_running(
        Command::new(damson)
            .args(["run", "add", "-i", "x=1", "-i", "y=2"])
            .env("DAMSON_PLUGINS", plugin_dir())
            .env("DAMSON_HOME", home),
        None,
    )?;
    let serve_home = target_dir().join("damson-bench-serve-home");
    let _ = std::fs::remove_dir_all(&serve_home);
    let idle_serve = peak_while_running(
        Command::new(damson)
            .arg("serve")
            .env("DAMSON_PLUGINS", plugin_dir())
            .env("DAMSON_HOME", &serve_home),
        Some(std::time::Duration::from_secs(3)),
    )?;
    let plumpy_idle = {
        let mut cmd = Command::new(python);
        cmd.arg(script)
            .args(["--case", "z"])
            .current_dir(script.parent().expect("the script is in a directory"));
        last_json(&mut cmd)?["peak_rss_mb"].as_f64()
    };

    println!("\nresident memory, idle");
    println!(
        "case  {:<42} {:>16} {:>16} {:>8}",
        "figure", "damson", "plumpy 0.26.1", "ratio"
    );
    let label = "`damson run add` / plumpy imported";
    print_row('z', label, Some(idle_run), plumpy_idle, "MB", false);
    let label = "`damson serve`, idle 3 s / plumpy imported";
    print_row('z', label, Some(idle_serve), plumpy_idle, "MB", false);
    Ok(())
}

/// The peak resident memory (`VmHWM`, MB) of `cmd` read from `/proc` while it runs: to its end,
/// or for `idle` and then it is stopped.
fn peak_while_running(cmd: &mut Command, idle: Option<std::time::Duration>) -> Result<f64, String> {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let status = format!("/proc/{}/status", child.id());
    let started = std::time::Instant::now();
    let mut peak_kb = 0.0f64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) => {}
            Err(e) => return Err(format!("{cmd:?}: {e}")),
        }
        if idle.is_some_and(|idle| started.elapsed() >= idle) {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Ok(peak_kb / 1024.0)
}

fn print_row(
    case: char,
    label: &str,
    ours: Option<f64>,
    theirs: Option<f64>,
    unit: &str,
    more_is_better: bool,
) {
    let show = |v: Option<f64>| match v {
        None => "-".to_string(),
        Some(v) if v >= 100.0 => format!("{v:.0} {unit}"),
        Some(v) => format!("{v:.3} {unit}"),
    };
    let ratio = match (ours, theirs) {
        (Some(d), Some(p)) if d > 0.0 && p > 0.0 => {
            format!("{:.2}x", if more_is_better { d / p } else { p / d })
        }
        _ => "-".to_string(),
    };
    println!(
        "{case}     {label:<42} {:>16} {:>16} {ratio:>8}",
        show(ours),
        show(theirs)
    );
}

/// The median of a figure over runs (the runs that lack it left out).
fn median(runs: &[Value], figure: impl Fn(&Value) -> Option<f64>) -> Option<f64> {
    let mut values: Vec<f64> = runs.iter().filter_map(figure).collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[values.len() / 2])
}

/// Run `cmd` and parse the last line of its output that is a JSON object.
fn last_json(cmd: &mut Command) -> Result<Value, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed with {}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| format!("{cmd:?} printed no JSON line:\n{stdout}"))?;
    serde_json::from_str(line).map_err(|e| format!("{cmd:?} printed bad JSON ({e}): {line}"))
}

/// plumpy's reference benchmark, copied into the target directory so that the scratch files it
/// writes beside itself stay there.
fn reference_script() -> Result<PathBuf, String> {
    let shared = root()
        .parent()
        .map(|p| p.join("shared").join("bench").join("plumpy_bench.py"))
        .filter(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "plumpy's reference benchmark is not at {}: the project's shared/ folder must \
                 sit beside the checkout",
                root().join("../shared/bench/plumpy_bench.py").display()
            )
        })?;
    let dir = target_dir().join("plumpy-bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let copy = dir.join("plumpy_bench.py");
    std::fs::copy(&shared, &copy).map_err(|e| {
        format!(
            "cannot copy {} to {}: {e}",
            shared.display(),
            copy.display()
        )
    })?;
    Ok(copy)
}

//! Process logs: `damson logs` shows what a process's plugin logged and what the host said of
//! it (its state changes, how it ended), kept in the store across a host's death, within the
//! process's bound however much the plugin logs, and followed live with `--follow`.

use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::{kill_9_mid_loop_of, stderr, stdout};
use damson_tests::damson;

/// `damson <args> --store <store>`.
fn on(store: &str, args: &[&str]) -> Output {
    damson()
        .args(args)
        .args(["--store", store])
        .output()
        .expect("damson runs")
}

/// The objects `damson logs --json` printed, one a line.
fn objects(out: &Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// The log lines among `objects` (not the counts of dropped lines).
fn lines(objects: &[Value]) -> Vec<&Value> {
    objects.iter().filter(|o| o.get("seq").is_some()).collect()
}

fn messages(lines: &[&Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_string())
        .collect()
}

/// A line of `damson logs`: its time, level, source and message.
fn fields(row: &str) -> (String, String, String, String) {
    let mut rest = row;
    let mut words = Vec::new();
    for _ in 0..3 {
        let trimmed = rest.trim_start();
        let end = trimmed.find(' ').unwrap_or(trimmed.len());
        words.push(trimmed[..end].to_string());
        rest = &trimmed[end..];
    }
    let message = rest.trim_start().to_string();
    let [at, level, source] = words.try_into().unwrap();
    (at, level, source, message)
}

/// The pid a `damson run` on a store announces on stderr.
fn announced_pid(line: &str) -> Option<String> {
    let rest = line.strip_prefix("damson: process ")?;
    rest.split(' ').next().map(str::to_string)
}

#[test]
fn logs_show_the_plugins_lines_and_the_state_changes_and_survive_the_host_dying() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb").display().to_string();
    // hailstone logs `step N at M` in each step; its host dies (SIGKILL) at step 20.
    let pid = kill_9_mid_loop_of("hailstone", &store, 27, 20);

    let before = on(&store, &["logs", &pid, "--json"]);
    assert_eq!(before.status.code(), Some(0), "{}", stderr(&before));
    let before = objects(&before);
    let kept = lines(&before);
    let said = messages(&kept);
    assert_eq!(said[0], "state: created -> running", "{said:?}");
    assert_eq!(kept[0]["source"], "host");
    assert_eq!(said[1], "step 1 at 82", "{said:?}");
    assert_eq!(kept[1]["source"], "plugin");
    assert_eq!(kept[1]["level"], "info");
    assert!(
        said.contains(&"step 19 at 91".to_string()),
        "the lines of the steps checkpointed before the host died: {said:?}"
    );
    let seqs: Vec<u64> = kept.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert!(kept.iter().all(|l| l["at_ms"].as_u64().unwrap() > 0));

    // Another host continues it: the old lines stay, the new ones follow them.
    let continued = on(&store, &["continue", &pid]);
    assert_eq!(continued.status.code(), Some(0), "{}", stderr(&continued));
    let after = on(&store, &["logs", &pid]);
    assert_eq!(after.status.code(), Some(0), "{}", stderr(&after));
    let text = stdout(&after);
    let rows: Vec<&str> = text.lines().collect();
    let (at, level, source, message) = fields(rows[1]);
    assert!(at.contains('T') && at.ends_with('Z'), "a UTC time: {at}");
    assert_eq!(
        (level.as_str(), source.as_str(), message.as_str()),
        ("info", "plugin", "step 1 at 82")
    );
    let said: Vec<String> = rows.iter().map(|row| fields(row).3).collect();
    let position = |what: &str| {
        said.iter()
            .position(|m| m.starts_with(what))
            .unwrap_or_else(|| panic!("no '{what}' in {said:?}"))
    };
    assert!(position("step 19 at 91") < position("continued from its checkpoint (running"));
    assert!(position("continued from its checkpoint") < position("step 111 at 1"));
    assert_eq!(
        &said[said.len() - 2..],
        ["finished with exit status 0", "state: running -> finished"]
    );
    assert!(!text.contains("dropped"), "nothing dropped: {text}");
}

#[test]
fn logs_follow_a_running_process_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb").display().to_string();
    let mut running = damson()
        .args(["run", "hailstone", "-i", "n=27", "-i", "delay_ms=20"])
        .args(["--store", &store])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("damson starts");
    let (tx, rx) = std::sync::mpsc::channel();
    let errors = BufReader::new(running.stderr.take().unwrap()).lines();
    std::thread::spawn(move || {
        // Read on to the end, so the run never blocks on a full pipe.
        for line in errors.map_while(Result::ok) {
            if let Some(pid) = announced_pid(&line) {
                let _ = tx.send(pid);
            }
        }
    });
    let pid = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("damson run announces the pid");

    let mut follow = damson()
        .args(["logs", &pid, "--follow", "--json", "--store", &store])
        .stdout(Stdio::piped())
        .spawn()
        .expect("damson logs starts");
    let mut printed = BufReader::new(follow.stdout.take().unwrap()).lines();
    let first = printed.next().expect("a line").unwrap();
    assert!(
        running.try_wait().unwrap().is_none(),
        "the first line came while the process ran: {first}"
    );
    let mut all = vec![first];
    all.extend(printed.map_while(Result::ok));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = follow.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "--follow did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    assert!(running.wait().unwrap().success());
    let objects: Vec<Value> = all
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let said = messages(&lines(&objects));
    assert_eq!(said.last().unwrap(), "state: running -> finished");
    let steps = said.iter().filter(|m| m.starts_with("step ")).count();
    assert_eq!(steps, 111, "every line once: {said:?}");
    let seqs: Vec<u64> = objects.iter().map(|o| o["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}

#[test]
fn a_processs_log_keeps_its_last_lines_however_much_its_plugin_logs() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb").display().to_string();

    // 5000 lines in one step, a log of 50.
    let out = on(
        &store,
        &[
            "run",
            "babble",
            "-i",
            "lines=5000",
            "--log-lines",
            "50",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pid = record["pid"].as_str().unwrap();
    let log = objects(&on(&store, &["logs", pid, "--json"]));
    let dropped = log[0]["dropped"].as_u64().expect("the count comes first");
    let kept = lines(&log[1..]);
    assert_eq!(kept.len(), 50);
    let said = messages(&kept);
    let expected_plugin: Vec<String> = (4954..=5000).map(|n| format!("line {n}")).collect();
    assert_eq!(said[..47], expected_plugin[..], "the last lines: {said:?}");
    assert_eq!(
        said[47..],
        [
            "done babbling",
            "finished with exit status 0",
            "state: running -> finished"
        ]
    );
    assert_eq!(kept[47]["level"], "warn");
    // Every line logged is kept or counted: the host's first ("state: created -> running"),
    // 5000 of the plugin's in one step, then one more and the host's two at the end.
    assert_eq!(dropped + 50, 1 + 5000 + 1 + 2);
    let plain = stdout(&on(&store, &["logs", pid]));
    assert!(
        plain.starts_with(&format!("({dropped} lines dropped")),
        "{plain}"
    );

    // Without end, until the step's time runs out: the log still holds its last 20 lines.
    let out = damson()
        .args(["run", "babble", "-i", "lines=0", "--log-lines", "20"])
        .args(["--step-timeout", "1s", "--json", "--store", &store])
        // The host's own log would get every line; keep it to warnings.
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["state"], "EXCEPTED");
    let pid = record["pid"].as_str().unwrap();
    let log = objects(&on(&store, &["logs", pid, "--json"]));
    let dropped = log[0]["dropped"].as_u64().expect("some were dropped");
    assert!(dropped > 1000, "a second of logging: {dropped} dropped");
    let kept = lines(&log[1..]);
    assert_eq!(kept.len(), 20);
    let said = messages(&kept);
    let numbers: Vec<u64> = said
        .iter()
        .filter_map(|m| m.strip_prefix("line ")?.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 18, "{said:?}");
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "the plugin's last lines, in order: {numbers:?}"
    );
    assert!(said[18].starts_with("excepted: "), "{said:?}");
    assert_eq!(kept[18]["level"], "error");
    assert_eq!(said[19], "state: running -> excepted");
}

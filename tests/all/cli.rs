//! The `damson` command line: its JSON contract, exit codes and error messages.

use std::process::Output;

use damson_tests::{damson, plugin, plugin_dir};
use serde_json::{Value, json};

pub(crate) fn run(args: &[&str]) -> Output {
    damson().args(args).output().expect("damson runs")
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub(crate) fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {}", stdout(out)))
}

#[test]
fn run_json_prints_one_object_with_the_documented_keys() {
    let out = run(&["run", "add", "-i", "x=1", "-i", "y=2", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let record = json_of(&out);
    let keys: Vec<&str> = record
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "pid",
            "plugin",
            "state",
            "paused",
            "successful",
            "exit_status",
            "exit_message",
            "outputs",
            "error"
        ]
    );
    assert_eq!(record["plugin"], "add");
    assert_eq!(record["state"], "FINISHED");
    assert_eq!(record["successful"], true);
    assert_eq!(record["exit_status"], 0);
    assert_eq!(record["outputs"], json!({"sum": 3}));
    assert_eq!(record["error"], Value::Null);
}

#[test]
fn a_missing_input_exits_2_naming_the_port() {
    let out = run(&["run", "add", "-i", "x=1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("'inputs.y'"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("required value was not provided"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_wrong_type_exits_2_naming_the_port_and_the_expected_type() {
    let out = run(&["run", "add", "-i", "x=\"a\"", "-i", "y=2"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("'inputs.x'") && err.contains("expected 'int'"),
        "{err}"
    );

    // With --json the error is in the object too, and still on stderr.
    let out = run(&["run", "add", "-i", "x=\"a\"", "-i", "y=2", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let record = json_of(&out);
    assert_eq!(record["successful"], false);
    assert!(
        record["error"].as_str().unwrap().contains("inputs.x"),
        "{record}"
    );
}

#[test]
fn a_wrong_nested_value_names_the_full_dotted_path() {
    let out = run(&["run", "greet", "-i", "name=Ada", "-i", "options.shout=3"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("'inputs.options.shout'") && err.contains("expected 'bool'"),
        "{err}"
    );
}

#[test]
fn an_unknown_key_on_a_namespace_is_named() {
    let out = run(&["run", "greet", "-i", "name=Ada", "-i", "options.loud=true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("'loud'"), "{}", stderr(&out));
}

#[test]
fn inputs_come_from_a_file_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("inputs.json");
    std::fs::write(&file, r#"{"name": "Ada", "options": {"greeting": "Hi"}}"#).unwrap();
    let out = run(&[
        "run",
        "greet",
        "--inputs",
        file.to_str().unwrap(),
        "-i",
        "name=Grace",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_of(&out)["outputs"]["message"], "Hi, Grace!");

    std::fs::write(&file, "{ not json").unwrap();
    let out = run(&["run", "greet", "--inputs", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("inputs.json"), "{}", stderr(&out));
}

#[test]
fn human_output_shows_state_and_outputs() {
    let out = run(&["run", "collatz", "-i", "n=6"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("collatz "), "{text}");
    assert!(
        text.contains("FINISHED successfully (exit status 0)"),
        "{text}"
    );
    assert!(text.contains("steps: 8"), "{text}");
}

#[test]
fn a_run_gives_up_its_claim_in_the_store_before_it_exits() {
    // A process's last act is to release its claim; `run` used to exit before it, and said
    // "cannot release the claim" in about one run of three.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb");
    for _ in 0..6 {
        let out = damson()
            .args(["run", "collatz", "-i", "n=27", "--store"])
            .arg(&store)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(!stderr(&out).contains("cannot release"), "{}", stderr(&out));
    }
}

#[test]
fn an_unsuccessful_or_excepted_process_exits_1() {
    let out = run(&["run", "collatz", "-i", "n=0", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let record = json_of(&out);
    assert_eq!(
        (record["state"].as_str(), record["exit_status"].as_u64()),
        (Some("FINISHED"), Some(400))
    );
    assert_eq!(record["successful"], false);

    let out = run(&["run", "fail", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let record = json_of(&out);
    assert_eq!(record["state"], "EXCEPTED");
    assert!(
        record["error"]
            .as_str()
            .unwrap()
            .contains("the fail plugin always panics")
    );
}

#[test]
fn limits_end_runaway_plugins_within_seconds() {
    let started = std::time::Instant::now();
    let out = run(&["run", "spin", "--step-timeout", "1s", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json_of(&out)["error"]
            .as_str()
            .unwrap()
            .contains("time limit of 1s")
    );
    assert!(
        started.elapsed().as_secs() < 6,
        "took {:?}",
        started.elapsed()
    );

    let out = run(&["run", "hog", "--max-memory", "48MiB", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json_of(&out)["error"]
            .as_str()
            .unwrap()
            .contains("memory limit of 48 MiB")
    );

    let out = run(&["run", "deep", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json_of(&out)["error"]
            .as_str()
            .unwrap()
            .contains("overflowed its stack")
    );
}

#[test]
fn describe_shows_ports_and_the_outline_structure() {
    let out = run(&["describe", "collatz"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("n: int (required)"), "{text}");
    assert!(text.contains("steps: int"), "{text}");
    assert!(text.contains("400 ERROR_NOT_POSITIVE"), "{text}");
    assert!(text.contains("snapshot-safe: yes"), "{text}");
    let outline = text.split("outline:\n").nth(1).unwrap();
    assert_eq!(
        outline,
        "  start\n  while_(above_one):\n    if_(is_even):\n      halve\n    else_:\n      \
         triple_plus_one\n    count\n  finish\n"
    );
}

#[test]
fn describe_json_has_the_spec() {
    let out = run(&["describe", "greet", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let description = json_of(&out);
    assert_eq!(description["name"], "greet");
    assert_eq!(description["version"], "0.1.0");
    assert_eq!(description["world"], "damson:workflow/plugin@0.2.0");
    assert_eq!(
        description["memory_images"],
        json!({"safe": true, "reasons": []})
    );
    let inputs = &description["spec"]["inputs"];
    assert_eq!(inputs["_attrs"]["dynamic"], false);
    assert_eq!(
        inputs["options"]["greeting"],
        json!({"name": "greeting", "required": false, "valid_type": ["str"],
               "help": "The word to greet with", "default": "Hello"})
    );
    assert_eq!(inputs["name"]["required"], true);
    assert_eq!(
        description["spec"]["outputs"]["message"]["valid_type"],
        json!(["str"])
    );
}

#[test]
fn files_that_are_not_plugins_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("readme.txt");
    std::fs::write(&text, "hello").unwrap();
    let out = run(&["run", text.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is not a WebAssembly file"),
        "{}",
        stderr(&out)
    );

    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let out = run(&["run", core.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("core WebAssembly module, not a component"),
        "{}",
        stderr(&out)
    );

    let out = run(&["run", plugin("wrongworld").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("@9.0.0"), "{}", stderr(&out));

    let out = run(&["run", "baddecl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("while declaring its spec"),
        "{}",
        stderr(&out)
    );

    let out = run(&["run", "nonesuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no plugin named 'nonesuch'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["run"]).status.code(), Some(2));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(run(&["run", "add", "-i", "novalue"]).status.code(), Some(2));
    assert_eq!(
        run(&["run", "add", "--max-memory", "lots"]).status.code(),
        Some(2)
    );
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["describe", "--help"],
        &["bench", "--help"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0));
        assert!(stdout(&out).contains("Usage:"), "{}", stdout(&out));
    }
}

#[test]
fn a_second_run_reuses_the_compiled_artifact() {
    let home = tempfile::tempdir().unwrap();
    let runs: Vec<String> = (0..2)
        .map(|_| {
            let out = damson()
                .env("DAMSON_HOME", home.path())
                .env("RUST_LOG", "damson=debug")
                .args(["run", "add", "-i", "x=1", "-i", "y=2"])
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0));
            stderr(&out)
        })
        .collect();
    assert!(runs[0].contains("cached compiled artifact"), "{}", runs[0]);
    assert!(
        !runs[0].contains("reusing compiled artifact"),
        "{}",
        runs[0]
    );
    assert!(
        runs[1].contains("reusing compiled artifact from cache"),
        "{}",
        runs[1]
    );
    assert!(!runs[1].contains("compiled component"), "{}", runs[1]);
}

#[test]
fn plugins_are_found_beside_the_binary_without_configuration() {
    // `target/<profile>/damson` finds `target/wasm32-wasip2/release` on its own.
    assert!(
        plugin_dir().ends_with("wasm32-wasip2/release"),
        "plugins built elsewhere"
    );
    let out = damson()
        .env_remove("DAMSON_PLUGINS")
        .current_dir(std::env::temp_dir())
        .args(["run", "add", "-i", "x=2", "-i", "y=3", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_of(&out)["outputs"]["sum"], 5);
}

#[test]
fn plugin_log_lines_are_tagged_with_the_pid() {
    let out = damson()
        .env("RUST_LOG", "info")
        .args(["run", "greet", "-i", "name=Ada", "--json"])
        .output()
        .unwrap();
    let pid = json_of(&out)["pid"].as_str().unwrap().to_string();
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.contains("greeting Ada"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains(&format!("pid={pid}")), "{line}");
}

/// What `out` said on stderr besides its plugins' log lines (which the benchmark's plugins
/// write by the thousand, burying the error).
fn not_plugin_lines(out: &Output) -> String {
    stderr(out)
        .lines()
        .filter(|l| !l.contains("damson::plugin"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn bench_runs_plumpys_cases_and_prints_damsons_figures() {
    let args = [
        "bench",
        "--runs",
        "1",
        "--processes",
        "20",
        "--iterations",
        "50",
        "--children",
        "5",
        "--checkpoints",
        "3",
        "--mib",
        "1",
        "--spinners",
        "20",
        "--waiting",
        "50",
    ];
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", not_plugin_lines(&out));
    let text = stdout(&out);
    for case in [
        "a  20 trivial processes",
        "b  while_ loop, 50 iterations",
        "c  tiny guest, in memory: save",
        "c  tiny guest, embedded file: load",
        "c  1 MiB guest, in memory: memory image",
        "d  5 children in one step",
        "l  rust: while_ iteration (collatz)",
        "l  python: while_ iteration, checkpointed (collatz)",
        "l  js: memory image (hailstone mid-loop)",
        "l  c: checkpoint load (hailstone mid-loop)",
        "t  tenant B's trivial process, beside 20 spinning",
        "e  2 durable trivial processes, embedded store, one after another",
        "e  2 durable trivial processes, embedded store, all at once",
        "w  50 waiting processes: launched until dehydrated",
        "w  one brought back by a resume (1 in turn)",
        "w  50 waiting processes: all killed",
    ] {
        damson_tests::bench_figure(&text, case);
    }
    // No plumpy figure is built in: one column, Damson's, and plumpy named only where the
    // output says which command measures it.
    assert!(
        text.lines().any(|l| l.starts_with("case ")
            && l.split_whitespace().collect::<Vec<_>>() == ["case", "damson"]),
        "{text}"
    );
    let plumpy_lines: Vec<_> = text.lines().filter(|l| l.contains("plumpy")).collect();
    assert_eq!(
        plumpy_lines,
        ["(`cargo xtask bench` measures plumpy 0.26.1 in the same run and prints the ratios)"],
        "{text}"
    );

    let out = run(&[&args[..], &["--json", "--cases", "ad"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", not_plugin_lines(&out));
    let figures = json_of(&out);
    assert!(
        figures["a"]["processes_per_s"].as_f64().unwrap() > 0.0,
        "{figures}"
    );
    assert!(figures["d"]["ms"].as_f64().unwrap() > 0.0, "{figures}");
    assert!(
        figures.get("b").is_none(),
        "only the cases asked for: {figures}"
    );
    assert!(figures["peak_rss_mb"].as_f64().unwrap() > 1.0, "{figures}");
}

#[test]
fn run_shows_the_tree_of_processes() {
    let out = run(&["run", "parent", "-i", "mode=pair"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let tree = text
        .split("processes:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        tree.lines().next().unwrap().starts_with("  parent "),
        "{tree}"
    );
    assert_eq!(
        tree.lines().filter(|l| l.starts_with("    add ")).count(),
        3,
        "{tree}"
    );
}

/// Start `damson run` of `hailstone` (its state in memory only) on `store`, wait until it is
/// `steps` steps into its loop, and SIGKILL it. Returns the pid.
fn kill_9_mid_loop(store: &str, n: u64, steps: u64) -> String {
    kill_9_mid_loop_of("hailstone", store, n, steps)
}

/// [`kill_9_mid_loop`] for `plugin`, one of the hailstone plugins (which log `step N at`).
pub(crate) fn kill_9_mid_loop_of(plugin: &str, store: &str, n: u64, steps: u64) -> String {
    use std::io::{BufRead, BufReader};
    let mut child = damson()
        .args(["run", plugin, "-i", &format!("n={n}"), "-i", "delay_ms=10"])
        .args(["--store", store])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("damson starts");
    let mut pid = None;
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("damson: process ") {
            pid = rest.split(' ').next().map(str::to_string);
        }
        if line.contains(&format!("step {steps} at")) {
            break;
        }
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "killed by SIGKILL, not ended on its own"
    );
    pid.expect("damson run announces the pid of a durable process")
}

#[test]
fn a_process_killed_with_sigkill_mid_loop_is_continued_by_a_new_damson_to_the_same_outputs() {
    let clean = run(&["run", "hailstone", "-i", "n=97", "--json"]);
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
    let clean = json_of(&clean);

    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb").display().to_string();
    let pid = kill_9_mid_loop(&store, 97, 30);

    let ps = run(&["ps", "--store", &store, "--json"]);
    assert_eq!(ps.status.code(), Some(0), "{}", stderr(&ps));
    let listed = json_of(&ps);
    assert_eq!(listed[0]["pid"], pid);
    assert_eq!(listed[0]["state"], "RUNNING", "it died running: {listed}");
    let show = run(&["show", &pid, "--store", &store]);
    assert!(
        // Its last checkpoint came after a step: the loop's condition is next.
        stdout(&show).contains("position: 1:while_(above_one)\n"),
        "{}",
        stdout(&show)
    );

    let continued = run(&["continue", &pid, "--store", &store, "--json"]);
    assert_eq!(continued.status.code(), Some(0), "{}", stderr(&continued));
    let continued = json_of(&continued);
    assert_eq!(continued["pid"], pid);
    assert_eq!(continued["state"], "FINISHED");
    assert_eq!(continued["outputs"], clean["outputs"]);
    let checkpoints = json_of(&run(&["checkpoints", &pid, "--store", &store, "--json"]));
    assert_eq!(checkpoints[0]["tag"], Value::Null);
    assert_eq!(checkpoints[0]["state"], "FINISHED");
}

#[test]
fn ps_keeps_the_processes_of_a_state_or_a_plugin_and_refuses_a_state_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb").display().to_string();
    let waiting = json_of(&run(&[
        "run",
        "lifecycle",
        "-i",
        "mode=wait",
        "--store",
        &store,
        "--json",
    ]));
    assert_eq!(waiting["state"], "WAITING", "{waiting}");
    let finished = json_of(&run(&[
        "run", "add", "-i", "x=1", "-i", "y=2", "--store", &store, "--json",
    ]));
    assert_eq!(finished["state"], "FINISHED", "{finished}");
    let pids = |args: &[&str]| -> Vec<Value> {
        let mut all = vec!["ps", "--store", &store, "--json"];
        all.extend_from_slice(args);
        let out = run(&all);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let rows = json_of(&out);
        let rows = rows.as_array().expect("an array").clone();
        rows.iter().map(|r| r["pid"].clone()).collect()
    };
    assert_eq!(
        pids(&[]),
        [waiting["pid"].clone(), finished["pid"].clone()],
        "all of them, oldest first"
    );
    assert_eq!(pids(&["--state", "WAITING"]), [waiting["pid"].clone()]);
    assert_eq!(pids(&["--state", "finished"]), [finished["pid"].clone()]);
    assert_eq!(pids(&["--live"]), [waiting["pid"].clone()]);
    assert_eq!(pids(&["--plugin", "add"]), [finished["pid"].clone()]);
    assert!(pids(&["--plugin", "add", "--live"]).is_empty());

    let wrong = run(&["ps", "--store", &store, "--state", "sleeping"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        stderr(&wrong).contains("sleeping") && stderr(&wrong).contains("waiting"),
        "{}",
        stderr(&wrong)
    );
}

#[test]
fn a_process_that_pauses_itself_stops_the_command_and_continues_when_played() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb").display().to_string();
    let out = run(&["run", "ifblock", "--store", &store, "--json"]);
    assert_eq!(out.status.code(), Some(1), "paused is not success");
    let paused = json_of(&out);
    let pid = paused["pid"].as_str().unwrap().to_string();
    assert_eq!(paused["outputs"], json!({}));

    let still = run(&["continue", &pid, "--store", &store]);
    assert_eq!(still.status.code(), Some(1));
    assert!(stderr(&still).contains("--play"), "{}", stderr(&still));

    let played = run(&["continue", &pid, "--store", &store, "--play", "--json"]);
    assert_eq!(played.status.code(), Some(0), "{}", stderr(&played));
    assert_eq!(json_of(&played)["outputs"], json!({"s2_ran": true}));
}

#[test]
fn continue_all_resumes_every_process_a_dead_host_left() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb").display().to_string();
    let first = kill_9_mid_loop(&store, 27, 10);
    let second = kill_9_mid_loop(&store, 31, 10);
    let out = run(&["continue", "--all", "--store", &store, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let finished: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut pids: Vec<&str> = finished
        .iter()
        .map(|r| r["pid"].as_str().unwrap())
        .collect();
    pids.sort();
    let mut expected = vec![first.as_str(), second.as_str()];
    expected.sort();
    assert_eq!(pids, expected);
    assert!(finished.iter().all(|r| r["state"] == "FINISHED"));
}

#[test]
fn the_default_store_is_one_file_in_the_home_directory() {
    let home = tempfile::tempdir().unwrap();
    let out = damson()
        .env("DAMSON_HOME", home.path())
        .env_remove("DAMSON_STORE")
        .args(["run", "add", "-i", "x=1", "-i", "y=2", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pid = json_of(&out)["pid"].as_str().unwrap().to_string();
    assert!(home.path().join("store.redb").is_file());
    let show = damson()
        .env("DAMSON_HOME", home.path())
        .env_remove("DAMSON_STORE")
        .args(["show", &pid, "--json"])
        .output()
        .unwrap();
    assert_eq!(json_of(&show)["outputs"], json!({"sum": 3}));
}

#[test]
fn continuing_an_unknown_process_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb").display().to_string();
    let out = run(&["continue", "not-a-pid", "--store", &store]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no checkpoint of process not-a-pid"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_process_killed_mid_loop_is_continued_from_postgresql() {
    let url = std::env::var("DAMSON_TEST_POSTGRES").expect(
        "DAMSON_TEST_POSTGRES is not set: run the suite with `cargo xtask test`, which starts \
         PostgreSQL",
    );
    let clean = json_of(&run(&["run", "hailstone", "-i", "n=41", "--json"]));
    let pid = kill_9_mid_loop(&url, 41, 15);
    let show = json_of(&run(&["show", &pid, "--store", &url, "--json"]));
    assert_eq!(show["state"], "RUNNING");
    assert!(show["memory_image_bytes"].as_u64().unwrap() > 0);
    let continued = run(&["continue", &pid, "--store", &url, "--json"]);
    assert_eq!(continued.status.code(), Some(0), "{}", stderr(&continued));
    assert_eq!(json_of(&continued)["outputs"], clean["outputs"]);
}

#[test]
fn damson_toml_in_the_home_directory_names_the_store_and_bad_keys_are_named() {
    let home = tempfile::tempdir().unwrap();
    let store = home.path().join("configured.redb");
    std::fs::write(
        home.path().join("damson.toml"),
        format!("store = {:?}\n", store.display().to_string()),
    )
    .unwrap();
    let out = damson()
        .env("DAMSON_HOME", home.path())
        .env_remove("DAMSON_STORE")
        .args(["run", "add", "-i", "x=1", "-i", "y=2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(store.is_file(), "the store the file names was used");
    assert!(!home.path().join("store.redb").exists());

    std::fs::write(home.path().join("damson.toml"), "stor = \"typo\"\n").unwrap();
    let out = damson()
        .env("DAMSON_HOME", home.path())
        .args(["ps"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown key 'stor'"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("damson.toml"), "{}", stderr(&out));
}

#[test]
fn run_json_of_a_process_that_paused_itself_says_it_is_paused() {
    let out = run(&["run", "hoard", "-i", "ints=10", "-i", "mib=0", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "paused is not done: {}",
        stderr(&out)
    );
    let record = json_of(&out);
    assert_eq!(record["state"], "RUNNING");
    assert_eq!(record["paused"], true, "{record}");
    assert_eq!(record["successful"], Value::Null);

    let finished = json_of(&run(&["run", "add", "-i", "x=1", "-i", "y=2", "--json"]));
    assert_eq!(finished["paused"], false, "every record says: {finished}");
}

#[test]
fn with_json_every_failure_is_one_json_object_too() {
    let out = run(&["run", "no-such-plugin", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let record = json_of(&out);
    assert_eq!(record["pid"], Value::Null);
    assert_eq!(record["plugin"], "no-such-plugin");
    assert_eq!(record["successful"], false);
    let error = record["error"].as_str().unwrap();
    assert!(
        error.contains("no plugin named 'no-such-plugin'"),
        "{error}"
    );
    assert!(
        error.contains("--plugins DIR"),
        "the CLI says how to look elsewhere: {error}"
    );

    let out = run(&["run", "add", "-i", "x=one", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        json_of(&out)["error"]
            .as_str()
            .unwrap()
            .contains("inputs.x")
    );

    let home = tempfile::tempdir().unwrap();
    let store = home.path().join("store.redb");
    for args in [
        vec!["show", "nope", "--json"],
        vec!["continue", "nope", "--json"],
        vec!["checkpoints", "nope", "--json"],
    ] {
        let out = run(&[&args[..], &["--store", store.to_str().unwrap()]].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let json = json_of(&out);
        assert!(
            json["error"].as_str().unwrap().contains("nope"),
            "{args:?}: {json}"
        );
    }
}

#[test]
fn a_bad_inputs_file_is_named_with_its_position_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("inputs.json");
    std::fs::write(&file, "{\"x\": 1,,}").unwrap();
    let out = run(&["run", "add", "--inputs", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert!(text.contains("is not valid JSON"), "{text}");
    assert_eq!(text.matches("line 1").count(), 1, "{text}");
    assert!(text.contains("column 9"), "{text}");
}

#[test]
fn a_process_that_misses_a_required_output_names_it_in_its_end() {
    let out = run(&["run", "outputs", "-i", "mode=missing"]);
    assert_eq!(out.status.code(), Some(1));
    let first = stdout(&out).lines().next().unwrap().to_string();
    assert!(
        first.contains(
            "FINISHED unsuccessfully: required output 'outputs.result.value' was not emitted"
        ),
        "{first}"
    );
}

/// `damson run … | head` ends once `head` has what it wanted, like any Unix command: it does
/// not run the rest of the process with nobody to read it.
#[test]
fn run_ends_when_its_output_pipe_closes() {
    use std::io::{BufRead, BufReader};
    let (reader, writer) = std::io::pipe().unwrap();
    let mut child = damson()
        .args(["run", "hailstone", "-i", "n=27", "-i", "delay_ms=200"])
        .args(["--store", "memory:"])
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .spawn()
        .unwrap();
    // Plugin log lines arrive, a step every 200 ms: the whole run would take 22 s.
    let mut lines = BufReader::new(reader).lines();
    for _ in 0..3 {
        lines.next().unwrap().unwrap();
    }
    drop(lines); // what `head -3` does when it has its lines
    let closed = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            closed.elapsed() < std::time::Duration::from_secs(5),
            "damson runs on after its output pipe closed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

//! Plugins in Python, JavaScript and C next to Rust ones: the same work chain, the same
//! failures and limits, children across languages, and memory images that survive a SIGKILL,
//! each built from source by `cargo xtask plugins`.

use serde_json::{Value, json};

use crate::cli::{json_of, kill_9_mid_loop_of, run, stderr, stdout};

/// Each language's suffix on its plugins' names (Rust's have none).
const LANGUAGES: [(&str, &str); 4] = [
    ("Rust", ""),
    ("Python", "-py"),
    ("JavaScript", "-js"),
    ("C", "-c"),
];
/// The languages with a `trials` plugin (Rust's failures and limits have plugins of their own).
const GUESTS: [(&str, &str); 3] = [("Python", "-py"), ("JavaScript", "-js"), ("C", "-c")];

fn run_json(args: &[&str]) -> (Option<i32>, Value) {
    let out = run(&[args, &["--json"]].concat());
    (out.status.code(), json_of(&out))
}

#[test]
fn the_collatz_work_chain_gives_the_same_outputs_in_every_language() {
    for (language, suffix) in LANGUAGES {
        let plugin = format!("collatz{suffix}");
        let (code, record) = run_json(&["run", &plugin, "-i", "n=27"]);
        assert_eq!(code, Some(0), "{language}: {record}");
        assert_eq!(
            record["outputs"],
            json!({"steps": 111, "peak": 9232}),
            "{language}"
        );

        let (code, record) = run_json(&["run", &plugin, "-i", "n=0"]);
        assert_eq!(code, Some(1), "{language}: {record}");
        assert_eq!(record["state"], "FINISHED", "{language}");
        assert_eq!(record["exit_status"], 400, "{language}");
        assert_eq!(
            record["exit_message"], "n must be at least 1, got 0",
            "{language}"
        );
    }
}

#[test]
fn every_language_declares_the_same_ports_and_outline_and_is_snapshot_safe() {
    let spec_of = |plugin: &str| {
        let out = run(&["describe", plugin, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        json_of(&out)
    };
    let rust = spec_of("collatz");
    for (language, suffix) in LANGUAGES {
        for name in ["collatz", "hailstone"] {
            let plugin = format!("{name}{suffix}");
            let described = spec_of(&plugin);
            assert_eq!(
                described["memory_images"],
                json!({"safe": true, "reasons": []}),
                "{language}"
            );
            if name == "collatz" {
                assert_eq!(described["spec"], rust["spec"], "{language}");
            }
            let human = stdout(&run(&["describe", &plugin]));
            assert!(human.contains("snapshot-safe: yes"), "{language}: {human}");
            assert!(
                human.contains("n: int (required) — Where to start (at least 1)"),
                "{human}"
            );
        }
    }
}

#[test]
fn invalid_inputs_exit_2_naming_the_port_in_every_language() {
    for (language, suffix) in LANGUAGES {
        let plugin = format!("collatz{suffix}");
        let wrong = run(&["run", &plugin, "-i", "n=twenty"]);
        assert_eq!(wrong.status.code(), Some(2), "{language}");
        assert!(
            stderr(&wrong).contains("port 'inputs.n'") && stderr(&wrong).contains("expected 'int'"),
            "{language}: {}",
            stderr(&wrong)
        );
        let missing = run(&["run", &plugin]);
        assert_eq!(missing.status.code(), Some(2), "{language}");
        assert!(
            stderr(&missing).contains("required value was not provided for 'inputs.n'"),
            "{language}: {}",
            stderr(&missing)
        );
    }
}

#[test]
fn a_step_that_raises_ends_excepted_with_the_languages_own_message() {
    for (language, suffix, says) in [
        (
            "Python",
            "-py",
            &[
                "Traceback (most recent call last)",
                "raise RuntimeError(\"asked to raise\")",
                "RuntimeError: asked to raise",
            ][..],
        ),
        (
            "JavaScript",
            "-js",
            &["Error: asked to raise", "at act ("][..],
        ),
        ("C", "-c", &["step 'act' failed: asked to raise"][..]),
    ] {
        let (code, record) = run_json(&["run", &format!("trials{suffix}"), "-i", "do=raise"]);
        assert_eq!(code, Some(1), "{language}");
        assert_eq!(record["state"], "EXCEPTED", "{language}: {record}");
        let error = record["error"].as_str().unwrap();
        for said in says {
            assert!(error.contains(said), "{language}: {said:?} not in {error}");
        }
    }
}

/// Each guest SDK's durable timers: a sleep that `damson run` waits out, and a wait for a
/// signal that nobody sends, ended by its timeout (Rust's: the `sleeper` and `approval`
/// plugins).
#[test]
fn plugins_of_every_language_sleep_and_time_out() {
    for (language, suffix) in GUESTS {
        let plugin = format!("trials{suffix}");
        let started = std::time::Instant::now();
        let (code, slept) = run_json(&["run", &plugin, "-i", "do=sleep"]);
        assert_eq!(code, Some(0), "{language}: {slept}");
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(300),
            "{language}: not before its timer"
        );
        let (code, asked) = run_json(&["run", &plugin, "-i", "do=ask"]);
        assert_eq!(code, Some(0), "{language}: {asked}");
        assert_eq!(asked["outputs"]["timed_out"], true, "{language}: {asked}");
    }
}

/// Each guest SDK's retry policy: a step that fails on its first two attempts is tried again
/// from the state before it and succeeds on its third (Rust's: the `approval` plugin).
#[test]
fn a_flaky_step_is_retried_until_it_succeeds_in_every_language() {
    for (language, suffix) in GUESTS {
        let (code, record) = run_json(&["run", &format!("trials{suffix}"), "-i", "do=flaky"]);
        assert_eq!(code, Some(0), "{language}: {record}");
        assert_eq!(record["outputs"]["attempts"], 3, "{language}: {record}");
        // An error of a kind the policy leaves out: one attempt, and the process excepts.
        let (code, record) = run_json(&["run", &format!("trials{suffix}"), "-i", "do=refuse"]);
        assert_eq!(code, Some(1), "{language}: {record}");
        assert_eq!(
            record["error"],
            "step 'wobble' failed: refused outright (its retry policy does not retry an error \
             of kind 'refused')",
            "{language}"
        );
    }
}

#[test]
fn the_memory_cap_and_the_step_timeout_stop_plugins_of_every_language() {
    for (language, suffix) in GUESTS {
        let plugin = format!("trials{suffix}");
        let (code, record) = run_json(&["run", &plugin, "-i", "do=hog", "--max-memory", "64MiB"]);
        assert_eq!(code, Some(1), "{language}");
        assert_eq!(record["state"], "EXCEPTED", "{language}: {record}");
        assert!(
            record["error"]
                .as_str()
                .unwrap()
                .contains("exceeded the memory limit of 64 MiB"),
            "{language}: {record}"
        );

        let started = std::time::Instant::now();
        let (code, record) = run_json(&["run", &plugin, "-i", "do=spin", "--step-timeout", "1s"]);
        assert_eq!(code, Some(1), "{language}");
        assert!(
            record["error"]
                .as_str()
                .unwrap()
                .contains("exceeded the time limit of 1s per step"),
            "{language}: {record}"
        );
        // Loose: a spinning plugin is stopped, not waited out (the default limit is 10 s).
        assert!(
            started.elapsed().as_secs() < 9,
            "{language}: {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn parents_await_children_written_in_other_languages() {
    for (parent, child) in [
        ("trials-py", "collatz-c"),
        ("trials-js", "collatz-py"),
        ("trials-c", "collatz-js"),
        ("trials-py", "collatz"),
    ] {
        let (code, record) = run_json(&[
            "run",
            parent,
            "-i",
            "do=child",
            "-i",
            &format!("child={child}"),
        ]);
        assert_eq!(code, Some(0), "{parent} awaiting {child}: {record}");
        assert_eq!(
            record["outputs"],
            json!({"child_steps": 111}),
            "{parent} awaiting {child}"
        );
    }
}

#[test]
fn a_process_killed_with_sigkill_mid_loop_continues_from_its_memory_image_in_every_language() {
    // The hailstone plugins keep their whole running state in the language's own variables
    // (a HashMap, a dict, a Map, a static array): only a memory image carries it over.
    let (_, clean) = run_json(&["run", "hailstone", "-i", "n=97"]);
    assert_eq!(clean["outputs"]["steps"], 118, "{clean}");
    for (language, suffix) in GUESTS {
        let plugin = format!("hailstone{suffix}");
        let (_, own) = run_json(&["run", &plugin, "-i", "n=97"]);
        assert_eq!(
            own["outputs"], clean["outputs"],
            "{language} runs as Rust does"
        );

        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store.redb").display().to_string();
        let pid = kill_9_mid_loop_of(&plugin, &store, 97, 30);
        let checkpoints = json_of(&run(&["checkpoints", &pid, "--store", &store, "--json"]));
        assert_eq!(
            checkpoints[0]["state"], "RUNNING",
            "{language}: {checkpoints}"
        );
        assert!(
            checkpoints[0]["memory_image_bytes"].as_u64().unwrap_or(0) > 0,
            "{language}: the checkpoint holds a memory image: {checkpoints}"
        );

        let (code, continued) = run_json(&["continue", &pid, "--store", &store]);
        assert_eq!(code, Some(0), "{language}: {continued}");
        assert_eq!(continued["outputs"], clean["outputs"], "{language}");
    }
}

//! `damson worker` over a real RabbitMQ, driven from outside: by a Python kiwipy 0.9 client
//! (JSON encoder and decoder) — a launch task, then status, pause, play and kill by RPC, then a
//! launch that waits for its outputs —, by plumpy 0.26.1's controllers over kiwipy's default
//! (YAML) communicator, with the identical calls sent to real plumpy workers to compare, and by
//! the `damson` control commands. `cargo xtask test` provides the broker (`DAMSON_TEST_AMQP`)
//! and a Python with kiwipy and plumpy from PyPI (`DAMSON_TEST_PYTHON`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use damson_tests::damson;
use serde_json::{Value, json};

fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run the suite with `cargo xtask test`, which starts RabbitMQ and \
             installs kiwipy"
        )
    })
}

/// A `damson worker` that is stopped (SIGKILL) when dropped.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Exchange and queue names of a test's own, so that tests sharing the broker never meet.
fn names(test: &str) -> Vec<String> {
    ["messages", "tasks", "queue"]
        .iter()
        .map(|n| format!("{test}.{n}.{}", std::process::id()))
        .collect()
}

/// The options that point a `damson` command at these names.
fn naming(names: &[String]) -> Vec<String> {
    [
        "--message-exchange",
        &names[0],
        "--task-exchange",
        &names[1],
        "--task-queue",
        &names[2],
    ]
    .map(String::from)
    .to_vec()
}

/// A `damson worker` on the test broker with these names, ready.
fn worker(url: &str, names: &[String], store: &std::path::Path) -> Worker {
    let mut child = damson()
        .args(["worker", "--broker", url])
        .args(naming(names))
        .arg("--store")
        .arg(store)
        .stderr(Stdio::piped())
        .spawn()
        .expect("damson worker starts");
    let stderr = child.stderr.take().unwrap();
    let worker = Worker(child);
    let mut lines = BufReader::new(stderr).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("damson worker: ready"));
    assert!(ready.is_some(), "the worker did not start");
    // Keep draining the worker's stderr so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    worker
}

#[test]
fn a_kiwipy_client_launches_asks_pauses_plays_and_kills_damson_processes() {
    let url = required("DAMSON_TEST_AMQP");
    let python = required("DAMSON_TEST_PYTHON");
    let names = names("interop");
    let dir = tempfile::tempdir().unwrap();
    let worker = worker(&url, &names, &dir.path().join("store.redb"));

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/kiwipy_client.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(&url)
        .args(&names)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the kiwipy client failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replies: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(replies["status"]["state"], "ProcessState.WAITING");
    assert_eq!(replies["pause"], true);
    assert_eq!(replies["status_paused"]["paused"], true);
    assert_eq!(replies["play"], true);
    assert_eq!(replies["kill"], true);
    assert_eq!(replies["launch_and_wait"]["sum"], 3);
    assert_eq!(replies["signal"], json!({"seq": 1, "duplicate": false}));
    assert_eq!(
        replies["signal_again"],
        json!({"seq": 1, "duplicate": true})
    );
    // The approval took kiwipy's signal once played, and finished with its payload.
    let approval = replies["approval_pid"].as_str().unwrap();
    let store = dir.path().join("store.redb");
    let started = std::time::Instant::now();
    let shown = loop {
        let out = damson_tests::damson()
            .args(["show", approval, "--json", "--store"])
            .arg(&store)
            .output()
            .unwrap();
        let shown: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if shown["state"] == "FINISHED" || started.elapsed() > std::time::Duration::from_secs(30) {
            break shown;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(shown["outputs"]["approved_by"], "kiwipy", "{shown}");
    drop(worker);
}

#[test]
fn the_control_commands_submit_ask_pause_play_and_kill_through_the_broker() {
    let url = required("DAMSON_TEST_AMQP");
    let names = names("control");
    let dir = tempfile::tempdir().unwrap();
    let _worker = worker(&url, &names, &dir.path().join("store.redb"));
    let damson_ = |args: &[&str]| {
        damson()
            .args(args)
            .args(["--broker", &url])
            .args(naming(&names))
            .output()
            .expect("damson runs")
    };
    let text = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).trim().to_string();

    let out = damson_(&["submit", "lifecycle", "-i", "mode=wait"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = text(&out);
    assert_eq!(pid.len(), 36, "a pid: {pid}");

    let status = || -> Value {
        let out = damson_(&["status", &pid, "--json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(&text(&out)).unwrap()
    };
    let mut waiting = status();
    for _ in 0..200 {
        if waiting["state"] == "ProcessState.WAITING" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        waiting = status();
    }
    assert_eq!(waiting["state"], "ProcessState.WAITING");

    let paused = damson_(&["pause", &pid, "-m", "hold on"]);
    assert_eq!(paused.status.code(), Some(0));
    assert_eq!(text(&paused), format!("paused {pid}"));
    assert_eq!(status()["paused"], true);
    assert_eq!(text(&damson_(&["play", &pid])), format!("played {pid}"));
    assert_eq!(status()["paused"], false);
    assert_eq!(
        text(&damson_(&["kill", &pid, "-m", "done"])),
        format!("killed {pid}")
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    let gone = damson_(&["status", &pid]);
    assert_eq!(
        gone.status.code(),
        Some(2),
        "a killed process answers no more"
    );
    assert!(String::from_utf8_lossy(&gone.stderr).contains(&pid));
}

#[test]
fn bench_measures_rpc_and_launches_over_rabbitmq() {
    let url = required("DAMSON_TEST_AMQP");
    let out = damson()
        .args(["bench", "--cases", "fg", "--runs", "1", "--messages", "10"])
        .args(["--broker", &url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for case in [
        "f  RPC status round trip",
        "f  10 launches, one at a time",
        "f  10 launches, all at once",
        "g  10 processes on RabbitMQ",
    ] {
        damson_tests::bench_figure(&text, case);
    }
}

/// A real plumpy worker (`interop/plumpy_worker.py`) whose processes listen on kiwipy's
/// communicator `wrapped` for the worker's loop, as AiiDA's do, or `bare`. Its stderr (plumpy's
/// tracebacks for the bad bodies) goes to `log`.
fn plumpy_worker(python: &str, url: &str, names: &[String], mode: &str, log: &Path) -> Worker {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/plumpy_worker.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(url)
        .args(names)
        .arg(mode)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("python runs");
    let stdout = child.stdout.take().unwrap();
    let worker = Worker(child);
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l == "ready");
    assert!(
        ready,
        "the plumpy worker did not start: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    worker
}

/// What plumpy's controllers got from the worker listening on `names`
/// (`interop/plumpy_controllers.py`).
fn controllers(python: &str, url: &str, names: &[String]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/plumpy_controllers.py");
    let out = Command::new(python)
        .arg(script)
        .arg(url)
        .args(names)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "plumpy's controllers failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

/// The calls of `section` whose answers differ between `damson` and `plumpy`, after `same`
/// made each answer comparable.
fn differences(
    section: &str,
    damson: &Value,
    plumpy: &Value,
    same: impl Fn(&str, &Value) -> Value,
) -> Vec<String> {
    let (damson, plumpy) = (&damson[section], &plumpy[section]);
    let calls = plumpy.as_object().expect("a section of calls");
    assert_eq!(
        damson.as_object().map(|d| d.len()),
        Some(calls.len()),
        "the same calls went to both workers"
    );
    calls
        .iter()
        .filter(|(call, answer)| same(call, &damson[call.as_str()]) != same(call, answer))
        .map(|(call, answer)| {
            format!(
                "{section}/{call}: Damson {} but plumpy {answer}",
                damson[call.as_str()]
            )
        })
        .collect()
}

/// `answer` without how many `pending` replies went before it.
fn without_depth(answer: &Value) -> Value {
    let mut answer = answer.clone();
    if let Some(answer) = answer.as_object_mut() {
        answer.remove("depth");
    }
    answer
}

#[test]
fn plumpy_controllers_get_from_damson_what_they_get_from_a_plumpy_worker() {
    let url = required("DAMSON_TEST_AMQP");
    let python = required("DAMSON_TEST_PYTHON");
    let dir = tempfile::tempdir().unwrap();
    // The three workers, each on names of its own, driven at once.
    let (damson, bare, wrapped) = std::thread::scope(|scope| {
        let damson = scope.spawn(|| {
            let names = names("plumpy-damson");
            let _worker = worker(&url, &names, &dir.path().join("store.redb"));
            controllers(&python, &url, &names)
        });
        let plumpy = |mode: &'static str| {
            let (url, python, dir) = (&url, &python, &dir);
            scope.spawn(move || {
                let names = names(&format!("plumpy-{mode}"));
                let log = dir.path().join(format!("plumpy-{mode}.log"));
                let _worker = plumpy_worker(python, url, &names, mode, &log);
                controllers(python, url, &names)
            })
        };
        let (bare, wrapped) = (plumpy("bare"), plumpy("wrapped"));
        let answers = |h: std::thread::ScopedJoinHandle<'_, Value>| h.join().expect("no panic");
        (answers(damson), answers(bare), answers(wrapped))
    });
    let texts = &damson["texts"];

    // A process given kiwipy's communicator answers exactly as a Damson process does: the same
    // values, failures and number of `pending` replies (status none, pause, play, kill and
    // every task one), so both controllers work.
    let bare_differs = |call: &str, answer: &Value| -> Value {
        match call {
            // Damson's status has the fields of plumpy's and more (documented).
            "status" => {
                let mut answer = answer.clone();
                if let Some(status) = answer.get_mut("value").and_then(Value::as_object_mut) {
                    let extras = [
                        "status",
                        "position",
                        "outputs",
                        "waiting_for",
                        "timer",
                        "sleeping",
                    ];
                    for extra in extras {
                        status.remove(extra);
                    }
                }
                answer
            }
            // plumpy's `create` leaves the created process listening, so its continuation
            // in the same worker fails ("RPC identifier <pid>" is taken); Damson's runs.
            "continue" | "continue by an integer pid" | "execute" => Value::Null,
            _ => answer.clone(),
        }
    };
    let mut found = differences("thread", &damson, &bare, bare_differs);
    found.extend(differences("asyncio", &damson, &bare, bare_differs));
    found.extend(differences("broadcasts", &damson, &bare, bare_differs));
    assert!(found.is_empty(), "{found:#?}\n{texts}");
    assert_eq!(damson["thread"]["status"]["depth"], 0);
    assert_eq!(
        damson["thread"]["status"]["value"]["state"],
        "ProcessState.WAITING"
    );
    assert_eq!(
        damson["thread"]["pause"],
        json!({"value": true, "depth": 1})
    );
    assert_eq!(
        damson["thread"]["launch and wait"],
        json!({"value": {"sum": 3}, "depth": 1})
    );
    assert_eq!(
        damson["thread"]["continue"],
        json!({"value": {"default": 5}, "depth": 1})
    );
    // AiiDA's integer pids, as plumpy takes them: answered as integers, routed, stored.
    assert_eq!(
        damson["thread"]["launch with an integer pid"],
        json!({"value": 1001, "depth": 1})
    );
    assert_eq!(
        damson["thread"]["status by an integer pid"],
        "ProcessState.WAITING"
    );
    assert_eq!(
        damson["thread"]["continue by an integer pid"],
        json!({"value": {"sum": 9}, "depth": 1})
    );
    assert!(
        bare["texts"]["continue"]
            .as_str()
            .unwrap()
            .contains("RPC identifier"),
        "{}",
        bare["texts"]
    );
    assert_eq!(damson["asyncio"]["pause"], json!({"value": true}));
    assert_eq!(damson["asyncio"]["execute"], json!({"value": {"sum": 5}}));
    // plumpy's threaded `execute_process` waits 5 s for a reply that comes at once, then fails
    // (`TimeoutError: task_send after 5.0 seconds`), from either worker.
    assert_eq!(damson["thread"]["execute"], bare["thread"]["execute"]);
    let heard = json!([
        "state_changed.None.created",
        "state_changed.created.running",
        "state_changed.running.waiting",
        "state_changed.waiting.killed"
    ]);
    assert_eq!(damson["thread"]["state changes"], heard);
    assert_eq!(damson["broadcasts"]["state changes"], json!([heard, heard]));
    assert_eq!(damson["broadcasts"]["pause_all"], json!([true, true]));

    // AiiDA's processes (on the wrapped communicator) send one `pending` more for pause, play
    // and kill, which the threaded controller unwraps and the asyncio one cannot.
    let found = differences("thread", &damson, &wrapped, |call, answer| {
        without_depth(&bare_differs(call, answer))
    });
    assert!(found.is_empty(), "{found:#?}\n{texts}");
    assert_eq!(
        wrapped["thread"]["pause"],
        json!({"value": true, "depth": 2})
    );
    for intent in ["status", "pause", "play", "kill"] {
        assert_eq!(
            wrapped["asyncio"][intent],
            json!({"value": "an unresolved future"}),
            "{intent}"
        );
    }

    // Bad bodies: where plumpy answers, Damson answers the same; where plumpy never answers
    // (garbage, another codec) or passes a task round for ever (an unknown type), Damson
    // answers with an error, and dead-letters the task.
    let bad = bare["bad"].as_object().unwrap();
    for (call, plumpy) in bad {
        let damson = &damson["bad"][call.as_str()];
        if call.starts_with("rpc ") || call.starts_with("task ") {
            assert_eq!(
                damson["failure"],
                json!({"exception": "RemoteException"}),
                "{call}: {texts}"
            );
            if plumpy["failure"].get("no reply").is_none() {
                assert_eq!(damson, plumpy, "{call}");
            }
        }
    }
    assert_eq!(bad["task unknown type"]["depth"], "many", "plumpy's loop");
    assert_eq!(bad["rpc garbage"]["failure"], json!({"no reply": true}));
    assert_eq!(
        damson["bad"]["status after bad rpcs"],
        "ProcessState.WAITING"
    );
    assert_eq!(
        damson["bad"]["serving after bad tasks"],
        json!({"value": {"sum": 3}, "depth": 1})
    );
    assert_eq!(
        bad["serving after bad tasks"],
        damson["bad"]["serving after bad tasks"]
    );
    // The garbage, the other codec and the unknown type (after its passes) wait there.
    assert_eq!(damson["bad"]["dead-lettered"], 3);
    let text = |call: &str| texts[call].as_str().unwrap_or_default().to_string();
    assert!(text("task garbage").contains("neither JSON nor YAML"));
    assert!(text("task unknown type").contains("unknown"));
    assert!(text("task a list").contains("not a list"));
    assert!(text("rpc unknown intent").contains("'frobnicate'"));
    assert!(text("launch of an unknown class").contains("no plugin named 'nothing-by-this-name'"));
    assert!(
        !text("launch of an unknown class").contains('/'),
        "no host path"
    );
}

/// The local broker's queues whose names start with `prefix`, with whether each is durable and
/// whether it is exclusive.
fn queues(prefix: &str) -> Vec<(String, bool, bool)> {
    let program = ["/usr/sbin/rabbitmqctl", "rabbitmqctl"]
        .into_iter()
        .find(|p| !p.starts_with('/') || Path::new(p).is_file())
        .unwrap();
    let out = Command::new(program)
        .args(["list_queues", "-q", "name", "durable", "exclusive"])
        .args(["--formatter", "json"])
        .output()
        .expect("rabbitmqctl runs (the suite's RabbitMQ is the local node)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    listed
        .iter()
        .filter_map(|q| {
            let name = q["name"].as_str()?;
            name.starts_with(prefix).then(|| {
                let flag = |key: &str| q[key].as_bool().unwrap();
                (name.to_string(), flag("durable"), flag("exclusive"))
            })
        })
        .collect()
}

#[test]
fn every_queue_a_worker_declares_is_durable_or_exclusive() {
    let url = required("DAMSON_TEST_AMQP");
    let names = names("declared");
    let dir = tempfile::tempdir().unwrap();
    let _worker = worker(&url, &names, &dir.path().join("store.redb"));
    let out = damson()
        .args(["submit", "lifecycle", "-i", "mode=wait", "--broker", &url])
        .args(naming(&names))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();

    // The process listens on an RPC queue of its own once it runs.
    let mut declared = queues(&names[0]);
    for _ in 0..200 {
        if declared.iter().any(|(name, ..)| name.contains("-rpc-")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        declared = queues(&names[0]);
    }
    declared.extend(queues(&names[2]));
    let kinds = |kind: &str| declared.iter().filter(|(n, ..)| n.contains(kind)).count();
    assert!(
        kinds("-rpc-") >= 1 && kinds("-reply-") >= 1 && kinds("-broadcast-") >= 1,
        "{declared:?}"
    );
    let mut durable: Vec<&str> = declared
        .iter()
        .filter(|(_, durable, _)| *durable)
        .map(|(name, ..)| name.as_str())
        .collect();
    durable.sort_unstable();
    let dead_letters = format!("{}.dead-letter", names[2]);
    assert_eq!(
        durable,
        [names[2].as_str(), dead_letters.as_str()],
        "{declared:?}"
    );
    for (name, durable, exclusive) in &declared {
        assert!(
            durable ^ exclusive,
            "{name} is durable or exclusive, not both or neither"
        );
    }
    let killed = damson()
        .args(["kill", &pid, "--broker", &url])
        .args(naming(&names))
        .output()
        .unwrap();
    assert_eq!(killed.status.code(), Some(0));
}

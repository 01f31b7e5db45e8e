//! `damson serve`, the broker-less daemon: processes submitted, watched and controlled from
//! other `damson` commands through its socket, and continued when it starts again after a
//! `kill -9`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use damson_tests::damson;
use serde_json::Value;

/// A `damson serve` on `home`, listening; SIGKILLed when dropped.
pub(crate) struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn serve(home: &Path) -> Serve {
    serve_with(home, damson())
}

/// `damson serve` on `home`, from `command` (a `damson` set up further).
fn serve_with(home: &Path, mut command: std::process::Command) -> Serve {
    let mut child = command
        .env("DAMSON_HOME", home)
        .env_remove("DAMSON_STORE")
        .arg("serve")
        .stderr(Stdio::piped())
        .spawn()
        .expect("damson serve starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("damson serve: listening"));
    assert!(listening.is_some(), "damson serve did not start");
    std::thread::spawn(move || for _ in lines {});
    Serve(child)
}

pub(crate) fn on(home: &Path, args: &[&str]) -> Output {
    damson()
        .env("DAMSON_HOME", home)
        .env_remove("DAMSON_STORE")
        .args(args)
        .output()
        .expect("damson runs")
}

/// `damson ARGS --json` on `home`: its exit status and the JSON object it printed.
pub(crate) fn json_on(home: &Path, args: &[&str]) -> (Option<i32>, Value) {
    let out = on(home, &[args, &["--json"]].concat());
    let printed = serde_json::from_str(&text(&out))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out)));
    (out.status.code(), printed)
}

pub(crate) fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn submit_watch_pause_play_and_kill_work_with_no_broker() {
    let home = tempfile::tempdir().unwrap();
    let _daemon = serve(home.path());

    let pid = text(&on(
        home.path(),
        &["submit", "hailstone", "-i", "n=27", "-i", "delay_ms=5"],
    ));
    assert_eq!(pid.len(), 36, "a pid: {pid}");
    let watched = on(home.path(), &["watch", &pid, "--json"]);
    assert_eq!(
        watched.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&watched.stderr)
    );
    let changes: Vec<Value> = text(&watched)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let states: Vec<&Value> = changes.iter().filter(|c| c.get("to").is_some()).collect();
    assert_eq!(states.last().unwrap()["to"], "finished", "{changes:?}");
    assert!(
        changes
            .iter()
            .any(|c| c["status"].as_str().is_some_and(|s| s.starts_with("step "))),
        "a progress line while it runs: {changes:?}"
    );
    assert_eq!(
        changes.last().unwrap()["outputs"]["steps"],
        111,
        "{changes:?}"
    );

    let waiting = text(&on(
        home.path(),
        &["submit", "lifecycle", "-i", "mode=wait"],
    ));
    let status = || -> Value {
        serde_json::from_str(&text(&on(home.path(), &["status", &waiting, "--json"]))).unwrap()
    };
    let started = Instant::now();
    while status()["state"] != "ProcessState.WAITING" {
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        text(&on(home.path(), &["pause", &waiting])),
        format!("paused {waiting}")
    );
    assert_eq!(status()["paused"], true);
    assert_eq!(
        text(&on(home.path(), &["play", &waiting])),
        format!("played {waiting}")
    );
    assert_eq!(
        text(&on(home.path(), &["kill", &waiting])),
        format!("killed {waiting}")
    );
    // The store says how it ended, while the daemon runs.
    let shown: Value =
        serde_json::from_str(&text(&on(home.path(), &["show", &waiting, "--json"]))).unwrap();
    assert_eq!(shown["state"], "KILLED");
}

#[test]
fn a_daemon_started_again_after_kill_9_continues_its_processes() {
    let home = tempfile::tempdir().unwrap();
    let daemon = serve(home.path());
    let pid = text(&on(
        home.path(),
        &["submit", "hailstone", "-i", "n=27", "-i", "delay_ms=20"],
    ));
    std::thread::sleep(Duration::from_millis(400));
    drop(daemon); // SIGKILL, mid-loop
    let shown: Value =
        serde_json::from_str(&text(&on(home.path(), &["show", &pid, "--json"]))).unwrap();
    assert_eq!(shown["state"], "RUNNING", "it died mid-run");

    let _again = serve(home.path());
    let started = Instant::now();
    loop {
        let shown: Value =
            serde_json::from_str(&text(&on(home.path(), &["show", &pid, "--json"]))).unwrap();
        if shown["state"] == "FINISHED" {
            assert_eq!(shown["outputs"]["steps"], 111);
            assert_eq!(shown["outputs"]["peak"], 9232);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{shown}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// While a daemon runs a process, a `damson continue` of it on the same home does not run a
/// second copy: it is refused, naming the host that holds it, with exit status 3. Once the
/// daemon has died, the same command carries the process on at once.
#[test]
fn a_process_a_live_host_runs_is_not_continued_twice() {
    let home = tempfile::tempdir().unwrap();
    let daemon = serve(home.path());
    let pid = text(&on(
        home.path(),
        &["submit", "hailstone", "-i", "n=27", "-i", "delay_ms=20"],
    ));
    std::thread::sleep(Duration::from_millis(300));
    let refused = on(home.path(), &["continue", &pid, "--json"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("another host runs it"), "{stderr}");
    assert!(
        stderr.contains("held by damson@"),
        "names the holder: {stderr}"
    );
    let json: Value = serde_json::from_str(&text(&refused)).unwrap();
    assert!(
        json["error"].as_str().unwrap().contains("held by"),
        "{json}"
    );
    // The daemon's copy runs on undisturbed.
    let status: Value =
        serde_json::from_str(&text(&on(home.path(), &["status", &pid, "--json"]))).unwrap();
    assert_eq!(status["state"], "ProcessState.RUNNING", "{status}");

    drop(daemon); // SIGKILL: its claims go with it
    let continued = on(home.path(), &["continue", &pid, "--json"]);
    assert_eq!(
        continued.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&continued.stderr)
    );
    let record: Value = serde_json::from_str(&text(&continued)).unwrap();
    assert_eq!(record["outputs"]["steps"], 111);
}

/// `status`, `kill` and `watch` of a process that has ended say so, and how, from the store,
/// with exit status 1; of a process nobody knows, exit status 2 naming it.
#[test]
fn control_commands_say_how_a_process_ended() {
    let home = tempfile::tempdir().unwrap();
    let _daemon = serve(home.path());
    let pid = text(&on(
        home.path(),
        &["submit", "add", "-i", "x=1", "-i", "y=2"],
    ));
    let watched = on(home.path(), &["watch", &pid]);
    assert_eq!(watched.status.code(), Some(0));

    let status = on(home.path(), &["status", &pid]);
    assert_eq!(status.status.code(), Some(1));
    assert_eq!(
        text(&status),
        format!("{pid} has ended: FINISHED successfully")
    );
    let killed = on(home.path(), &["kill", &pid]);
    assert_eq!(killed.status.code(), Some(1));
    assert_eq!(
        text(&killed),
        format!("{pid} has ended: FINISHED successfully")
    );
    let json = on(home.path(), &["status", &pid, "--json"]);
    assert_eq!(json.status.code(), Some(1));
    let status: Value = serde_json::from_str(&text(&json)).unwrap();
    assert_eq!(
        status["state"], "ProcessState.FINISHED",
        "plumpy's status, from the store"
    );
    let watched = on(home.path(), &["watch", &pid]);
    assert_eq!(watched.status.code(), Some(0), "it finished successfully");
    assert!(text(&watched).contains("has ended"), "{}", text(&watched));

    let unknown = on(home.path(), &["status", "no-such-pid"]);
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("no process no-such-pid"), "{stderr}");
    assert!(!stderr.contains("no RPC subscriber"), "{stderr}");
}

/// A task that fails says so once: `submit` of a plugin the daemon cannot find.
#[test]
fn a_failed_submit_says_what_failed_once() {
    let home = tempfile::tempdir().unwrap();
    let _daemon = serve(home.path());
    let out = on(home.path(), &["submit", "no-such-plugin"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no plugin named 'no-such-plugin'"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("the task failed").count(), 1, "{stderr}");
}

/// The socket is its owner's only, even under a umask that lets everyone in (another user
/// cannot connect); it acts for the default tenant, never reaching another tenant's
/// processes in the same store; and every submit, pause, play and kill through it is in the
/// audit log, done by `local`.
#[test]
fn the_socket_is_its_owners_only_acts_for_the_default_tenant_and_is_audited() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;

    let home = tempfile::tempdir().unwrap();
    // Only the socket's own mode can keep another user out.
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let tenant = on(home.path(), &["tenant", "create", "acme"]);
    assert_eq!(tenant.status.code(), Some(0), "{tenant:?}");
    let token = text(&on(
        home.path(),
        &[
            "token", "create", "--tenant", "acme", "--scope", "submit", "--scope", "read",
        ],
    ));
    let theirs = on(
        home.path(),
        &[
            "run", "add", "-i", "x=1", "-i", "y=2", "--json", "--token", &token,
        ],
    );
    assert_eq!(theirs.status.code(), Some(0), "{theirs:?}");
    let theirs: Value = serde_json::from_slice(&theirs.stdout).unwrap();
    let theirs = theirs["pid"].as_str().unwrap().to_string();

    let mut child = damson();
    // SAFETY: umask(2) is async-signal-safe and changes only the child's creation mask.
    unsafe {
        child.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let _daemon = serve_with(home.path(), child);
    let socket = home.path().join("damson.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "owner-only: {mode:o}");
    let stranger = std::process::Command::new("python3")
        .args([
            "-c",
            "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n s.connect(sys.argv[1]); print('connected')\nexcept PermissionError: print('refused')",
        ])
        .arg(&socket)
        .uid(65534)
        .gid(65534)
        .output()
        .expect("python3 runs as nobody (the test runs as root)");
    assert_eq!(
        String::from_utf8_lossy(&stranger.stdout).trim(),
        "refused",
        "{stranger:?}"
    );

    // acme's token does not go through the socket, which acts for its owner only.
    let refused = on(home.path(), &["status", &theirs, "--token", &token]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("acts through --server only") && !stderr.contains(&token),
        "{stderr}"
    );
    // acme's process is in the store, but not the socket's to see or control.
    for command in ["status", "kill", "pause"] {
        let out = on(home.path(), &[command, &theirs]);
        assert_eq!(out.status.code(), Some(2), "{command}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("no process {theirs}")), "{stderr}");
    }

    let ours = text(&on(
        home.path(),
        &["submit", "lifecycle", "-i", "mode=wait"],
    ));
    let started = Instant::now();
    while !text(&on(home.path(), &["status", &ours])).contains("WAITING") {
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    for command in ["pause", "play", "kill"] {
        let out = on(home.path(), &[command, &ours]);
        assert_eq!(out.status.code(), Some(0), "{command}: {out:?}");
    }
    // The daemon holds the embedded store: the audit log is read once it is gone.
    drop(_daemon);
    let audit = on(home.path(), &["audit", "--json"]);
    let entries: Vec<(String, String, String, String)> =
        serde_json::from_slice::<Value>(&audit.stdout)
            .unwrap_or_else(|_| panic!("{audit:?}"))
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["target"] == ours.as_str())
            .map(|e| {
                let text = |key: &str| e[key].as_str().unwrap_or("-").to_string();
                (
                    text("tenant"),
                    text("actor"),
                    text("action"),
                    text("outcome"),
                )
            })
            .collect();
    let done = |action: &str| {
        (
            "default".to_string(),
            "local".to_string(),
            action.to_string(),
            "ok".to_string(),
        )
    };
    assert_eq!(
        entries,
        [
            done("process.submit"),
            done("process.pause"),
            done("process.play"),
            done("process.kill")
        ],
    );
}

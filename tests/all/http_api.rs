//! The HTTP API of `damson serve --listen`: bearer tokens per tenant (401 without a valid one,
//! 403 out of scope), another tenant's processes as absent (404) whatever is asked of them,
//! quotas as 429, HTTPS with rustls, the CLI's `--server`, and tokens never in the daemon's log.

use std::io::{BufRead, BufReader};
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use damson_tests::damson;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A `damson serve --listen 127.0.0.1:0` on a store of its own; SIGKILLed when dropped.
struct Server {
    child: Child,
    url: String,
    /// Everything it wrote on stderr so far.
    log: Arc<Mutex<String>>,
    store: String,
    home: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `damson <args> --store <store>` with `home`.
fn on(home: &std::path::Path, store: &str, args: &[&str]) -> Output {
    damson()
        .env("DAMSON_HOME", home)
        .args(args)
        .args(["--store", store])
        .output()
        .expect("damson runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Tenants `acme` and `globex` on a fresh embedded store, with tokens made by `tokens` (tenant,
/// scopes) before the daemon starts, and the daemon started with `extra` arguments.
struct Setup {
    home: tempfile::TempDir,
    store: String,
}

impl Setup {
    fn new() -> Self {
        let home = tempfile::tempdir().unwrap();
        let store = home.path().join("store.redb").display().to_string();
        let setup = Self { home, store };
        for tenant in ["acme", "globex"] {
            let out = setup.cli(&["tenant", "create", tenant]);
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        }
        setup
    }

    fn cli(&self, args: &[&str]) -> Output {
        on(self.home.path(), &self.store, args)
    }

    /// A token of `tenant` with `scopes`.
    fn token(&self, tenant: &str, scopes: &[&str]) -> String {
        let mut args = vec!["token", "create", "--tenant", tenant];
        for scope in scopes {
            args.extend(["--scope", scope]);
        }
        let out = self.cli(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
    }

    fn serve(self, extra: &[&str]) -> Server {
        let mut child = damson()
            .env("DAMSON_HOME", self.home.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--store", &self.store])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("damson serve starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("damson serve: HTTP API on ") {
                    let _ = tx.send(url.to_string());
                }
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no HTTP API: {}", log.lock().unwrap()));
        Server {
            child,
            url,
            log,
            store: self.store,
            home: self.home,
        }
    }
}

impl Server {
    fn client(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    /// `method path` with `token` (none when `None`) and `body`: the status and the JSON body.
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.url);
        let mut request = match method {
            "GET" => self.client().get(url),
            "POST" => self.client().post(url),
            other => panic!("no method {other}"),
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// `POST /v1/processes` of `plugin` with `inputs`: the status and the body.
    async fn try_submit(&self, token: &str, plugin: &str, inputs: Value) -> (StatusCode, Value) {
        let body = json!({"plugin": plugin, "inputs": inputs});
        self.call("POST", "/v1/processes", Some(token), Some(body))
            .await
    }

    async fn submit(&self, token: &str, plugin: &str, inputs: Value) -> String {
        let (status, body) = self.try_submit(token, plugin, inputs).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["pid"].as_str().unwrap().to_string()
    }

    /// Poll `pid`'s status until `done` holds of it.
    async fn until(&self, token: &str, pid: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, row) = self
                .call(
                    "GET",
                    &format!("/v1/processes/{pid}/status"),
                    Some(token),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{row}");
            if done(&row) {
                return row;
            }
            assert!(Instant::now() < deadline, "still {row}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// A process of `hailstone` slow enough to be controlled while it runs.
fn slow() -> Value {
    json!({"n": 27, "delay_ms": 50})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_submits_watches_pauses_plays_kills_and_reads_its_own_processes() {
    let setup = Setup::new();
    let token = setup.token("acme", &["read", "submit", "control"]);
    let server = setup.serve(&[]);

    let (status, plugins) = server.call("GET", "/v1/plugins", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        plugins["plugins"]
            .as_array()
            .unwrap()
            .contains(&json!("collatz")),
        "{plugins}"
    );
    let (status, described) = server
        .call("GET", "/v1/plugins/collatz", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(described["name"], "collatz");

    let done = server.submit(&token, "collatz", json!({"n": 27})).await;
    let row = server
        .until(&token, &done, |r| r["state"] == "FINISHED")
        .await;
    assert_eq!(row["pid"], done.as_str());
    let (status, shown) = server
        .call("GET", &format!("/v1/processes/{done}"), Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["outputs"]["steps"], 111);

    let pid = server.submit(&token, "hailstone", slow()).await;
    let (status, paused) = server
        .call(
            "POST",
            &format!("/v1/processes/{pid}/pause"),
            Some(&token),
            Some(json!({"message": "a look"})),
        )
        .await;
    assert_eq!((status, &paused["done"]), (StatusCode::OK, &json!(true)));
    server.until(&token, &pid, |r| r["paused"] == true).await;
    let (status, played) = server
        .call(
            "POST",
            &format!("/v1/processes/{pid}/play"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!((status, &played["done"]), (StatusCode::OK, &json!(true)));
    server.until(&token, &pid, |r| r["paused"] == false).await;
    let (status, killed) = server
        .call(
            "POST",
            &format!("/v1/processes/{pid}/kill"),
            Some(&token),
            Some(json!({"message": "enough"})),
        )
        .await;
    assert_eq!((status, &killed["done"]), (StatusCode::OK, &json!(true)));
    server.until(&token, &pid, |r| r["state"] == "KILLED").await;

    let (status, listed) = server
        .call("GET", "/v1/processes", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let pids: Vec<&str> = listed["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["pid"].as_str().unwrap())
        .collect();
    assert_eq!(pids, [done.as_str(), pid.as_str()], "oldest first");
    let only = |query: &'static str| {
        let (server, token) = (&server, &token);
        async move {
            let (status, listed) = server
                .call("GET", &format!("/v1/processes?{query}"), Some(token), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{query}: {listed}");
            let pids: Vec<String> = listed["processes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["pid"].as_str().unwrap().to_string())
                .collect();
            pids
        }
    };
    assert_eq!(only("state=killed").await, [pid.as_str()]);
    assert_eq!(only("plugin=collatz").await, [done.as_str()]);
    assert!(only("live=true").await.is_empty(), "both have ended");
    let (status, refused) = server
        .call("GET", "/v1/processes?state=sleeping", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        refused.to_string().contains("'state'") && refused.to_string().contains("sleeping"),
        "{refused}"
    );
    let (status, checkpoints) = server
        .call(
            "GET",
            &format!("/v1/processes/{pid}/checkpoints"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!checkpoints["checkpoints"].as_array().unwrap().is_empty());
    let (status, again) = server
        .call(
            "POST",
            &format!("/v1/processes/{pid}/play"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (status, &again["done"]),
        (StatusCode::OK, &json!(false)),
        "killed: play is refused, as plumpy answers False"
    );

    // The daemon holds the embedded store: the audit log is read once it is gone.
    let log = server.log();
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let audit = on(
        server.home.path(),
        &server.store,
        &["audit", "--tenant", "acme", "--json"],
    );
    let actions: Vec<String> = serde_json::from_slice::<Value>(&audit.stdout)
        .unwrap_or_else(|_| panic!("{}", stderr(&audit)))
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "process.submit ok",
        "process.pause ok",
        "process.play ok",
        "process.kill ok",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected}: {actions:?}"
        );
    }
    assert!(!log.contains(&token), "the token is never logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_without_a_valid_token_get_401_and_out_of_scope_ones_403() {
    let setup = Setup::new();
    let reader = setup.token("acme", &["read"]);
    let revoked = setup.token("acme", &["read"]);
    let id = revoked["damson_".len()..]
        .split('_')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(setup.cli(&["token", "revoke", &id]).status.code(), Some(0));
    let expiring = {
        let out = setup.cli(&[
            "token",
            "create",
            "--tenant",
            "acme",
            "--scope",
            "read",
            "--expires-in",
            "1s",
        ]);
        stdout(&out)
    };
    std::thread::sleep(Duration::from_millis(1100));
    let server = setup.serve(&[]);

    let unknown = format!("damson_0123456789abcdef_{}", "A".repeat(43));
    for (token, says) in [
        (None, "no token was given"),
        (Some("not-a-token"), "malformed"),
        (Some(unknown.as_str()), "is not known"),
        (Some(revoked.as_str()), "was revoked"),
        (Some(expiring.as_str()), "expired"),
    ] {
        let (status, body) = server.call("GET", "/v1/processes", token, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(says), "{token:?}: {error}");
        if let Some(token) = token {
            assert!(!error.contains(token), "the token is not quoted back");
        }
    }
    let (status, body) = server.try_submit(&reader, "collatz", json!({"n": 3})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("lacks the 'submit' scope")
    );
    let (status, _) = server
        .call("POST", "/v1/processes/x/kill", Some(&reader), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, description) = server.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK, "the description needs no token");
    assert_eq!(description["openapi"], "3.1.0");
    // Every route described is there, and each but the description wants a token.
    let paths = description["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 13, "{:?}", paths.keys());
    for (path, methods) in paths {
        for method in methods.as_object().unwrap().keys() {
            let concrete = path
                .replace("{pid}", "some-pid")
                .replace("{name}", "collatz");
            let (status, _) = server
                .call(&method.to_uppercase(), &concrete, None, None)
                .await;
            let wanted = if path == "/v1/openapi.json" {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            assert_eq!(status, wanted, "{method} {path}");
        }
    }
    let log = server.log();
    for token in [&reader, &revoked, &expiring, &unknown] {
        assert!(!log.contains(token.as_str()), "never logged");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_processes_are_absent_whatever_is_asked_of_them() {
    let setup = Setup::new();
    let ours = setup.token("acme", &["admin"]);
    let theirs = setup.token("globex", &["admin"]);
    let server = setup.serve(&[]);
    let pid = server.submit(&theirs, "hailstone", slow()).await;
    server
        .until(&theirs, &pid, |r| r["state"] == "RUNNING")
        .await;

    for (method, path) in [
        ("GET", format!("/v1/processes/{pid}")),
        ("GET", format!("/v1/processes/{pid}/status")),
        ("GET", format!("/v1/processes/{pid}/checkpoints")),
        ("GET", format!("/v1/processes/{pid}/logs")),
        ("POST", format!("/v1/processes/{pid}/pause")),
        ("POST", format!("/v1/processes/{pid}/play")),
        ("POST", format!("/v1/processes/{pid}/kill")),
        ("POST", format!("/v1/processes/{pid}/signal")),
        ("POST", format!("/v1/processes/{pid}/continue")),
    ] {
        let (status, body) = server.call(method, &path, Some(&ours), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        let (missing, missing_body) = server
            .call(
                method,
                &path.replace(&pid, "no-such-pid"),
                Some(&ours),
                None,
            )
            .await;
        assert_eq!(missing, StatusCode::NOT_FOUND);
        assert_eq!(
            body["error"].as_str().unwrap().replace(&pid, "P"),
            missing_body["error"]
                .as_str()
                .unwrap()
                .replace("no-such-pid", "P"),
            "the same answer as for a pid that does not exist"
        );
    }
    let (_, listed) = server.call("GET", "/v1/processes", Some(&ours), None).await;
    assert_eq!(listed["processes"], json!([]), "none of globex's");
    let row = server
        .until(&theirs, &pid, |r| {
            r["state"] != "RUNNING" || r["paused"] == false
        })
        .await;
    assert_eq!(
        (row["state"].as_str(), &row["paused"]),
        (Some("RUNNING"), &json!(false)),
        "untouched by acme: {row}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_runs_its_own_plugins_and_the_shared_ones_and_no_other_tenants() {
    let setup = Setup::new();
    let ours = setup.token("acme", &["admin"]);
    let theirs = setup.token("globex", &["admin"]);
    let plugins = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(plugins.path().join("globex")).unwrap();
    std::fs::copy(
        damson_tests::plugin("add"),
        plugins.path().join("globex").join("secret-adder.wasm"),
    )
    .unwrap();
    let root = plugins.path().display().to_string();
    let server = setup.serve(&["--tenant-plugins", &root]);

    let (status, _) = server
        .call("GET", "/v1/plugins/secret-adder", Some(&theirs), None)
        .await;
    assert_eq!(status, StatusCode::OK, "globex's own plugin");
    server
        .submit(&theirs, "secret-adder", json!({"x": 1, "y": 2}))
        .await;
    let (status, body) = server
        .try_submit(&ours, "secret-adder", json!({"x": 1, "y": 2}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no plugin named 'secret-adder'")
    );
    let (_, listed) = server.call("GET", "/v1/plugins", Some(&ours), None).await;
    assert!(
        !listed["plugins"]
            .as_array()
            .unwrap()
            .contains(&json!("secret-adder"))
    );
    let path = damson_tests::plugin("add").display().to_string();
    let (status, body) = server
        .try_submit(&ours, &path, json!({"x": 1, "y": 2}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no paths: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn over_a_quota_a_request_gets_429_naming_it_and_other_tenants_go_on() {
    let setup = Setup::new();
    let out = setup.cli(&["tenant", "set", "acme", "--quota", "live-processes=1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ours = setup.token("acme", &["admin"]);
    let theirs = setup.token("globex", &["admin"]);
    let server = setup.serve(&[]);
    let first = server.submit(&ours, "hailstone", slow()).await;
    let (status, body) = server.try_submit(&ours, "collatz", json!({"n": 3})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(
        body["error"],
        "tenant 'acme' is over its live-processes quota: 1 of 1 processes"
    );
    for _ in 0..2 {
        server.submit(&theirs, "collatz", json!({"n": 3})).await;
    }
    let row = server.until(&ours, &first, |_| true).await;
    assert_eq!(row["state"], "RUNNING", "the running one is untouched");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_controls_processes_through_the_server_with_a_token() {
    let setup = Setup::new();
    let token = setup.token("acme", &["submit", "control", "read"]);
    let reader = setup.token("acme", &["read"]);
    let server = setup.serve(&[]);
    let cli = |token: &str, args: &[&str]| {
        damson()
            .args(args)
            .args(["--server", &server.url, "--token", token])
            .output()
            .unwrap()
    };
    let out = cli(
        &token,
        &["submit", "hailstone", "-i", "n=27", "-i", "delay_ms=50"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pid = stdout(&out);
    let out = cli(&token, &["pause", &pid]);
    assert_eq!(stdout(&out), format!("paused {pid}"), "{}", stderr(&out));
    let out = cli(&token, &["status", &pid, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = cli(&reader, &["kill", &pid]);
    assert_eq!(out.status.code(), Some(4), "denied: {}", stderr(&out));
    assert!(
        stderr(&out).contains("lacks the 'control' scope"),
        "{}",
        stderr(&out)
    );
    let out = cli(&token, &["kill", &pid]);
    assert_eq!(stdout(&out), format!("killed {pid}"), "{}", stderr(&out));
    let out = cli("damson_nope", &["status", &pid]);
    assert_eq!(out.status.code(), Some(4));
    assert!(!stderr(&out).contains("damson_nope"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_certificate_the_api_is_served_over_https_only() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let setup = Setup::new();
    let token = setup.token("acme", &["read"]);
    let server = setup.serve(&[
        "--tls-cert",
        &cert.display().to_string(),
        "--tls-key",
        &key.display().to_string(),
    ]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let url = server.url.replace("127.0.0.1", "localhost");
    let trusting = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    let response = trusting
        .get(format!("{url}/v1/processes"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let plain = reqwest::Client::new()
        .get(format!(
            "{}/v1/processes",
            url.replace("https://", "http://")
        ))
        .send()
        .await;
    assert!(
        plain.is_err() || plain.unwrap().status() != StatusCode::OK,
        "no plain HTTP on a TLS port"
    );
    let untrusting = reqwest::Client::new()
        .get(format!("{url}/v1/processes"))
        .send()
        .await;
    assert!(untrusting.is_err(), "an unknown certificate is not trusted");
    let out = damson()
        .args(["status", "nothing", "--server", &url, "--token", &token])
        .args(["--server-ca", &cert.display().to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("404"),
        "reached it over TLS: {}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_reads_its_processes_logs_and_another_tenants_are_absent() {
    let setup = Setup::new();
    let ours = setup.token("acme", &["read"]);
    let theirs = setup.token("globex", &["read", "submit"]);
    let server = setup.serve(&[]);
    let pid = server.submit(&theirs, "hailstone", json!({"n": 6})).await;
    server
        .until(&theirs, &pid, |r| r["state"] == "FINISHED")
        .await;
    let path = format!("/v1/processes/{pid}/logs");

    let (status, log) = server.call("GET", &path, Some(&theirs), None).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_eq!(log["dropped"], 0);
    let lines = log["lines"].as_array().unwrap();
    let said: Vec<&str> = lines
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(said[0], "state: created -> running", "{said:?}");
    assert!(said.contains(&"step 1 at 3"), "{said:?}");
    assert_eq!(said.last(), Some(&"state: running -> finished"));
    assert_eq!(lines[1]["source"], "plugin");
    let (status, page) = server
        .call(
            "GET",
            &format!("{path}?after=1&limit=2"),
            Some(&theirs),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page["lines"],
        json!(lines[1..3]),
        "after a seq, at most a limit"
    );

    let (status, body) = server.call("GET", &path, Some(&ours), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (missing, missing_body) = server
        .call("GET", "/v1/processes/no-such-pid/logs", Some(&ours), None)
        .await;
    assert_eq!(missing, StatusCode::NOT_FOUND);
    assert_eq!(
        body["error"].as_str().unwrap().replace(&pid, "P"),
        missing_body["error"]
            .as_str()
            .unwrap()
            .replace("no-such-pid", "P"),
        "the same answer as for a pid that does not exist"
    );
    assert!(!body.to_string().contains("step 1"));
    let (status, _) = server.call("GET", &path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no token");
    let (status, _) = server
        .call("GET", &path, Some("damson_not-a-token"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a malformed token");
}

/// `POST /v1/processes/{pid}/signal` resumes a waiting process with its payload, answers a
/// repeated key as a duplicate, and refuses a terminated process with 409.
#[tokio::test]
async fn a_signal_through_the_api_resumes_a_waiting_process_and_a_key_is_taken_once() {
    let setup = Setup::new();
    let token = setup.token("acme", &["read", "submit", "control"]);
    let server = setup.serve(&[]);
    let pid = server
        .submit(&token, "approval", json!({"request": "deploy"}))
        .await;
    server
        .until(&token, &pid, |r| r["state"] == "WAITING")
        .await;
    let path = format!("/v1/processes/{pid}/signal");
    let body = json!({"event": "approved", "data": {"by": "ada"}, "key": "k"});
    let (status, sent) = server
        .call("POST", &path, Some(&token), Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    assert_eq!(
        (&sent["seq"], &sent["duplicate"]),
        (&json!(1), &json!(false))
    );
    server
        .until(&token, &pid, |r| r["state"] == "FINISHED")
        .await;
    let (_, shown) = server
        .call("GET", &format!("/v1/processes/{pid}"), Some(&token), None)
        .await;
    assert_eq!(shown["outputs"]["approved_by"], "ada");

    let (status, refused) = server.call("POST", &path, Some(&token), Some(body)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("takes no more signals"),
        "{refused}"
    );
}

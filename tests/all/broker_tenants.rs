//! Tenants on RabbitMQ: `damson tenant create --broker-admin` gives each tenant a virtual host
//! and a user of its own, and prints the tenant's AMQP URL once; the broker then keeps every
//! other tenant's credentials (and the default ones) out of that virtual host, so that a tenant's
//! workers and kiwipy clients reach only its processes. `cargo xtask test` provides the broker
//! with its management API (`DAMSON_TEST_RABBITMQ_ADMIN`), PostgreSQL and a Python with kiwipy.
//!
//! The broker outlives the test run: every tenant here has a name of this run's own, and its
//! virtual host and user are removed at the end, whatever happens.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use damson::comms::{BrokerAdmin, Communicator, RabbitMqCommunicator, RabbitMqOptions};
use damson_tests::damson;
use serde_json::{Value, json};

use crate::cli::{json_of, stderr, stdout};

fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run the suite with `cargo xtask test`, which starts RabbitMQ with \
             its management plugin (DAMSON_TEST_RABBITMQ_ADMIN, e.g. \
             http://guest:guest@127.0.0.1:15672) and PostgreSQL, and installs kiwipy"
        )
    })
}

/// The management API of the test broker, with an administrator's credentials.
fn admin_url() -> String {
    required("DAMSON_TEST_RABBITMQ_ADMIN")
}

/// The test broker's AMQP address, `HOST:PORT`, from `DAMSON_TEST_AMQP`.
fn amqp_address() -> String {
    let url = required("DAMSON_TEST_AMQP");
    let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let address = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if address.contains(':') {
        address.to_string()
    } else {
        format!("{address}:5672")
    }
}

/// `url` with its virtual host replaced by `vhost`.
fn on_vhost(url: &str, vhost: &str) -> String {
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    format!("{base}/{vhost}")
}

/// The user and password in an `amqp://` or `http://` URL.
fn credentials(url: &str) -> (String, String) {
    let url = reqwest::Url::parse(url).unwrap();
    (
        url.username().to_string(),
        url.password().unwrap_or_default().to_string(),
    )
}

/// Tenant names of this run's own; their virtual hosts and users are removed from the broker
/// when this is dropped, even when the test fails.
struct Tenants(Vec<String>);

impl Tenants {
    fn new(test: &str, names: &[&str]) -> Self {
        Self(
            names
                .iter()
                .map(|n| format!("{n}-{test}-{}", std::process::id()))
                .collect(),
        )
    }
}

impl Drop for Tenants {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.0);
        let Ok(url) = std::env::var("DAMSON_TEST_RABBITMQ_ADMIN") else {
            return;
        };
        // A runtime of its own: this may run inside a test's.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let admin = BrokerAdmin::new(&url).unwrap();
                for name in &names {
                    let _ = admin.delete_tenant(name).await;
                }
            });
        })
        .join();
    }
}

/// `damson <args> --store <store>`.
fn on(store: &str, args: &[&str]) -> Output {
    damson()
        .args(args)
        .args(["--store", store])
        .output()
        .expect("damson runs")
}

/// `damson tenant create <tenant> --broker-admin …` on `store`, checked: the usual line, then
/// the tenant's AMQP URL, which is returned; the note that it is not shown again is on stderr,
/// which does not show the password.
fn create(store: &str, tenant: &str) -> String {
    let admin = admin_url();
    let address = amqp_address();
    let out = on(
        store,
        &[
            "tenant",
            "create",
            tenant,
            "--broker-admin",
            &admin,
            "--broker-address",
            &address,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "the usual line, then the URL: {text}");
    assert_eq!(lines[0], format!("created tenant {tenant} (no quotas)"));
    let url = lines[1].to_string();
    let prefix = format!("amqp://damson-{tenant}:");
    let suffix = format!("@{address}/damson-{tenant}");
    assert!(url.starts_with(&prefix) && url.ends_with(&suffix), "{url}");
    let (_, password) = credentials(&url);
    assert_eq!(password.len(), 43, "32 random bytes, base64url");
    assert!(stderr(&out).contains("not shown again"), "{}", stderr(&out));
    assert!(!stderr(&out).contains(&password));
    url
}

/// Whether Damson's communicator connects with `url`: `Ok`, or the error it failed with.
async fn connects(url: &str) -> Result<(), String> {
    match RabbitMqCommunicator::connect(url, RabbitMqOptions::default()).await {
        Ok(communicator) => {
            communicator.close().await;
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// What `interop/kiwipy_tenant.py <args>` printed.
fn kiwipy(args: &[&str]) -> Value {
    let python = required("DAMSON_TEST_PYTHON");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/kiwipy_tenant.py");
    let out = Command::new(&python)
        .arg(script)
        .args(args)
        .output()
        .expect("python runs");
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "the kiwipy client ({}) failed: {}\n{text}",
        args[0],
        stderr(&out)
    );
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {text}\n{}", stderr(&out)))
}

/// The broker's refusal to let `user` into `vhost` (AMQP 530 NOT_ALLOWED on `connection.open`).
fn vhost_refused(vhost: &str, user: &str) -> String {
    format!("access to vhost '{vhost}' refused for user '{user}'")
}

/// What the management API answers to `GET /api/<path>` with these credentials.
async fn management_status(user: &str, password: &str, path: &str) -> u16 {
    let admin = reqwest::Url::parse(&admin_url()).unwrap();
    let url = format!(
        "{}://{}:{}/api/{path}",
        admin.scheme(),
        admin.host_str().unwrap(),
        admin.port_or_known_default().unwrap()
    );
    reqwest::Client::new()
        .get(url)
        .basic_auth(user, Some(password))
        .send()
        .await
        .expect("the management API answers")
        .status()
        .as_u16()
}

/// The audit log's entries for `tenant`, as (action, target, outcome).
fn audited(store: &str, tenant: &str) -> Vec<(String, String, String)> {
    let entries = json_of(&on(store, &["audit", "--json", "--tenant", tenant]));
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = |key: &str| e[key].as_str().unwrap_or("-").to_string();
            (text("action"), text("target"), text("outcome"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_broker_url_reaches_its_virtual_host_and_no_other() {
    let tenants = Tenants::new("a", &["acme", "globex"]);
    let (acme, globex) = (tenants.0[0].as_str(), tenants.0[1].as_str());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb").display().to_string();
    let store = store.as_str();
    let acme_url = create(store, acme);
    let globex_url = create(store, globex);
    let (acme_user, acme_password) = credentials(&acme_url);
    assert_eq!(acme_user, format!("damson-{acme}"));
    let (acme_vhost, globex_vhost) = (format!("damson-{acme}"), format!("damson-{globex}"));

    // Damson's communicator (lapin): acme's URL reaches acme's virtual host; acme's user is
    // refused globex's, and the default (guest) user, which made them, is refused both.
    connects(&acme_url).await.expect("acme reaches its vhost");
    connects(&globex_url)
        .await
        .expect("globex reaches its vhost");
    let refused = connects(&on_vhost(&acme_url, &globex_vhost))
        .await
        .expect_err("acme's user is kept out of globex's vhost");
    assert!(
        refused.contains("NOT_ALLOWED")
            && refused.contains(&vhost_refused(&globex_vhost, &acme_user)),
        "{refused}"
    );
    assert!(!refused.contains(&acme_password), "{refused}");
    let guest = required("DAMSON_TEST_AMQP");
    for vhost in [&acme_vhost, &globex_vhost] {
        let refused = connects(&on_vhost(&guest, vhost))
            .await
            .expect_err("the default user is kept out of the tenants' vhosts");
        assert!(refused.contains("refused for user"), "{refused}");
    }

    // A kiwipy client, the same.
    assert_eq!(kiwipy(&["connect", &acme_url]), json!({"connected": true}));
    let refused = kiwipy(&["connect", &on_vhost(&acme_url, &globex_vhost)]);
    assert_eq!(refused["refused"]["code"], 530, "NOT_ALLOWED: {refused}");
    assert!(
        refused["refused"]["text"]
            .as_str()
            .unwrap()
            .contains(&vhost_refused(&globex_vhost, &acme_user)),
        "{refused}"
    );
    let refused = kiwipy(&["connect", &on_vhost(&guest, &acme_vhost)]);
    assert_eq!(refused["refused"]["code"], 530, "{refused}");

    // The tenant's user has no tags: the management API is not for it.
    assert_eq!(
        management_status(&acme_user, &acme_password, "overview").await,
        401
    );

    // Made again: the store refuses it, and the broker's user keeps its password.
    let again = on(
        store,
        &["tenant", "create", acme, "--broker-admin", &admin_url()],
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains(&format!("tenant '{acme}' exists already")),
        "{}",
        stderr(&again)
    );
    assert_eq!(stdout(&again), "", "no URL");
    connects(&acme_url)
        .await
        .expect("the password is as it was");

    // Audited, the vhost named, the password nowhere.
    let done = audited(store, acme);
    assert_eq!(
        done[..2],
        [
            (
                "tenant.create".to_string(),
                "-".to_string(),
                "ok".to_string()
            ),
            (
                "tenant.broker.create".into(),
                acme_vhost.clone(),
                "ok".into()
            ),
        ],
        "{done:?}"
    );
    for args in [vec!["audit", "--json"], vec!["tenant", "list", "--json"]] {
        let out = on(store, &args);
        assert!(
            !stdout(&out).contains(&acme_password) && !stderr(&out).contains(&acme_password),
            "{args:?}"
        );
    }
    drop(tenants);
}

/// A `damson worker` that is stopped (SIGKILL) when dropped.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `damson worker --broker <url> --store <store> --token <token>`, once it says it is ready
/// (for `tenant`).
fn worker(url: &str, store: &str, token: &str, tenant: &str) -> Worker {
    let mut child = damson()
        .args([
            "worker", "--broker", url, "--store", store, "--token", token,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("damson worker starts");
    let stderr = child.stderr.take().unwrap();
    let worker = Worker(child);
    let mut lines = BufReader::new(stderr).lines();
    let mut said = Vec::new();
    let ready = lines.by_ref().map_while(Result::ok).find(|l| {
        said.push(l.clone());
        l.contains("damson worker: ready")
    });
    let ready = ready.unwrap_or_else(|| panic!("the worker did not start: {said:?}"));
    assert!(ready.ends_with(&format!("tenant {tenant}")), "{ready}");
    assert!(!ready.contains(token), "{ready}");
    // Keep draining the worker's stderr so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    worker
}

#[test]
fn each_tenants_worker_serves_its_own_kiwipy_client_and_no_other_tenants() {
    let tenants = Tenants::new("b", &["acme", "globex"]);
    let (acme, globex) = (tenants.0[0].as_str(), tenants.0[1].as_str());
    let store = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(damson_tests::own_database("broker_tenants_workers"));
    let store = store.as_str();
    let acme_url = create(store, acme);
    let globex_url = create(store, globex);
    let token = |tenant: &str, scopes: &[&str]| {
        let mut args = vec!["token", "create", "--tenant", tenant];
        for scope in scopes {
            args.extend(["--scope", scope]);
        }
        let out = on(store, &args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out).trim().to_string()
    };
    let acme_token = token(acme, &["submit", "read"]);
    let globex_token = token(globex, &["submit", "read"]);

    // A worker needs its token's submit scope.
    let reader = token(acme, &["read"]);
    let out = damson()
        .args(["worker", "--broker", &acme_url, "--store", store])
        .args(["--token", &reader])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "denied: {}", stderr(&out));
    assert!(
        stderr(&out).contains("lacks the 'submit' scope"),
        "{}",
        stderr(&out)
    );

    // One worker per tenant, each on its tenant's vhost (with kiwipy's default exchange and
    // queue names: each vhost has its own), sharing one store.
    let _acme_worker = worker(&acme_url, store, &acme_token, acme);
    let _globex_worker = worker(&globex_url, store, &globex_token, globex);

    let launched = kiwipy(&["launch", &globex_url]);
    let theirs = launched["pid"].as_str().expect("a pid").to_string();

    // acme's kiwipy client launches and controls its process; globex's pid is not routable
    // from acme's vhost; and acme's pause broadcast stays in acme's vhost.
    let replies = kiwipy(&["drive", &acme_url, &theirs]);
    let ours = replies["pid"].as_str().expect("a pid").to_string();
    assert_eq!(
        replies["status"]["state"], "ProcessState.WAITING",
        "{replies}"
    );
    assert_eq!(replies["pause"], true);
    assert_eq!(replies["status_paused"]["paused"], true);
    assert_eq!(replies["play"], true);
    assert_eq!(replies["status_played"]["paused"], false);
    assert_eq!(replies["kill"], true);
    assert_eq!(
        replies["other"]["error"], "UnroutableError",
        "globex's process is unknown in acme's vhost: {replies}"
    );
    assert_eq!(replies["broadcast"], true);

    // acme's credentials cannot even reach globex's vhost.
    let (acme_user, _) = credentials(&acme_url);
    let globex_vhost = format!("damson-{globex}");
    let refused = kiwipy(&["connect", &on_vhost(&acme_url, &globex_vhost)]);
    assert_eq!(refused["refused"]["code"], 530, "{refused}");
    assert!(
        refused["refused"]["text"]
            .as_str()
            .unwrap()
            .contains(&vhost_refused(&globex_vhost, &acme_user)),
        "{refused}"
    );

    // globex's process heard none of it: waiting, not paused, and globex's client reaches it.
    let status = kiwipy(&["rpc", &globex_url, &theirs, "status"]);
    assert_eq!(status["reply"]["state"], "ProcessState.WAITING", "{status}");
    assert_eq!(status["reply"]["paused"], false, "{status}");

    // In the shared store, each process is its tenant's.
    let pids = |token: Option<&str>| -> Vec<String> {
        let mut args = vec!["ps", "--json"];
        if let Some(token) = token {
            args.extend(["--token", token]);
        }
        let out = on(store, &args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        json_of(&out)
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["pid"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(pids(Some(&acme_token)), [ours.as_str()]);
    assert_eq!(pids(Some(&globex_token)), [theirs.as_str()]);
    assert!(pids(None).is_empty(), "none is the default tenant's");

    let killed = kiwipy(&["rpc", &globex_url, &theirs, "kill"]);
    assert_eq!(killed["reply"], true, "{killed}");

    // What each tenant's broker user did is in its tenant's audit log, and only there.
    let (globex_user, _) = credentials(&globex_url);
    let controls = |tenant: &str| -> Vec<(String, String, String, String)> {
        json_of(&on(store, &["audit", "--json", "--tenant", tenant]))
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"].as_str().unwrap().starts_with("process."))
            .map(|e| {
                let text = |key: &str| e[key].as_str().unwrap_or("-").to_string();
                (
                    text("actor"),
                    text("action"),
                    text("target"),
                    text("outcome"),
                )
            })
            .collect()
    };
    let by = |user: &str, tenant: &str, action: &str, pid: &str| {
        (
            format!("amqp:{user}@damson-{tenant}"),
            action.to_string(),
            pid.to_string(),
            "ok".to_string(),
        )
    };
    assert_eq!(
        controls(acme),
        [
            by(&acme_user, acme, "process.submit", &ours),
            by(&acme_user, acme, "process.pause", &ours),
            by(&acme_user, acme, "process.play", &ours),
            by(&acme_user, acme, "process.kill", &ours),
        ]
    );
    assert_eq!(
        controls(globex),
        [
            by(&globex_user, globex, "process.submit", &theirs),
            by(&globex_user, globex, "process.kill", &theirs),
        ]
    );
    drop(tenants);
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_delete_with_broker_admin_removes_the_virtual_host_and_the_user() {
    let tenants = Tenants::new("c", &["acme"]);
    let acme = tenants.0[0].as_str();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb").display().to_string();
    let store = store.as_str();
    let url = create(store, acme);
    connects(&url).await.expect("acme reaches its vhost");
    let vhost = format!("damson-{acme}");

    // DAMSON_BROKER_ADMIN is read too.
    let delete = || {
        damson()
            .args(["tenant", "delete", acme, "--store", store])
            .env("DAMSON_BROKER_ADMIN", admin_url())
            .output()
            .unwrap()
    };
    let out = delete();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "deleted tenant {acme} (and its virtual host {vhost} and user {vhost} on the \
             broker)\n"
        )
    );

    // Its user is gone: the broker refuses the login.
    let refused = connects(&url).await.expect_err("the user is gone");
    assert!(refused.contains("ACCESS_REFUSED"), "{refused}");
    let refused = kiwipy(&["connect", &url]);
    assert!(
        refused["refused"]["text"]
            .as_str()
            .unwrap()
            .contains("ACCESS_REFUSED"),
        "{refused}"
    );
    let (user, password) = credentials(&admin_url());
    for path in [format!("vhosts/{vhost}"), format!("users/{vhost}")] {
        assert_eq!(
            management_status(&user, &password, &path).await,
            404,
            "{path} is gone"
        );
    }
    assert_eq!(
        audited(store, acme).last().unwrap(),
        &("tenant.broker.delete".into(), vhost.clone(), "ok".into())
    );

    // Deleted once: the store has no such tenant any more.
    let again = delete();
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains(&format!("there is no tenant '{acme}'")),
        "{}",
        stderr(&again)
    );
    drop(tenants);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_whose_broker_part_cannot_be_made_is_not_left_in_the_store() {
    let tenants = Tenants::new("d", &["orphan", "unreached"]);
    let (orphan, unreached) = (tenants.0[0].as_str(), tenants.0[1].as_str());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb").display().to_string();
    let store = store.as_str();

    // A broker that has the tenant's vhost and user already (left from before): refused,
    // untouched, and the store's tenant made for it deleted again.
    let admin = BrokerAdmin::new(&admin_url()).unwrap();
    let left = admin.create_tenant(orphan).await.unwrap();
    let out = on(
        store,
        &["tenant", "create", orphan, "--broker-admin", &admin_url()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let says = stderr(&out);
    assert!(
        says.contains(&format!(
            "the broker has a virtual host 'damson-{orphan}' for tenant '{orphan}' already"
        )) && says.contains("the tenant was not made"),
        "{says}"
    );
    assert_eq!(stdout(&out), "");
    connects(&left.amqp_url(&amqp_address()))
        .await
        .expect("its password is not reset");
    let listed = json_of(&on(store, &["tenant", "list", "--json"]));
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["name"] != orphan),
        "{listed}"
    );
    let done = audited(store, orphan);
    let actions: Vec<(&str, bool)> = done
        .iter()
        .map(|(action, _, outcome)| (action.as_str(), outcome == "ok"))
        .collect();
    assert_eq!(
        actions,
        [
            ("tenant.create", true),
            ("tenant.broker.create", false),
            ("tenant.delete", true)
        ],
        "{done:?}"
    );

    // A management API that does not answer: the same, and its password is not shown.
    let out = on(
        store,
        &[
            "tenant",
            "create",
            unreached,
            "--broker-admin",
            "http://admin:hunter2@127.0.0.1:1",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let says = stderr(&out);
    assert!(says.contains("did not answer"), "{says}");
    assert!(
        says.contains("admin:***@127.0.0.1:1") && !says.contains("hunter2"),
        "{says}"
    );
    let audit = on(store, &["audit", "--json"]);
    assert!(
        stdout(&audit).contains("did not answer") && !stdout(&audit).contains("hunter2"),
        "the failure is audited, without the admin's password: {}",
        stdout(&audit)
    );
    let listed = json_of(&on(store, &["tenant", "list", "--json"]));
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["name"] != unreached),
        "{listed}"
    );
    drop(tenants);
}

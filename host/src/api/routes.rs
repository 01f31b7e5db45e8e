//! The routes of the HTTP API, version 1 (described by `GET /v1/openapi.json`). Every route
//! but the description needs a bearer token; each acts only on the token's tenant.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::auth::Caller;
use super::problem::Problem;
use super::{Api, openapi, views};
use crate::process::{Sent, Signal};
use crate::tenancy::Scope;
use crate::{Host, ProcessHandle};

/// The router of the API over `api`.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/v1/openapi.json", get(description))
        .route("/v1/plugins", get(plugins))
        .route("/v1/plugins/{name}", get(plugin))
        .route("/v1/processes", get(processes).post(submit))
        .route("/v1/processes/{pid}", get(show))
        .route("/v1/processes/{pid}/status", get(status))
        .route("/v1/processes/{pid}/checkpoints", get(checkpoints))
        .route("/v1/processes/{pid}/logs", get(logs))
        .route("/v1/processes/{pid}/pause", post(pause))
        .route("/v1/processes/{pid}/play", post(play))
        .route("/v1/processes/{pid}/kill", post(kill))
        .route("/v1/processes/{pid}/signal", post(signal))
        .route("/v1/processes/{pid}/continue", post(continue_))
        .with_state(api)
}

type Reply = Result<Json<Value>, Problem>;

async fn description() -> Json<Value> {
    Json(openapi::document())
}

async fn plugins(State(api): State<Api>, caller: Caller) -> Reply {
    let host = caller.host(&api, Scope::Read).await?;
    Ok(Json(json!({"plugins": host.plugin_names()})))
}

async fn plugin(State(api): State<Api>, caller: Caller, Path(name): Path<String>) -> Reply {
    let host = caller.host(&api, Scope::Read).await?;
    let plugin = host.load(&name).await?;
    Ok(Json(views::plugin(&plugin)))
}

/// What `GET /v1/processes` takes, as `damson ps` does: only the processes in `state` (a
/// state's name, in any case), of the plugin `plugin`, or that have not terminated (`live`).
#[derive(Deserialize)]
struct ProcessQuery {
    state: Option<String>,
    plugin: Option<String>,
    #[serde(default)]
    live: bool,
}

async fn processes(
    State(api): State<Api>,
    caller: Caller,
    Query(query): Query<ProcessQuery>,
) -> Reply {
    let host = caller.host(&api, Scope::Read).await?;
    let state = match query.state.as_deref() {
        None => None,
        Some(name) => {
            let state = crate::ProcessState::from_name(name).ok_or_else(|| {
                let names: Vec<&str> = crate::ProcessState::ALL.map(|s| s.name()).to_vec();
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "query parameter 'state': no state '{name}' (the states: {})",
                        names.join(", ")
                    ),
                )
            })?;
            Some(state.name().to_string())
        }
    };
    let filter = crate::persist::SummaryFilter {
        live: query.live,
        state,
        plugin: query.plugin,
        ..Default::default()
    };
    let (rows, damaged) = views::processes(&**store(&host)?, host.tenant(), &filter).await?;
    for error in &damaged {
        tracing::warn!("{}", crate::error::chain(error));
    }
    Ok(Json(json!({"processes": rows})))
}

/// What `POST /v1/processes` takes.
#[derive(Deserialize)]
struct Submission {
    plugin: String,
    #[serde(default)]
    inputs: Map<String, Value>,
}

async fn submit(
    State(api): State<Api>,
    caller: Caller,
    Json(submission): Json<Submission>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let host = caller.host(&api, Scope::Submit).await?;
    let launched = async {
        let plugin = host.load(&submission.plugin).await?;
        host.launch(&plugin, Value::Object(submission.inputs)).await
    }
    .await;
    let pid = launched.as_ref().ok().map(|p| p.pid().to_string());
    api.audit(&caller, "process.submit", pid.as_deref(), &launched)
        .await;
    let process = launched?;
    Ok((StatusCode::CREATED, Json(summary(&process))))
}

async fn show(State(api): State<Api>, caller: Caller, Path(pid): Path<String>) -> Reply {
    let host = caller.host(&api, Scope::Read).await?;
    match views::process(&**store(&host)?, host.tenant(), &pid).await? {
        Some((json, _)) => Ok(Json(json)),
        None => Err(no_process(&pid)),
    }
}

async fn status(State(api): State<Api>, caller: Caller, Path(pid): Path<String>) -> Reply {
    let host = caller.host(&api, Scope::Read).await?;
    if let Some(process) = host.process(&pid) {
        return Ok(Json(summary(&process)));
    }
    match views::read(
        &**store(&host)?,
        &crate::persist::CheckpointKey::of(host.tenant(), &pid),
    )
    .await?
    {
        Some(stored) => {
            let mut row = views::row(&stored.record);
            row["running_here"] = json!(false);
            Ok(Json(row))
        }
        None => Err(no_process(&pid)),
    }
}

async fn checkpoints(State(api): State<Api>, caller: Caller, Path(pid): Path<String>) -> Reply {
    let host = caller.host(&api, Scope::Read).await?;
    let rows = views::checkpoints(&**store(&host)?, host.tenant(), &pid).await?;
    if rows.is_empty() {
        return Err(no_process(&pid));
    }
    Ok(Json(json!({"checkpoints": rows})))
}

/// What `GET /v1/processes/{pid}/logs` takes: lines numbered after `after` (by default all),
/// at most `limit` of them (by default 1000).
#[derive(Deserialize)]
struct LogQuery {
    #[serde(default)]
    after: u64,
    #[serde(default = "default_log_limit")]
    limit: usize,
}

fn default_log_limit() -> usize {
    1000
}

async fn logs(
    State(api): State<Api>,
    caller: Caller,
    Path(pid): Path<String>,
    Query(query): Query<LogQuery>,
) -> Reply {
    let host = caller.host(&api, Scope::Read).await?;
    let store = store(&host)?;
    let Some(log) = views::logs(&**store, host.tenant(), &pid, query.after, query.limit).await?
    else {
        return Err(no_process(&pid));
    };
    let lines: Vec<Value> = log.lines.iter().map(views::log_line).collect();
    Ok(Json(json!({"lines": lines, "dropped": log.dropped})))
}

/// The body the control routes take, all of it optional.
#[derive(Deserialize, Default)]
struct Control {
    message: Option<String>,
    #[serde(default)]
    force: bool,
    tag: Option<String>,
}

async fn pause(
    State(api): State<Api>,
    caller: Caller,
    Path(pid): Path<String>,
    body: Option<Json<Control>>,
) -> Reply {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    control(&api, &caller, &pid, "process.pause", |p| {
        p.pause(body.message.as_deref())
    })
    .await
}

async fn play(State(api): State<Api>, caller: Caller, Path(pid): Path<String>) -> Reply {
    control(&api, &caller, &pid, "process.play", ProcessHandle::play).await
}

async fn kill(
    State(api): State<Api>,
    caller: Caller,
    Path(pid): Path<String>,
    body: Option<Json<Control>>,
) -> Reply {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    control(&api, &caller, &pid, "process.kill", |p| {
        p.kill(body.message.as_deref(), body.force)
    })
    .await
}

/// The body the signal route takes, all of it optional (no event: a plain resume).
#[derive(Deserialize, Default)]
struct SignalBody {
    event: Option<String>,
    data: Option<Value>,
    key: Option<String>,
}

async fn signal(
    State(api): State<Api>,
    caller: Caller,
    Path(pid): Path<String>,
    body: Option<Json<SignalBody>>,
) -> Reply {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let host = caller.host(&api, Scope::Control).await?;
    let signal = Signal {
        event: body.event,
        data: body.data.filter(|d| !d.is_null()),
        key: body.key,
    };
    // A stored process is continued here first, as the control routes do, so that it takes
    // the signal now if it waits for it.
    let sent = async {
        if host.process(&pid).is_none() {
            host.continue_process(&pid, None).await?;
        }
        host.signal(&pid, &signal).await
    }
    .await;
    api.audit(&caller, "process.signal", Some(&pid), &sent)
        .await;
    let sent = sent?;
    Ok(Json(json!({
        "pid": pid,
        "seq": sent.seq(),
        "duplicate": matches!(sent, Sent::Duplicate { .. }),
    })))
}

async fn continue_(
    State(api): State<Api>,
    caller: Caller,
    Path(pid): Path<String>,
    body: Option<Json<Control>>,
) -> Reply {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let host = caller.host(&api, Scope::Submit).await?;
    let continued = host.continue_process(&pid, body.tag.as_deref()).await;
    api.audit(&caller, "process.continue", Some(&pid), &continued)
        .await;
    Ok(Json(summary(&continued?)))
}

/// Pause, play or kill `pid`: the process this daemon runs, or a stored one it continues here
/// first (taking its claim). The reply's `done` is false when the process refused (it has
/// terminated), as plumpy's RPC answers `False`. 404 for no such process of the tenant, 409
/// for one that another host runs.
async fn control(
    api: &Api,
    caller: &Caller,
    pid: &str,
    action: &str,
    act: impl FnOnce(&ProcessHandle) -> bool,
) -> Reply {
    let host = caller.host(api, Scope::Control).await?;
    let found = live_or_continued(&host, pid).await;
    let done = found.map(|process| {
        let done = act(&process);
        (process, done)
    });
    api.audit(caller, action, Some(pid), &done).await;
    let (process, done) = done?;
    let mut reply = summary(&process);
    reply["done"] = json!(done);
    Ok(Json(reply))
}

/// The process `pid` of `host`'s tenant, running here (continued from its checkpoint if it was
/// not; a terminated one comes back as its record).
async fn live_or_continued(host: &Host, pid: &str) -> Result<ProcessHandle, Problem> {
    if let Some(process) = host.process(pid) {
        return Ok(process);
    }
    Ok(host.continue_process(pid, None).await?)
}

/// A process as the control routes answer: its row, from the running process.
fn summary(process: &ProcessHandle) -> Value {
    let mut row = views::row(&process.record());
    row["running_here"] = json!(!process.state().is_terminal());
    row
}

fn store(host: &Host) -> Result<&std::sync::Arc<dyn crate::persist::Persister>, Problem> {
    host.store().ok_or_else(|| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "this daemon has no store",
        )
    })
}

fn no_process(pid: &str) -> Problem {
    Problem::not_found(format!("no process {pid}"))
}

//! The OpenAPI 3.1 description of the API, served at `GET /v1/openapi.json`. A test checks
//! that it names every route the router has, and no other.

use serde_json::{Value, json};

/// Every route, as the router has it: method, path, operation id, scope, summary.
pub(super) const OPERATIONS: &[(&str, &str, &str, Option<&str>, &str)] = &[
    (
        "get",
        "/v1/openapi.json",
        "describe",
        None,
        "This description",
    ),
    (
        "get",
        "/v1/plugins",
        "listPlugins",
        Some("read"),
        "The names of the plugins the tenant can run",
    ),
    (
        "get",
        "/v1/plugins/{name}",
        "describePlugin",
        Some("read"),
        "A plugin's ports, exit codes and outline, as `damson describe --json`",
    ),
    (
        "get",
        "/v1/processes",
        "listProcesses",
        Some("read"),
        "The tenant's stored processes, oldest first, as `damson ps --json`; query parameters \
         `state` (a state's name), `plugin` (a plugin's name) and `live=true` keep some, as \
         `ps --state`, `--plugin` and `--live` do (400 for a state that does not exist)",
    ),
    (
        "post",
        "/v1/processes",
        "submit",
        Some("submit"),
        "Launch a process: body {\"plugin\": NAME, \"inputs\": {...}}; 201 with its row",
    ),
    (
        "get",
        "/v1/processes/{pid}",
        "showProcess",
        Some("read"),
        "A stored process, as `damson show --json`",
    ),
    (
        "get",
        "/v1/processes/{pid}/status",
        "status",
        Some("read"),
        "A process's state, from this daemon when it runs here, else from the store",
    ),
    (
        "get",
        "/v1/processes/{pid}/checkpoints",
        "listCheckpoints",
        Some("read"),
        "A process's checkpoints with their sizes, as `damson checkpoints --json`",
    ),
    (
        "get",
        "/v1/processes/{pid}/logs",
        "processLogs",
        Some("read"),
        "A process's last log lines, oldest first, as {\"lines\": [{\"seq\", \"at_ms\", \"level\", \
         \"source\", \"message\"}], \"dropped\": N}; query `after` (a seq, default 0) and `limit` \
         (default 1000)",
    ),
    (
        "post",
        "/v1/processes/{pid}/pause",
        "pause",
        Some("control"),
        "Pause a process; body {\"message\": TEXT} optional; `done` false if it has terminated",
    ),
    (
        "post",
        "/v1/processes/{pid}/play",
        "play",
        Some("control"),
        "Play a paused process",
    ),
    (
        "post",
        "/v1/processes/{pid}/kill",
        "kill",
        Some("control"),
        "Kill a process; body {\"message\": TEXT, \"force\": BOOL} optional",
    ),
    (
        "post",
        "/v1/processes/{pid}/signal",
        "signal",
        Some("control"),
        "Send a signal; body {\"event\": TEXT, \"data\": JSON, \"key\": TEXT}, each optional \
         (no event: a plain resume). Stored before the reply, taken by the process's wait for \
         the event; the reply's `seq` numbers it, `duplicate` is true when a signal with the \
         same key was sent before (nothing stored again); 409 for a terminated process",
    ),
    (
        "post",
        "/v1/processes/{pid}/continue",
        "continueProcess",
        Some("submit"),
        "Continue a stored process here from its checkpoint; body {\"tag\": TAG} optional",
    ),
];

/// The description.
pub(super) fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, id, scope, summary) in OPERATIONS {
        let mut responses = json!({
            "200": {"description": "Done", "content": {"application/json": {}}},
        });
        if *method == "post" && *path == "/v1/processes" {
            responses =
                json!({"201": {"description": "Launched", "content": {"application/json": {}}}});
        }
        let mut operation = json!({
            "operationId": id,
            "summary": summary,
            "responses": responses,
        });
        if let Some(scope) = scope {
            operation["security"] = json!([{"bearer": []}]);
            operation["description"] = json!(format!(
                "Needs a token with the `{scope}` scope (or `admin`)."
            ));
            let errors = &mut operation["responses"];
            errors["400"] = error("Bad input: invalid inputs (the port named), an unknown plugin");
            errors["401"] = error("No token, or a malformed, unknown, expired or revoked one");
            errors["403"] = error("The token lacks the scope");
            errors["404"] = error("No such process or plugin of the token's tenant");
            errors["409"] = error("Another host runs the process");
            errors["429"] =
                error("Over one of the tenant's quotas (named, with its limit and use)");
        }
        let mut parameters = Vec::new();
        for name in ["pid", "name"] {
            if path.contains(&format!("{{{name}}}")) {
                parameters.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
            }
        }
        if path.ends_with("/logs") {
            for (name, about) in [
                (
                    "after",
                    "Only lines numbered after this seq (default 0: all)",
                ),
                ("limit", "At most this many lines (default 1000)"),
            ] {
                parameters.push(json!({"name": name, "in": "query", "required": false, "description": about, "schema": {"type": "integer", "minimum": 0}}));
            }
        }
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Damson",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Processes of WebAssembly plugins: submit, list, show, control. Each request acts for the tenant of its bearer token (`damson token create`).",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}},
        },
        "paths": paths,
    })
}

fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    })
}

//! The summary index in PostgreSQL (`damson_summaries`, schema steps 6 and 8): written by the
//! statements that write current checkpoints, read without touching a bundle.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::persist::{ProcessSummary, SummaryFilter};

/// A statement's parameter.
pub(super) type Param<'a> = &'a (dyn ToSql + Sync);

/// Saves a current checkpoint and its summary in one statement: `$1` tenant, `$2` pid, `$3`
/// bundle, `$4..=$15` the summary's columns as [`columns`] gives them (`$4`, the state, NULL
/// for none: unindexed). `claimed` keeps the write to the holder of the claim, `$16`. One row
/// affected when it was written.
pub(super) fn save_statement(claimed: bool) -> String {
    let claim = if claimed {
        "WHERE EXISTS (SELECT 1 FROM damson_claims
                       WHERE tenant = $1 AND pid = $2 AND owner = $16 FOR SHARE)"
    } else {
        ""
    };
    format!(
        "WITH saved AS (
             INSERT INTO damson_checkpoints (tenant, pid, tag, bundle)
             SELECT $1::text, $2::text, '', $3::bytea {claim}
             ON CONFLICT (tenant, pid, tag) DO UPDATE SET bundle = EXCLUDED.bundle, saved_at = now()
             RETURNING tenant, pid)
         INSERT INTO damson_summaries
             (tenant, pid, state, live, paused, failed, plugin, status, position, parent, ctime,
              waiting_for, timer, sleeping)
         SELECT tenant, pid, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 FROM saved
         ON CONFLICT (tenant, pid) DO UPDATE SET {SET_ALL}"
    )
}

/// Every column but the key, from the row proposed.
const SET_ALL: &str = "state = EXCLUDED.state, live = EXCLUDED.live, paused = EXCLUDED.paused, \
    failed = EXCLUDED.failed, plugin = EXCLUDED.plugin, status = EXCLUDED.status, \
    position = EXCLUDED.position, parent = EXCLUDED.parent, ctime = EXCLUDED.ctime, \
    waiting_for = EXCLUDED.waiting_for, timer = EXCLUDED.timer, sleeping = EXCLUDED.sleeping";

/// Gives an unindexed process (`$1` tenant, `$2` pid) its summary (`$3..=$14`).
pub(super) const INDEX: &str = "UPDATE damson_summaries SET state = $3, live = $4, paused = $5, \
    failed = $6, plugin = $7, status = $8, position = $9, parent = $10, ctime = $11, \
    waiting_for = $12, timer = $13, sleeping = $14 \
    WHERE tenant = $1 AND pid = $2 AND state IS NULL";

/// The values of a summary's columns, state first; those of an unindexed row for none.
pub(super) struct Columns {
    state: Option<String>,
    live: bool,
    paused: bool,
    failed: bool,
    plugin: String,
    status: Option<String>,
    position: String,
    parent: Option<String>,
    ctime: i64,
    waiting_for: Option<String>,
    timer: Option<i64>,
    sleeping: bool,
}

pub(super) fn columns(summary: Option<&ProcessSummary>) -> Columns {
    match summary {
        Some(s) => Columns {
            state: Some(s.state.clone()),
            live: s.live,
            paused: s.paused,
            failed: s.failed,
            plugin: s.plugin.clone(),
            status: s.status.clone(),
            position: s.position.clone(),
            parent: s.parent.clone(),
            ctime: s.ctime as i64,
            waiting_for: s.waiting_for.clone(),
            timer: s.timer.map(|t| t as i64),
            sleeping: s.sleeping,
        },
        None => Columns {
            state: None,
            live: false,
            paused: false,
            failed: false,
            plugin: String::new(),
            status: None,
            position: String::new(),
            parent: None,
            ctime: 0,
            waiting_for: None,
            timer: None,
            sleeping: false,
        },
    }
}

impl Columns {
    /// The parameters, in the order the statements number them.
    pub(super) fn params(&self) -> [Param<'_>; 12] {
        [
            &self.state,
            &self.live,
            &self.paused,
            &self.failed,
            &self.plugin,
            &self.status,
            &self.position,
            &self.parent,
            &self.ctime,
            &self.waiting_for,
            &self.timer,
            &self.sleeping,
        ]
    }
}

/// The query for `filter`'s summaries of tenant `$1` (`$2` the state and `$3` the plugin, when
/// the filter names them), oldest first. Conditions are written out rather than passed as
/// parameters so that the planner can use the partial index of live processes.
pub(super) fn select(filter: &SummaryFilter) -> String {
    let mut query = String::from(
        "SELECT pid, state, live, paused, failed, plugin, status, position, parent, ctime, \
         waiting_for, timer, sleeping FROM damson_summaries WHERE tenant = $1 AND state IS NOT NULL",
    );
    if filter.live {
        query.push_str(" AND live");
    }
    if filter.top_level {
        query.push_str(" AND parent IS NULL");
    }
    if filter.state.is_some() {
        query.push_str(" AND state = $2");
    }
    if filter.plugin.is_some() {
        query.push_str(if filter.state.is_some() {
            " AND plugin = $3"
        } else {
            " AND plugin = $2"
        });
    }
    query.push_str(" ORDER BY ctime, pid");
    query
}

/// A row of [`select`].
pub(super) fn summary_of(row: &Row) -> ProcessSummary {
    ProcessSummary {
        pid: row.get(0),
        state: row.get(1),
        live: row.get(2),
        paused: row.get(3),
        failed: row.get(4),
        plugin: row.get(5),
        status: row.get(6),
        position: row.get(7),
        parent: row.get(8),
        ctime: row.get::<_, i64>(9) as u64,
        waiting_for: row.get(10),
        timer: row.get::<_, Option<i64>>(11).map(|t| t as u64),
        sleeping: row.get(12),
    }
}

//! The process's log: the plugin's lines and the host's, appended before the checkpoints that
//! follow them, within the bound.

use crate::guest::{LogLevel, LogSource};
use crate::process::ProcessState;

use super::fakes::*;

/// The messages of every line appended to the log of `pid`, in order.
fn messages(host: &Fake, pid: &str) -> Vec<String> {
    host.logs_of(pid)
        .iter()
        .flat_map(|a| a.lines.iter().map(|l| l.message.clone()))
        .collect()
}

#[tokio::test]
async fn the_plugins_lines_and_the_state_changes_are_stored_before_the_checkpoints_after_them() {
    let host = Fake::durable();
    let plugin = Plugin::steps("p", &["first", "second"])
        .on("first", |_| Act::go_on().log("one").log("two"))
        .on("second", |_| Act::go_on().log("three"));
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    assert_eq!(ended(&process).await.state, ProcessState::Finished);
    assert_eq!(
        messages(&host, "p"),
        [
            "state: created -> running",
            "one",
            "two",
            "three",
            "finished with exit status 0",
            "state: running -> finished",
        ]
    );
    let appended = host.logs_of("p");
    let saved = host.saved();
    let last = appended.last().unwrap();
    assert_eq!(
        last.saves_before,
        saved.len() - 1,
        "the last lines are stored before the final checkpoint"
    );
    assert_eq!(saved.last().unwrap().record.state, ProcessState::Finished);
    let sources: Vec<LogSource> = appended
        .iter()
        .flat_map(|a| a.lines.iter().map(|l| l.source))
        .collect();
    let (host_, plugin_) = (LogSource::Host, LogSource::Plugin);
    assert_eq!(sources, [host_, plugin_, plugin_, plugin_, host_, host_]);
}

#[tokio::test]
async fn a_kill_and_an_error_are_logged_by_the_host() {
    let host = Fake::durable();
    let spins = Plugin::steps("spins", &["spin"]).on("spin", |_| Act::Spin);
    let (process, _) = host.create(&spins, "k", None);
    process.start().unwrap();
    until(&process, |r| r.state == ProcessState::Running).await;
    assert!(process.kill(Some("enough"), false));
    assert_eq!(ended(&process).await.state, ProcessState::Killed);
    let lines: Vec<_> = host
        .logs_of("k")
        .into_iter()
        .flat_map(|a| a.lines)
        .collect();
    let killed = lines.iter().find(|l| l.message == "killed: enough");
    assert_eq!(killed.map(|l| l.level), Some(LogLevel::Warn), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.message == "state: running -> killed")
    );

    let fails = Plugin::steps("fails", &["boom"]).on("boom", |_| {
        Act::Fail(
            crate::guest::Failure::Error("it broke".into()),
            Default::default(),
        )
        .log("about to break")
    });
    let (process, _) = host.create(&fails, "e", None);
    process.start().unwrap();
    assert_eq!(ended(&process).await.state, ProcessState::Excepted);
    let lines = messages(&host, "e");
    assert!(lines.contains(&"about to break".to_string()), "{lines:?}");
    let excepted = lines.iter().find(|m| m.starts_with("excepted: "));
    assert!(
        excepted.is_some_and(|m| m.contains("it broke")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_process_holds_no_more_lines_than_it_keeps_and_counts_the_rest() {
    let host = Fake::keeping_log_lines(3);
    let plugin = Plugin::steps("p", &["chatty"]).on("chatty", |_| {
        (0..10).fold(Act::go_on(), |act, n| act.log(&format!("line {n}")))
    });
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    ended(&process).await;
    let appended = host.logs_of("p");
    let first = &appended[0];
    let kept: Vec<&str> = first.lines.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(kept, ["line 7", "line 8", "line 9"]);
    assert_eq!(
        first.dropped, 8,
        "7 of the plugin's lines and the host's first"
    );
    assert!(appended.iter().all(|a| a.lines.len() <= 3));
}

#[tokio::test]
async fn without_a_store_nothing_is_appended() {
    let host = Fake::memory();
    let plugin = Plugin::steps("p", &["a"]).on("a", |_| Act::go_on().log("hello"));
    let (process, _) = host.create(&plugin, "p", None);
    process.start().unwrap();
    ended(&process).await;
    assert!(host.logs_of("p").is_empty());
}

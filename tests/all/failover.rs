//! Failover: two `damson worker` OS processes share a real RabbitMQ and a real PostgreSQL; 100
//! processes are submitted; one worker is killed with SIGKILL mid-run; the other takes its
//! processes over from their last checkpoints once their claims run out. Every process
//! finishes, once, with the outputs of a clean run, with no manual step. (The broker restart is
//! `tests/broker_restart.rs`, a test binary of its own.)

use std::time::Duration;

use damson_tests::fleet::Fleet;

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_run_leaves_its_processes_to_the_other_and_all_finish_once() {
    let mut fleet = Fleet::start("failover").await;
    let pids = fleet.submit(100).await;

    // Mid-run: both workers have processes in their loops.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(fleet.workers.remove(0)); // SIGKILL

    fleet.all_finish_once(&pids, Duration::from_secs(90)).await;
    assert!(
        !fleet.workers[0].logged("took over process").is_empty(),
        "the killed worker had processes in flight, which the survivor took over"
    );
    fleet.client.close().await;
}

//! Group commit: the embedded store's checkpoint and log writes go through one writer thread,
//! which puts every write waiting when it starts a transaction into that one transaction. A
//! commit costs a few `fsync`s whatever it holds, so many processes saving at once share them.
//! Each write is answered only once its transaction has committed: a step is durable before
//! the host goes on, as with a transaction of its own.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};

use redb::{Database, WriteTransaction};
use tokio::sync::oneshot;

use super::BoxError;

/// How many writes one transaction takes at most, so that a long queue still commits often.
const MOST_PER_COMMIT: usize = 256;

/// A write: applied to a transaction, it answers `true`, or `false` when it chose to write
/// nothing (a claimed save whose claim is another's). It may run twice (see [`run`]): it must
/// depend only on what the transaction holds.
pub(super) type Work = Box<dyn Fn(&WriteTransaction) -> Result<bool, BoxError> + Send>;

struct Job {
    work: Work,
    done: oneshot::Sender<Result<bool, BoxError>>,
}

/// The queue to the writer thread of one store. Dropping it ends the thread once the writes
/// queued are done, and waits for that: the database is closed when the store is dropped.
pub(super) struct Writer {
    queue: Option<Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Writer {
    /// Start the writer thread of `db`.
    pub(super) fn start(db: Arc<Database>) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("damson-store-writer".into())
            .spawn(move || serve(&db, &jobs))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Apply `work` in the next transaction, and answer once it has committed.
    pub(super) async fn write(&self, work: Work) -> Result<bool, BoxError> {
        let (done, answer) = oneshot::channel();
        self.queue
            .as_ref()
            .expect("the queue lives as long as the writer")
            .send(Job { work, done })
            .map_err(|_| "the store's writer has stopped")?;
        answer
            .await
            .map_err(|_| "the store's writer stopped before answering")?
    }
}

fn serve(db: &Database, jobs: &Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MOST_PER_COMMIT {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match run(db, &batch) {
            Ok(answers) => {
                for (job, answer) in batch.into_iter().zip(answers) {
                    let _ = job.done.send(Ok(answer));
                }
            }
            // One write that fails must not fail the others: each runs again on its own, and
            // gets its own answer (the failed transaction wrote nothing).
            Err(_) if batch.len() > 1 => {
                for job in batch {
                    let answer = run(db, std::slice::from_ref(&job)).map(|a| a[0]);
                    let _ = job.done.send(answer);
                }
            }
            Err(error) => {
                let job = batch.pop().expect("a batch of one");
                let _ = job.done.send(Err(error));
            }
        }
    }
}

/// Apply `batch` in one transaction and commit it; nothing is written if any write fails.
fn run(db: &Database, batch: &[Job]) -> Result<Vec<bool>, BoxError> {
    let txn = db.begin_write()?;
    let answers = batch
        .iter()
        .map(|job| (job.work)(&txn))
        .collect::<Result<Vec<_>, _>>()?;
    txn.commit()?;
    Ok(answers)
}

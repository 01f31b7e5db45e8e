//! Group commit: the embedded store's writes go through one writer thread, which puts every
//! write waiting when it starts a transaction into that one transaction. A commit costs a few
//! `fsync`s whatever it holds, so many processes saving (and claiming, and releasing) at once
//! share them. Each write is answered only once its transaction has committed: a step is
//! durable before the host goes on, as with a transaction of its own.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};

use redb::{Database, WriteTransaction};
use tokio::sync::oneshot;

use super::BoxError;

/// How many writes one transaction takes at most, so that a long queue still commits often.
const MOST_PER_COMMIT: usize = 256;

/// A write waiting for its transaction: applied to it (perhaps twice, see [`run`]: what it
/// does must depend only on what the transaction holds), then answered once it committed.
trait Pending: Send {
    /// Apply the write to `txn`, keeping its answer until the commit.
    fn apply(&mut self, txn: &WriteTransaction) -> Result<(), BoxError>;
    /// Answer the writer: the answer kept, once the transaction committed, or `error`.
    fn answer(self: Box<Self>, error: Option<BoxError>);
}

struct Job<T, F> {
    work: F,
    answer: Option<T>,
    done: oneshot::Sender<Result<T, BoxError>>,
}

impl<T, F> Pending for Job<T, F>
where
    T: Send,
    F: Fn(&WriteTransaction) -> Result<T, BoxError> + Send,
{
    fn apply(&mut self, txn: &WriteTransaction) -> Result<(), BoxError> {
        self.answer = Some((self.work)(txn)?);
        Ok(())
    }

    fn answer(self: Box<Self>, error: Option<BoxError>) {
        let answer = match (error, self.answer) {
            (Some(error), _) => Err(error),
            (None, Some(answer)) => Ok(answer),
            (None, None) => Err("the store's writer answered a write it never applied".into()),
        };
        let _ = self.done.send(answer);
    }
}

/// The queue to the writer thread of one store. Dropping it ends the thread once the writes
/// queued are done, and waits for that: the database is closed when the store is dropped.
pub(super) struct Writer {
    queue: Option<Sender<Box<dyn Pending>>>,
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

    /// Apply `work` in the next transaction, and answer what it answered once that has
    /// committed. `work` may run twice, in two transactions (the first one failed): it must
    /// depend only on what the transaction holds.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T, BoxError>
    where
        T: Send + 'static,
        F: Fn(&WriteTransaction) -> Result<T, BoxError> + Send + 'static,
    {
        let (done, answer) = oneshot::channel();
        let job = Job {
            work,
            answer: None,
            done,
        };
        self.queue
            .as_ref()
            .expect("the queue lives as long as the writer")
            .send(Box::new(job))
            .map_err(|_| "the store's writer has stopped")?;
        answer
            .await
            .map_err(|_| "the store's writer stopped before answering")?
    }
}

fn serve(db: &Database, jobs: &Receiver<Box<dyn Pending>>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MOST_PER_COMMIT {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match run(db, &mut batch) {
            Ok(()) => batch.into_iter().for_each(|job| job.answer(None)),
            // One write that fails must not fail the others: each runs again on its own, and
            // gets its own answer (the failed transaction wrote nothing).
            Err(_) if batch.len() > 1 => {
                for mut job in batch {
                    let error = run(db, std::slice::from_mut(&mut job)).err();
                    job.answer(error);
                }
            }
            Err(error) => {
                if let Some(job) = batch.pop() {
                    job.answer(Some(error));
                }
            }
        }
    }
}

/// Apply `batch` in one transaction and commit it; nothing is written if any write fails.
fn run(db: &Database, batch: &mut [Box<dyn Pending>]) -> Result<(), BoxError> {
    let txn = db.begin_write()?;
    for job in batch.iter_mut() {
        job.apply(&txn)?;
    }
    txn.commit()?;
    Ok(())
}

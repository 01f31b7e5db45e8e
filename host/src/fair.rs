//! [`FairPermits`]: a counting semaphore shared fairly between tenants. A permit set free goes
//! to the waiting tenant that holds the fewest (ties: the one that has waited longest), not to
//! whoever asked first; and no tenant takes the last free permits while it holds its share, so
//! that one tenant's flood of requests cannot starve another's.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// Permits shared between tenants. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub(crate) struct FairPermits {
    /// How many one tenant may hold while another could ask: the rest stays for the others.
    share: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    free: usize,
    held: HashMap<Arc<str>, usize>,
    /// Who waits, by tenant, first come first served within a tenant.
    waiting: HashMap<Arc<str>, VecDeque<oneshot::Sender<FairPermit>>>,
    /// Tenants with waiters, in the order they began to wait.
    queue: VecDeque<Arc<str>>,
}

/// One permit, held by a tenant until dropped.
#[derive(Debug)]
pub(crate) struct FairPermit {
    permits: Arc<FairPermits>,
    tenant: Arc<str>,
}

impl FairPermits {
    /// `total` permits, of which one tenant may hold `share` at once while others wait or may
    /// come (at least one; at most `total`).
    pub(crate) fn new(total: usize, share: usize) -> Arc<Self> {
        assert!(total > 0, "no permits");
        Arc::new(Self {
            share: share.clamp(1, total),
            state: Mutex::new(State {
                free: total,
                ..State::default()
            }),
        })
    }

    /// The usual share of `total` permits: three quarters, so that a quarter is always left
    /// for tenants other than the busiest one.
    pub(crate) fn three_quarters(total: usize) -> usize {
        if total < 4 { total } else { total * 3 / 4 }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A permit for `tenant`: at once when one is free (and the tenant holds less than its
    /// share), else when one is set free for it.
    pub(crate) async fn acquire(self: &Arc<Self>, tenant: &Arc<str>) -> FairPermit {
        let waiting = {
            let mut state = self.state();
            let held = state.held.get(tenant).copied().unwrap_or(0);
            if state.free > 0 && held < self.share && !state.waiting.contains_key(tenant) {
                state.free -= 1;
                *state.held.entry(tenant.clone()).or_default() += 1;
                return FairPermit {
                    permits: self.clone(),
                    tenant: tenant.clone(),
                };
            }
            let (send, receive) = oneshot::channel();
            match state.waiting.get_mut(tenant) {
                Some(queue) => queue.push_back(send),
                None => {
                    state.waiting.insert(tenant.clone(), VecDeque::from([send]));
                    state.queue.push_back(tenant.clone());
                }
            }
            // Free permits and waiters both (waiters that gave up, ahead of this one): serve
            // them now.
            self.hand_over(state);
            receive
        };
        match waiting.await {
            Ok(permit) => permit,
            // Never dropped without a send: a sender is only ever consumed by `hand_over`.
            Err(_) => unreachable!("a waiter's sender is dropped only after sending"),
        }
    }

    /// A permit of `tenant` is set free: give it (or a free one) to the waiting tenant that
    /// holds the fewest and is under its share, else keep it free.
    fn release(self: &Arc<Self>, tenant: &Arc<str>) {
        let mut state = self.state();
        if let Some(held) = state.held.get_mut(tenant) {
            *held -= 1;
            if *held == 0 {
                state.held.remove(tenant);
            }
        }
        state.free += 1;
        self.hand_over(state);
    }

    /// Give free permits to waiters while there are both.
    fn hand_over<'a>(self: &'a Arc<Self>, mut state: MutexGuard<'a, State>) {
        while state.free > 0 {
            let held = |t: &Arc<str>| state.held.get(t).copied().unwrap_or(0);
            let Some(index) = state
                .queue
                .iter()
                .enumerate()
                .filter(|(_, t)| held(t) < self.share)
                .min_by_key(|(_, t)| held(t))
                .map(|(i, _)| i)
            else {
                return;
            };
            let tenant = state.queue[index].clone();
            let queue = state
                .waiting
                .get_mut(&tenant)
                .expect("a queued tenant waits");
            let send = queue.pop_front().expect("a queued tenant has a waiter");
            if queue.is_empty() {
                state.waiting.remove(&tenant);
                state.queue.remove(index);
            } else {
                // Round robin among equals: to the back of the line.
                state.queue.remove(index);
                state.queue.push_back(tenant.clone());
            }
            state.free -= 1;
            *state.held.entry(tenant.clone()).or_default() += 1;
            let permit = FairPermit {
                permits: self.clone(),
                tenant,
            };
            // A waiter that gave up hands the permit back: dropping it outside the lock
            // releases it again.
            drop(state);
            if let Err(permit) = send.send(permit) {
                drop(permit);
            }
            state = self.state();
        }
    }
}

impl Drop for FairPermit {
    fn drop(&mut self) {
        self.permits.release(&self.tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    #[tokio::test]
    async fn a_freed_permit_goes_to_the_tenant_holding_fewest_not_to_the_first_in_line() {
        let permits = FairPermits::new(2, 2);
        let (a, b) = (t("a"), t("b"));
        let first = permits.acquire(&a).await;
        let _second = permits.acquire(&a).await;
        // a asks again before b does; both wait.
        let a_waits = tokio::spawn({
            let (permits, a) = (permits.clone(), a.clone());
            async move { permits.acquire(&a).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let b_waits = tokio::spawn({
            let (permits, b) = (permits.clone(), b.clone());
            async move { permits.acquire(&b).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        let got = tokio::time::timeout(Duration::from_secs(5), b_waits)
            .await
            .expect("b is served first")
            .unwrap();
        assert_eq!(&*got.tenant, "b");
        assert!(!a_waits.is_finished(), "a still waits");
        drop(got);
        let got = a_waits.await.unwrap();
        assert_eq!(&*got.tenant, "a");
    }

    #[tokio::test]
    async fn one_tenant_leaves_a_quarter_for_the_others() {
        let permits = FairPermits::new(8, FairPermits::three_quarters(8));
        let a = t("a");
        let mut held = Vec::new();
        for _ in 0..6 {
            held.push(permits.acquire(&a).await);
        }
        let more = tokio::time::timeout(Duration::from_millis(50), permits.acquire(&a)).await;
        assert!(more.is_err(), "a holds its share");
        let b = permits.acquire(&t("b")).await;
        assert_eq!(&*b.tenant, "b", "b finds one free at once");
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_loses_nothing() {
        let permits = FairPermits::new(1, 1);
        let a = t("a");
        let held = permits.acquire(&a).await;
        let gave_up =
            tokio::time::timeout(Duration::from_millis(20), permits.acquire(&t("b"))).await;
        assert!(gave_up.is_err());
        drop(held);
        let again = tokio::time::timeout(Duration::from_secs(5), permits.acquire(&t("c"))).await;
        assert!(again.is_ok(), "the permit came back");
    }
}

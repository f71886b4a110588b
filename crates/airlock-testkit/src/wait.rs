//! Waiting for a condition, with a deadline: the one way tests wait. A bare sleep encodes a
//! guess about timing that a loaded machine breaks; a condition polled until a deadline only
//! takes as long as the thing it waits for, and says what never happened when it fails.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// Pauses between polls grow from this...
const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// ...to at most this.
const LONGEST_PAUSE: Duration = Duration::from_millis(200);

/// Polls `probe` until it returns `Ok`, and returns that value. After `timeout` the test fails
/// with `what` and the last `Err` the probe gave (what it saw instead).
pub fn wait_for<T, E: Debug>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Result<T, E>) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = FIRST_PAUSE;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last:?}")
            }
            Err(_) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
        }
    }
}

/// Polls `condition` until it holds; fails the test with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    wait_for(what, timeout, || if condition() { Ok(()) } else { Err("not yet") })
}

/// [`wait_for`] for async tests: the pauses yield to the runtime instead of blocking it.
pub async fn wait_for_async<T, E: Debug, F: Future<Output = Result<T, E>>>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = FIRST_PAUSE;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last:?}")
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn returns_the_value_as_soon_as_the_probe_gives_one() {
        let polls = Cell::new(0);
        let value = wait_for("the third poll", Duration::from_secs(5), || {
            polls.set(polls.get() + 1);
            if polls.get() == 3 { Ok("ready") } else { Err(polls.get()) }
        });
        assert_eq!((value, polls.get()), ("ready", 3));
    }

    #[test]
    fn fails_at_the_deadline_naming_what_never_happened_and_the_last_state() {
        let started = Instant::now();
        let failure = std::panic::catch_unwind(|| wait_for::<(), _>("a green light", Duration::from_millis(50), || Err("red")))
            .expect_err("the wait must fail");
        let message = failure.downcast_ref::<String>().unwrap();
        assert!(message.contains("a green light") && message.contains("\"red\""), "{message}");
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn the_async_wait_yields_between_polls() {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let setter = {
            let flag = flag.clone();
            tokio::spawn(async move { flag.store(true, std::sync::atomic::Ordering::SeqCst) })
        };
        // On this single-threaded runtime the setter only runs if the wait yields.
        wait_for_async("the flag", Duration::from_secs(5), || {
            let flag = flag.clone();
            async move { if flag.load(std::sync::atomic::Ordering::SeqCst) { Ok(()) } else { Err("unset") } }
        })
        .await;
        setter.await.unwrap();
    }
}

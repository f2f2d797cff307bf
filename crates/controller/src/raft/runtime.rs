//! The async runtime openraft runs on: tokio, with one difference that
//! makes simulations replayable: openraft's only randomness (the election
//! timeout drawn from `election_timeout_min..election_timeout_max`) comes
//! from `sluice_runtime::Rng`, which a simulation seeds
//! ([`seed_thread_rng`]). Outside a simulation it draws from the OS's
//! entropy, as `rand::thread_rng` does.
//!
//! Invariant: every type but the RNG is tokio's, so timers follow tokio's
//! clock (paused and driven by turmoil in simulations).

use std::future::Future;
use std::time::Duration;

use openraft::{AsyncRuntime, TokioInstant, TokioRuntime};

/// The thread-local RNG openraft draws from.
pub use sluice_runtime::Rng as SeededRng;

/// Seeds this thread's randomness and switches it to the simulation's
/// runtime (`sluice_runtime::simulate_on_this_thread`); a simulation calls
/// it before it starts nodes (all simulated hosts run on one thread).
pub fn seed_thread_rng(seed: u64) {
    sluice_runtime::simulate_on_this_thread(seed);
}

/// Tokio with a seedable RNG (see the module docs).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SluiceRuntime;

impl AsyncRuntime for SluiceRuntime {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: Send + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <TokioRuntime as AsyncRuntime>::Sleep;
    type Instant = TokioInstant;
    type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + Send> = <TokioRuntime as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = SeededRng;
    type OneshotSender<T: Send> = <TokioRuntime as AsyncRuntime>::OneshotSender<T>;
    type OneshotReceiverError = <TokioRuntime as AsyncRuntime>::OneshotReceiverError;
    type OneshotReceiver<T: Send> = <TokioRuntime as AsyncRuntime>::OneshotReceiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + Send + 'static,
        T::Output: Send + 'static,
    {
        TokioRuntime::spawn(future)
    }
    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }
    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }
    fn timeout<R, F: Future<Output = R> + Send>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration, future)
    }
    fn timeout_at<R, F: Future<Output = R> + Send>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }
    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }
    fn thread_rng() -> Self::ThreadLocalRng {
        SeededRng
    }
    fn oneshot<T: Send>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>) {
        TokioRuntime::oneshot()
    }
}

//! Where the verifier gets the time, so tests can drive expiry without sleeping.

use std::fmt::Debug;
use std::time::SystemTime;

/// A source of the current time, for the `exp` and `nbf` checks and the key-set cache.
///
/// The default is [`SystemClock`]. A test sets its own with
/// [`VerifierBuilder::with_clock`](crate::VerifierBuilder::with_clock):
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::{Duration, SystemTime};
/// use session_layer_verify::Clock;
///
/// #[derive(Debug, Clone)]
/// struct TestClock(Arc<Mutex<SystemTime>>);
///
/// impl Clock for TestClock {
///     fn now(&self) -> SystemTime {
///         *self.0.lock().unwrap()
///     }
/// }
///
/// let clock = TestClock(Arc::new(Mutex::new(SystemTime::UNIX_EPOCH)));
/// *clock.0.lock().unwrap() += Duration::from_secs(60);
/// assert_eq!(clock.now(), SystemTime::UNIX_EPOCH + Duration::from_secs(60));
/// ```
pub trait Clock: Debug + Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Whole seconds since the Unix epoch, as JWT times are written (0 before the epoch).
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

//! The one clock every time comes from. In test mode the admin API can set or advance it, so
//! recall windows and daily limits are testable without waiting.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Default)]
pub struct Clock {
    /// Added to the system time, in microseconds (test mode only).
    offset_us: AtomicI64,
}

fn system_now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl Clock {
    pub fn new() -> Self {
        Clock::default()
    }

    /// Now, in Unix microseconds.
    pub fn now_us(&self) -> i64 {
        system_now_us() + self.offset_us.load(Ordering::Relaxed)
    }

    pub fn now_ms(&self) -> i64 {
        self.now_us() / 1000
    }

    pub fn now_secs(&self) -> i64 {
        self.now_us() / 1_000_000
    }

    /// Moves the clock so that it reads `ms` now; it keeps running from there.
    pub fn set_ms(&self, ms: i64) {
        self.offset_us
            .store(ms.saturating_mul(1000) - system_now_us(), Ordering::Relaxed);
    }

    pub fn advance_ms(&self, ms: i64) {
        self.offset_us
            .fetch_add(ms.saturating_mul(1000), Ordering::Relaxed);
    }
}

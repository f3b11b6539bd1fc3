//! The lab's `counter`: an object lent by reference, with a method, a read-only property
//! and a settable one.

use std::sync::atomic::{AtomicI64, Ordering};

/// A counter: `inc()` adds `step` to `value`.
pub struct Counter {
    value: AtomicI64,
    step: AtomicI64,
}

impl Default for Counter {
    fn default() -> Self {
        Counter {
            value: AtomicI64::new(0),
            step: AtomicI64::new(1),
        }
    }
}

impl Counter {
    /// The current value, read on this side.
    pub fn current(&self) -> i64 {
        self.value.load(Ordering::SeqCst)
    }
}

/// A counter lent by reference.
#[crate::expose]
impl Counter {
    /// Adds `step` to the value and returns the new value.
    #[exposed]
    fn inc(&self) -> i64 {
        let step = self.step.load(Ordering::SeqCst);
        self.value
            .fetch_add(step, Ordering::SeqCst)
            .wrapping_add(step)
    }

    /// Sets the value back to zero.
    #[exposed]
    fn reset(&self) {
        self.value.store(0, Ordering::SeqCst);
    }

    /// The current value (read-only: change it with `inc` or `reset`).
    #[exposed(property)]
    fn value(&self) -> i64 {
        self.value.load(Ordering::SeqCst)
    }

    /// What `inc` adds (settable).
    #[exposed(property)]
    fn step(&self) -> i64 {
        self.step.load(Ordering::SeqCst)
    }

    /// Sets what `inc` adds.
    #[exposed(setter)]
    fn set_step(&self, step: i64) {
        self.step.store(step, Ordering::SeqCst);
    }
}

use std::sync::atomic::{AtomicI64, Ordering};

use netref::expose;

#[derive(Default)]
struct Counter {
    step: AtomicI64,
    value: AtomicI64,
}

#[expose]
impl Counter {
    /// No `#[exposed(property)]` getter for `step`.
    fn step(&self) -> i64 {
        self.step.load(Ordering::SeqCst)
    }

    #[exposed(setter)]
    fn set_step(&self, step: i64) {
        self.step.store(step, Ordering::SeqCst)
    }

    #[exposed(property)]
    fn value(&self) -> i64 {
        self.value.load(Ordering::SeqCst)
    }

    #[exposed(setter)]
    fn set_value(&self, value: i64) {
        self.value.store(value, Ordering::SeqCst)
    }

    // A second setter for `value`.
    #[exposed(setter = "value")]
    fn reset_value(&self, value: i64) {
        self.value.store(value, Ordering::SeqCst)
    }

    // Not named `set_...` and no property named.
    #[exposed(setter)]
    fn change(&self, value: i64) {
        self.value.store(value, Ordering::SeqCst)
    }

    #[exposed]
    fn inc(&self) -> i64 {
        self.value.fetch_add(1, Ordering::SeqCst)
    }

    // `inc` is a method, not a property.
    #[exposed(setter = "inc")]
    fn set_inc(&self, value: i64) {
        self.value.store(value, Ordering::SeqCst)
    }

    // A setter takes exactly one value.
    #[exposed(setter = "value")]
    fn set_both(&self, a: i64, b: i64) {
        self.value.store(a + b, Ordering::SeqCst)
    }
}

fn main() {}

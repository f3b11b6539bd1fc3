//! Sync and async methods, a `Result` return, a property with a setter, a read-only
//! property, a renamed member and an unmarked method, all in one block.
use std::sync::atomic::{AtomicI64, Ordering};

use netref::{expose, ErrorKind, MemberKind, Obj, Object, Proxy, Value};

#[derive(Debug)]
struct Negative;

impl std::fmt::Display for Negative {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("negative step")
    }
}

#[derive(Default)]
pub struct Counter {
    value: AtomicI64,
    step: AtomicI64,
}

/// Counts.
#[expose]
impl Counter {
    /// Adds the step; returns the new value.
    #[exposed]
    fn inc(&self) -> i64 {
        let step = self.step.load(Ordering::SeqCst).max(1);
        self.value.fetch_add(step, Ordering::SeqCst) + step
    }

    /// Adds `n` later.
    #[exposed]
    async fn add_later(&self, n: i64) -> i64 {
        tokio::task::yield_now().await;
        self.value.fetch_add(n, Ordering::SeqCst) + n
    }

    /// Fails for negative numbers.
    #[exposed(name = "check")]
    fn check_step(&self, step: i64) -> Result<i64, Negative> {
        if step < 0 { Err(Negative) } else { Ok(step) }
    }

    /// The current value.
    #[exposed(property)]
    fn value(&self) -> i64 {
        self.value.load(Ordering::SeqCst)
    }

    /// The increment.
    #[exposed(property)]
    fn step(&self) -> i64 {
        self.step.load(Ordering::SeqCst)
    }

    /// Sets the increment.
    #[exposed(setter)]
    async fn set_step(&self, step: i64) -> Result<(), Negative> {
        self.check_step(step)?;
        self.step.store(step, Ordering::SeqCst);
        Ok(())
    }

    /// Not exposed.
    pub fn reset(&self) {
        self.value.store(0, Ordering::SeqCst)
    }
}

fn main() {
    let info = Obj::new(Counter::default()).type_info();
    assert_eq!(info.name, "Counter");
    assert_eq!(info.doc, "Counts.");
    let names: Vec<_> = info.members.iter().map(|m| m.name).collect();
    assert_eq!(names, ["inc", "add_later", "check", "value", "step"]);
    assert_eq!(info.members[2].signature, "check(step: i64) -> Result<i64, Negative>");
    assert_eq!(info.members[3].kind, MemberKind::Property { settable: false });
    assert_eq!(info.members[4].kind, MemberKind::Property { settable: true });

    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let counter = Obj::new(Counter::default());
        let p = Proxy::local(counter.erase());
        assert_eq!(p.call_method("inc", ()).await.unwrap(), Value::Int(1));
        p.attr("step").set(10).await.unwrap();
        assert_eq!(p.call_method("add_later", (5,)).await.unwrap(), Value::Int(6));
        assert_eq!(p.call_method("inc", ()).await.unwrap(), Value::Int(16));
        let e = p.attr("step").set(-1).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Failed);
        let e = p.call_method("reset", ()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSuchMember);
        counter.reset();
        assert_eq!(p.attr("value").get().await.unwrap(), Value::Int(0));
    });
}

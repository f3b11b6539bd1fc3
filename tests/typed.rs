//! Typed proxies: the `LabProxy` clients `#[expose]` writes, on impl blocks and traits,
//! async and blocking, mixed with dynamic calls on one connection.
mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use netref::typed::Blocking;
use netref::{blocking, callback, expose, ErrorKind, Obj, Proxy, TypedProxy, Value};

/// A counter.
#[derive(Default)]
pub struct Counter {
    value: AtomicI64,
    step: AtomicI64,
}

#[expose]
impl Counter {
    /// Adds `step` (1 until set) and returns the new value.
    #[exposed]
    fn inc(&self) -> i64 {
        let step = self.step.load(Ordering::SeqCst).max(1);
        self.value.fetch_add(step, Ordering::SeqCst) + step
    }

    /// The current value.
    #[exposed(property)]
    fn value(&self) -> i64 {
        self.value.load(Ordering::SeqCst)
    }

    /// What `inc` adds.
    #[exposed(property)]
    fn step(&self) -> i64 {
        self.step.load(Ordering::SeqCst)
    }

    #[exposed(setter)]
    fn set_step(&self, step: i64) {
        self.step.store(step, Ordering::SeqCst);
    }
}

/// A job description, by value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Job {
    name: String,
    size: u32,
}

/// The lab of this test.
pub struct Lab {
    counter: Obj<Counter>,
    log: Mutex<Vec<String>>,
}

impl Lab {
    fn new() -> Lab {
        Lab {
            counter: Obj::new(Counter::default()),
            log: Mutex::new(Vec::new()),
        }
    }
}

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}

#[expose]
impl Lab {
    /// Adds two numbers.
    #[exposed]
    fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    /// Joins the names of `jobs`.
    #[exposed]
    fn names(&self, jobs: Vec<Job>) -> String {
        jobs.iter()
            .map(|j| j.name.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Fails for negative sizes.
    #[exposed]
    async fn submit(&self, job: Job) -> Result<u32, Refused> {
        tokio::task::yield_now().await;
        if job.name.is_empty() {
            return Err(Refused);
        }
        self.log.lock().unwrap().push(job.name);
        Ok(job.size * 2)
    }

    /// The counter, by reference.
    #[exposed(property)]
    fn counter(&self) -> Obj<Counter> {
        self.counter.clone()
    }

    /// Fresh counters, by reference.
    #[exposed]
    fn counters(&self, n: usize) -> Vec<Obj<Counter>> {
        (0..n).map(|_| Obj::new(Counter::default())).collect()
    }

    /// True when `c` is this lab's own counter (sent home, it arrives as itself).
    #[exposed]
    fn is_mine(&self, c: Obj<Counter>) -> bool {
        Obj::ptr_eq(&c, &self.counter)
    }

    /// Calls `f(i)` for `i` in `0..n` and sums the results.
    #[exposed]
    async fn sum(&self, n: i64, f: Proxy) -> netref::Result<i64> {
        let mut total = 0;
        for i in 0..n {
            total += f.call((i,)).decode::<i64>().await?;
        }
        Ok(total)
    }

    /// Calls `inc()` on any counter-like object `c` (a proxy of either side's object).
    #[exposed]
    async fn bump(&self, c: Proxy) -> netref::Result<i64> {
        c.call_method("inc", ()).decode().await
    }

    /// The names submitted so far.
    #[exposed(property)]
    fn submitted(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

async fn lab_pair() -> (netref::Connection, netref::Connection) {
    common::pair(Obj::new(Lab::new())).await
}

#[tokio::test]
async fn typed_calls_return_typed_values() {
    let (_server, client) = lab_pair().await;
    let lab: LabProxy = client.root_as().await.unwrap();
    let sum: i64 = lab.add(2, 40).await.unwrap();
    assert_eq!(sum, 42);
    let jobs = vec![
        Job {
            name: "a".into(),
            size: 1,
        },
        Job {
            name: "b".into(),
            size: 2,
        },
    ];
    assert_eq!(lab.names(jobs.clone()).await.unwrap(), "a,b");
    assert_eq!(lab.submit(jobs[1].clone()).await.unwrap(), 4);
    assert_eq!(lab.submitted().await.unwrap(), vec!["b".to_string()]);
    // The handler's error arrives as the remote error it always was.
    let e = lab
        .submit(Job {
            name: String::new(),
            size: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    assert!(e.to_string().contains("refused"), "{e}");
}

#[tokio::test]
async fn objects_come_back_as_typed_proxies_and_go_home_as_themselves() {
    let (_server, client) = lab_pair().await;
    let lab: LabProxy = client.root_as().await.unwrap();
    let counter: CounterProxy = lab.counter().await.unwrap();
    counter.set_step(5).await.unwrap();
    assert_eq!(counter.step().await.unwrap(), 5);
    assert_eq!(counter.inc().await.unwrap(), 5);
    assert_eq!(counter.value().await.unwrap(), 5);
    assert!(lab.is_mine(counter.clone()).await.unwrap());
    let fresh: Vec<CounterProxy> = lab.counters(3).await.unwrap();
    assert_eq!(fresh.len(), 3);
    assert_eq!(fresh[2].inc().await.unwrap(), 1);
    assert!(!lab.is_mine(fresh[0].clone()).await.unwrap());
}

#[tokio::test]
async fn proxy_parameters_take_callbacks_and_typed_proxies_alike() {
    let (_server, client) = lab_pair().await;
    let lab: LabProxy = client.root_as().await.unwrap();
    let squares = callback(|i: i64| i * i);
    assert_eq!(lab.sum(4, squares).await.unwrap(), 14);
    // A typed proxy of the lab's own counter, passed where a `Proxy` is taken.
    let counter = lab.counter().await.unwrap();
    assert_eq!(lab.bump(counter.clone()).await.unwrap(), 1);
    // A typed proxy of a local counter of the client, lent by reference.
    let mine = Proxy::local(Obj::new(Counter::default()))
        .typed::<CounterProxy>()
        .await
        .unwrap();
    assert_eq!(lab.bump(mine.clone()).await.unwrap(), 1);
    assert_eq!(mine.value().await.unwrap(), 1);
}

#[tokio::test]
async fn typed_and_dynamic_calls_mix_on_one_proxy() {
    let (_server, client) = lab_pair().await;
    let lab: LabProxy = client.root_as().await.unwrap();
    assert_eq!(lab.add(1, 2).await.unwrap(), 3);
    let dynamic: &Proxy = lab.dynamic();
    assert_eq!(
        dynamic.call_method("add", (3, 4)).await.unwrap(),
        Value::Int(7)
    );
    let counter = lab.counter().await.unwrap();
    dynamic
        .attr("counter")
        .call_method("inc", ())
        .await
        .unwrap();
    assert_eq!(counter.value().await.unwrap(), 1);
    // From dynamic back to typed, and a typed proxy as a plain value.
    let again: LabProxy = dynamic.typed().await.unwrap();
    assert_eq!(again, lab);
    assert_eq!(again.into_dynamic(), client.root());
    let c2: CounterProxy = client.root().attr("counter").typed().await.unwrap();
    assert_eq!(c2.inc().await.unwrap(), 2);
}

#[tokio::test]
async fn a_typed_proxy_of_the_wrong_type_is_refused_naming_both_types() {
    let (_server, client) = lab_pair().await;
    let e = client.root_as::<CounterProxy>().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Value);
    let message = e.to_string();
    assert!(
        message.contains("CounterProxy")
            && message.contains("`Counter`")
            && message.contains("`Lab`"),
        "{message}"
    );
    let counter = client.root().attr("counter").get().await.unwrap();
    let e = counter.into_proxy().unwrap().typed::<LabProxy>().await;
    assert!(e.unwrap_err().to_string().contains("`Counter`"));
    // Locally too.
    let e = Proxy::local(Obj::new(Lab::new()))
        .typed::<CounterProxy>()
        .await
        .unwrap_err();
    assert!(matches!(e, netref::Error::TypeMismatch { found, .. } if found == "Lab"));
}

#[tokio::test]
async fn typed_pipelining_is_one_round_trip() {
    let (_server, client) = lab_pair().await;
    let lab: LabProxy = client.root_as().await.unwrap();
    let before = client.stats().round_trips;
    let counter = lab.counter().pipeline().await.unwrap();
    assert_eq!(counter.inc().await.unwrap(), 1);
    assert_eq!(client.stats().round_trips - before, 1);
}

#[test]
fn typed_proxies_work_in_the_blocking_api() {
    let (_server, conn) =
        blocking::Connection::pair(Some(Obj::new(Lab::new()).erase()), None).unwrap();
    let lab: LabProxy<Blocking> = conn.root_as().unwrap();
    assert_eq!(lab.add(1, 2).unwrap(), 3);
    let counter: CounterProxy<Blocking> = lab.counter().unwrap();
    counter.set_step(3).unwrap();
    assert_eq!(counter.inc().unwrap(), 3);
    assert_eq!(lab.bump(counter.clone()).unwrap(), 6);
    let cb = blocking::callback(|i: i64| i + 1);
    assert_eq!(lab.sum(3, cb).unwrap(), 6);
    assert_eq!(
        lab.dynamic().call_method("add", (5, 5)).unwrap().as_i64(),
        Some(10)
    );
    let e = conn.root_as::<CounterProxy<Blocking>>().unwrap_err();
    assert!(e.to_string().contains("`Lab`"), "{e}");
}

// The trait form: an interface, its implementation elsewhere, the client from the trait.

/// A greeter service.
#[expose]
pub trait Greeter {
    /// Greets `name`.
    #[exposed]
    fn greet(&self, name: String) -> String;

    /// Greets slowly, after asking `nickname()` for a nickname.
    #[exposed]
    async fn greet_via(&self, nickname: Proxy) -> netref::Result<String>;

    /// How many greetings so far.
    #[exposed(property)]
    fn count(&self) -> u64;

    /// Not exposed: a helper the implementation may override.
    fn punctuation(&self) -> &'static str {
        "!"
    }
}

#[derive(Default)]
struct Polite {
    count: std::sync::atomic::AtomicU64,
}

impl Greeter for Polite {
    fn greet(&self, name: String) -> String {
        self.count.fetch_add(1, Ordering::SeqCst);
        format!("hello, {name}{}", self.punctuation())
    }

    async fn greet_via(&self, nickname: Proxy) -> netref::Result<String> {
        let name: String = nickname.call(()).decode().await?;
        Ok(self.greet(name))
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_trait_is_served_by_any_implementation_and_called_through_its_proxy() {
    let (_server, client) = common::pair(GreeterServer(Polite::default())).await;
    let greeter: GreeterProxy = client.root_as().await.unwrap();
    assert_eq!(greeter.greet("ada".into()).await.unwrap(), "hello, ada!");
    let nick = callback(|| "bob".to_string());
    assert_eq!(greeter.greet_via(nick).await.unwrap(), "hello, bob!");
    assert_eq!(greeter.count().await.unwrap(), 2);
    // The owner reports the trait's name; an impl-block client is refused.
    assert_eq!(client.root().type_name().await.unwrap(), "Greeter");
    assert!(client.root_as::<LabProxy>().await.is_err());
    // Only marked trait functions are members.
    let dir = client.root().dir().await.unwrap();
    assert_eq!(dir, ["greet", "greet_via", "count"]);
}

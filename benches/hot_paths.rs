//! Criterion benches of netref's in-process hot paths, through the public API:
//!
//! - `values/*`: converting call arguments and a reply to and from [`Value`] (the part of
//!   encoding and decoding a call that is public; the wire codec itself is internal);
//! - `gate/*`: a call and a property read on `Proxy::local`, through the exposure gate with
//!   no connection;
//! - `pair/*`: a call over the in-memory transport (`netref::pair`), on a current-thread and
//!   on a multi-thread runtime;
//! - `tables/*`: export/import table cycles over the pair: lending a fresh object and
//!   dropping its proxy (export, import, release), and sending a local callback to the peer
//!   and back (export, identity round trip, release).
//!
//! Run with `cargo bench --bench hot_paths` (add a filter such as `-- pair/` to pick some).

use std::sync::Arc;

use criterion::{criterion_main, BatchSize, Criterion};
use netref::{expose, Args, Connection, IntoArgs, Obj, Object, Proxy, Value};
use tokio::runtime::Runtime;

/// A small lent object.
struct Item {
    n: u64,
}

/// A lent object.
#[expose]
impl Item {
    /// Its number.
    #[exposed]
    fn id(&self) -> u64 {
        self.n
    }
}

/// The bench root.
struct Bench;

/// Members exercised by the benches.
#[expose]
impl Bench {
    /// Returns its argument.
    #[exposed]
    fn echo(&self, x: Value) -> Value {
        x
    }

    /// Adds two numbers (typed parameters: decoded with serde).
    #[exposed]
    fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    /// A property.
    #[exposed(property)]
    fn value(&self) -> i64 {
        1
    }

    /// Lends a fresh object.
    #[exposed]
    fn lend(&self) -> Obj<Item> {
        Obj::new(Item { n: 7 })
    }

    /// Returns the reference it was given (it goes home as the original object).
    #[exposed]
    fn give_back(&self, obj: Proxy) -> Proxy {
        obj
    }
}

fn bench_root() -> Arc<dyn Object> {
    Obj::new(Bench).erase()
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a multi-thread runtime")
}

/// A connected in-memory pair; the second end's root proxy reaches the bench root.
fn pair(rt: &Runtime) -> (Connection, Connection) {
    rt.block_on(netref::pair(Some(bench_root()), None))
        .expect("an in-memory pair")
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Job {
    id: u32,
    name: String,
    tags: Vec<String>,
}

fn values(c: &mut Criterion) {
    let mut g = c.benchmark_group("values");
    g.bench_function("args (1,) into Args", |b| {
        b.iter(|| std::hint::black_box((1i64,)).into_args().unwrap())
    });
    g.bench_function("args take i64 x2", |b| {
        b.iter_batched(
            || Args::new().arg(1i64).arg(2i64),
            |mut args| {
                let a: i64 = args.take(0, "a").unwrap();
                let b: i64 = args.take(1, "b").unwrap();
                args.finish().unwrap();
                a + b
            },
            BatchSize::SmallInput,
        )
    });
    let job = Job {
        id: 7,
        name: "scan".into(),
        tags: vec!["fast".into(), "local".into()],
    };
    g.bench_function("struct to_value", |b| {
        b.iter(|| netref::to_value(std::hint::black_box(&job)).unwrap())
    });
    let v = netref::to_value(&job).unwrap();
    g.bench_function("struct from_value", |b| {
        b.iter_batched(
            || v.clone(),
            |v| netref::from_value::<Job>(v).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("reply i64 from_value", |b| {
        b.iter(|| netref::from_value::<i64>(std::hint::black_box(Value::Int(3))).unwrap())
    });
    g.finish();
}

fn gate(c: &mut Criterion) {
    let rt = current_thread();
    let local = Proxy::local(bench_root());
    let mut g = c.benchmark_group("gate");
    g.bench_function("local call echo(1)", |b| {
        b.to_async(&rt)
            .iter(|| async { local.call_method("echo", (1,)).await.unwrap() })
    });
    g.bench_function("local call add(1, 2)", |b| {
        b.to_async(&rt)
            .iter(|| async { local.call_method("add", (1, 2)).await.unwrap() })
    });
    g.bench_function("local get value", |b| {
        b.to_async(&rt)
            .iter(|| async { local.attr("value").get().await.unwrap() })
    });
    g.bench_function("local refused (no such member)", |b| {
        b.to_async(&rt).iter(|| async {
            local
                .call_method("missing", ())
                .await
                .expect_err("not exposed")
        })
    });
    g.finish();
}

fn pair_calls(c: &mut Criterion) {
    let mut g = c.benchmark_group("pair");
    for (flavour, rt) in [
        ("current_thread", current_thread()),
        ("multi_thread", multi_thread()),
    ] {
        let (_server, client) = pair(&rt);
        let root = client.root();
        let echo = root.attr("echo");
        g.bench_function(format!("{flavour}/echo(1) fresh path"), |b| {
            b.to_async(&rt)
                .iter(|| async { root.call_method("echo", (1,)).await.unwrap() })
        });
        g.bench_function(format!("{flavour}/echo(1) cached handle"), |b| {
            b.to_async(&rt)
                .iter(|| async { echo.call((1,)).await.unwrap() })
        });
        g.bench_function(format!("{flavour}/get value"), |b| {
            b.to_async(&rt)
                .iter(|| async { root.attr("value").get().await.unwrap() })
        });
        let kib = Value::Bytes(vec![0x5a; 1024]);
        g.bench_function(format!("{flavour}/echo 1 KiB bytes"), |b| {
            b.to_async(&rt)
                .iter(|| async { root.call_method("echo", vec![kib.clone()]).await.unwrap() })
        });
    }
    g.finish();
}

fn tables(c: &mut Criterion) {
    let rt = current_thread();
    let (server, client) = pair(&rt);
    let root = client.root();
    let mut g = c.benchmark_group("tables");
    g.bench_function("lend + drop (export, import, release)", |b| {
        b.to_async(&rt).iter(|| async {
            let item = root.call_method("lend", ()).await.unwrap();
            drop(item);
        })
    });
    let cb = netref::callback(|x: i64| x);
    g.bench_function("pass a local object and get it back", |b| {
        b.to_async(&rt).iter(|| async {
            let back = root.call_method("give_back", (cb.clone(),)).await.unwrap();
            assert!(back.as_proxy().is_some_and(Proxy::is_local));
        })
    });
    g.finish();
    // Every release has been applied: nothing stays lent.
    rt.block_on(async {
        for _ in 0..1000 {
            if server.stats().live_exports == 0 && client.stats().live_exports == 0 {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!(
            "objects still lent after the benches: server {}, client {}",
            server.stats().live_exports,
            client.stats().live_exports
        );
    });
}

// `criterion_group!` makes an undocumented `pub fn`.
#[allow(missing_docs, unreachable_pub)]
mod group {
    use super::{gate, pair_calls, tables, values};
    criterion::criterion_group! {
        name = benches;
        // Short enough for a 2-core machine: about a minute and a half in all.
        config = criterion::Criterion::default()
            .warm_up_time(std::time::Duration::from_secs(1))
            .measurement_time(std::time::Duration::from_secs(3));
        targets = values, gate, pair_calls, tables
    }
}
criterion_main!(group::benches);

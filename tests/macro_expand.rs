//! What `#[expose]` generates, driven through local proxies: dispatch, argument decoding,
//! replies, errors, properties and setters, and the static type description.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use netref::{expose, Args, ErrorKind, MemberKind, Obj, Object, Proxy, Value};

#[derive(Debug, thiserror::Error)]
#[error("too big: {0}")]
struct TooBig(i64);

#[derive(Default)]
struct Thing {
    step: AtomicI64,
    value: AtomicI64,
    limit: AtomicI64,
    names: Mutex<Vec<String>>,
}

/// A thing for tests.
///
///  It has two paragraphs.
#[expose]
impl Thing {
    /// Adds two numbers.
    #[exposed]
    fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    /// Remembers a name; returns nothing.
    #[exposed]
    fn remember(&self, name: String) {
        self.names.lock().unwrap().push(name);
    }

    /// Every name remembered so far.
    #[exposed]
    fn names(&self) -> Vec<String> {
        self.names.lock().unwrap().clone()
    }

    /// Doubles `x` after yielding once.
    #[exposed]
    async fn double(&self, x: i64) -> i64 {
        tokio::task::yield_now().await;
        x * 2
    }

    /// Checks `x` against the limit.
    #[exposed]
    fn check(&self, x: i64) -> Result<i64, TooBig> {
        if x > self.limit.load(Ordering::SeqCst) {
            Err(TooBig(x))
        } else {
            Ok(x)
        }
    }

    /// Like `check`, but async and with netref's own error.
    #[exposed]
    async fn check_async(&self, x: i64) -> netref::Result<()> {
        if x < 0 {
            return Err(netref::Error::remote(ErrorKind::BadArguments, "negative"));
        }
        Ok(())
    }

    /// An optional argument.
    #[exposed]
    fn greet(&self, name: Option<String>) -> String {
        format!("hello, {}", name.as_deref().unwrap_or("world"))
    }

    /// Renamed on the wire.
    #[exposed(name = "type")]
    fn kind(&self) -> &'static str {
        "thing"
    }

    /// Raw identifiers lose their `r#`.
    #[exposed]
    fn r#match(&self, r#in: String) -> String {
        r#in
    }

    /// A name shared with the `Object` trait: the inherent method is the one called.
    #[exposed]
    fn invoke(&self) -> &'static str {
        "inherent"
    }

    /// The increment.
    #[exposed(property)]
    fn step(&self) -> i64 {
        self.step.load(Ordering::SeqCst)
    }

    /// Sets the increment.
    #[exposed(setter)]
    fn set_step(&self, step: i64) {
        self.step.store(step, Ordering::SeqCst);
    }

    /// The current value.
    #[exposed(property)]
    fn value(&self) -> i64 {
        self.value.load(Ordering::SeqCst)
    }

    /// The upper limit of `check`, read asynchronously.
    #[exposed(property, name = "max")]
    async fn limit(&self) -> i64 {
        self.limit.load(Ordering::SeqCst)
    }

    #[exposed(setter = "max")]
    fn change_limit(&self, limit: i64) -> Result<(), TooBig> {
        if limit > 1000 {
            return Err(TooBig(limit));
        }
        self.limit.store(limit, Ordering::SeqCst);
        Ok(())
    }

    /// Not exposed.
    fn hidden(&self) -> i64 {
        42
    }

    /// Not exposed either, and it needs no `&self`.
    #[allow(dead_code)]
    fn new_default() -> Self {
        Thing::default()
    }
}

impl Thing {
    fn peek(&self) -> i64 {
        self.hidden()
    }
}

fn thing() -> Proxy {
    Proxy::local(Obj::new(Thing::default()).erase())
}

#[tokio::test]
async fn methods_decode_arguments_and_encode_results() {
    let p = thing();
    assert_eq!(p.call_method("add", (1, 2)).await.unwrap(), Value::Int(3));
    assert_eq!(
        p.call_method("double", (21,)).await.unwrap(),
        Value::Int(42)
    );
    assert_eq!(
        p.call_method("remember", ("ada",)).await.unwrap(),
        Value::Nil
    );
    p.call_method("remember", ("bob",)).await.unwrap();
    let names: Vec<String> = p.call_method("names", ()).decode().await.unwrap();
    assert_eq!(names, ["ada", "bob"]);
    assert_eq!(
        p.call_method("type", ()).await.unwrap().as_str(),
        Some("thing")
    );
    assert_eq!(
        p.call_method("match", ("x",)).await.unwrap().as_str(),
        Some("x")
    );
    assert_eq!(
        p.call_method("invoke", ()).await.unwrap().as_str(),
        Some("inherent")
    );
}

#[tokio::test]
async fn named_and_optional_arguments() {
    let p = thing();
    let v = p
        .call_method("add", Args::new().named("b", 2).named("a", 40))
        .await
        .unwrap();
    assert_eq!(v, Value::Int(42));
    let v = p
        .call_method("match", Args::new().named("in", "raw"))
        .await
        .unwrap();
    assert_eq!(v.as_str(), Some("raw"));
    assert_eq!(
        p.call_method("greet", ()).await.unwrap().as_str(),
        Some("hello, world")
    );
    assert_eq!(
        p.call_method("greet", ("ada",)).await.unwrap().as_str(),
        Some("hello, ada")
    );
}

#[tokio::test]
async fn bad_arguments_are_refused() {
    let p = thing();
    let e = p.call_method("add", (1,)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArguments, "{e}");
    assert!(e.to_string().contains("missing argument `b`"), "{e}");
    let e = p.call_method("add", (1, "two")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArguments, "{e}");
    assert!(e.to_string().contains("argument `b`"), "{e}");
    let e = p.call_method("add", (1, 2, 3)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArguments, "{e}");
    let e = p
        .call_method("add", Args::new().arg(1).arg(2).named("c", 3))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArguments, "{e}");
    assert!(e.to_string().contains("unexpected argument `c`"), "{e}");
    let e = p.call_method("names", (1,)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArguments, "{e}");
}

#[tokio::test]
async fn handler_errors_become_failed_remote_errors() {
    let p = thing();
    let e = p.call_method("check", (5,)).await.unwrap_err();
    let r = e.as_remote().expect("a remote error");
    assert_eq!(r.kind, ErrorKind::Failed);
    assert_eq!(r.message, "too big: 5");
    assert!(r.type_name.contains("TooBig"), "{}", r.type_name);
    assert_eq!(p.call_method("check", (0,)).await.unwrap(), Value::Int(0));

    // A `netref::Error` keeps its kind.
    assert_eq!(
        p.call_method("check_async", (1,)).await.unwrap(),
        Value::Nil
    );
    let e = p.call_method("check_async", (-1,)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArguments, "{e}");
    assert!(e.to_string().contains("negative"), "{e}");
}

#[tokio::test]
async fn properties_get_and_set() {
    let p = thing();
    assert_eq!(p.attr("step").get_as::<i64>().await.unwrap(), 0);
    p.attr("step").set(5).await.unwrap();
    assert_eq!(p.attr("step").get().await.unwrap(), Value::Int(5));

    // A renamed property with an async getter and a fallible, explicitly named setter.
    p.attr("max").set(10).await.unwrap();
    assert_eq!(p.attr("max").get_as::<i64>().await.unwrap(), 10);
    assert_eq!(p.call_method("check", (10,)).await.unwrap(), Value::Int(10));
    let e = p.attr("max").set(5000).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    assert!(e.to_string().contains("too big: 5000"), "{e}");
    assert_eq!(p.attr("max").get_as::<i64>().await.unwrap(), 10);

    // A value of the wrong type.
    let e = p.attr("step").set("five").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArguments, "{e}");
    assert!(e.to_string().contains("property `step`"), "{e}");
    assert_eq!(p.attr("step").get_as::<i64>().await.unwrap(), 5);
}

#[tokio::test]
async fn wrong_operations_are_refused() {
    let p = thing();
    // Setting a read-only property.
    let e = p.attr("value").set(1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongOperation, "{e}");
    // Calling a property.
    let e = p.call_method("value", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongOperation, "{e}");
    // Reading or setting a method.
    let e = p.attr("add").get().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongOperation, "{e}");
    let e = p.attr("add").set(1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongOperation, "{e}");
}

#[tokio::test]
async fn unexposed_members_are_unreachable() {
    let p = thing();
    for name in [
        "hidden",
        "new_default",
        "peek",
        "set_step",
        "change_limit",
        "limit",
        "kind",
        "r#match",
        "step_",
    ] {
        let e = p.call_method(name, ()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSuchMember, "{name}: {e}");
        let e = p.attr(name).get().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSuchMember, "{name}: {e}");
        let e = p.attr(name).set(1).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSuchMember, "{name}: {e}");
    }
    // The hidden method still works from Rust.
    let t = Obj::new(Thing::default());
    assert_eq!(t.peek(), 42);
}

#[tokio::test]
async fn dir_lists_exposed_members_in_source_order() {
    let p = thing();
    assert_eq!(
        p.dir().await.unwrap(),
        [
            "add",
            "remember",
            "names",
            "double",
            "check",
            "check_async",
            "greet",
            "type",
            "match",
            "invoke",
            "step",
            "value",
            "max"
        ]
    );
}

#[tokio::test]
async fn help_shows_signatures_and_docs() {
    let p = thing();
    let help = p.help().await.unwrap();
    assert!(help.starts_with("Thing - A thing for tests."), "{help}");
    for needle in [
        "add(a: i64, b: i64) -> i64",
        "Adds two numbers.",
        "remember(name: String)\n",
        "names() -> Vec<String>",
        "double(x: i64) -> i64",
        "check(x: i64) -> Result<i64, TooBig>",
        "check_async(x: i64) -> netref::Result<()>",
        "greet(name: Option<String>) -> String",
        "type() -> &'static str",
        "match(in: String) -> String",
        "step: i64  (property)",
        "value: i64  (read-only property)",
        "max: i64  (property)",
        "The upper limit of `check`",
    ] {
        assert!(help.contains(needle), "{needle:?} not in:\n{help}");
    }
    for hidden in ["hidden", "Not exposed", "set_step", "Sets the increment"] {
        assert!(!help.contains(hidden), "{hidden:?} in:\n{help}");
    }
    assert_eq!(
        p.attr("add").help().await.unwrap(),
        "add(a: i64, b: i64) -> i64\n    Adds two numbers."
    );
}

#[test]
fn type_info_describes_the_exposed_surface() {
    let obj = Obj::new(Thing::default());
    let info = obj.type_info();
    assert_eq!(info.name, "Thing");
    assert_eq!(info.doc, "A thing for tests.\n\n It has two paragraphs.");
    assert_eq!(info.call, None);
    assert!(std::ptr::eq(info, Obj::new(Thing::default()).type_info()));

    let m = |name: &str| &info.members[info.find(name).unwrap()];
    assert_eq!(info.members.len(), 13);

    let add = m("add");
    assert_eq!(add.kind, MemberKind::Method);
    assert_eq!(add.signature, "add(a: i64, b: i64) -> i64");
    assert_eq!(add.doc, "Adds two numbers.");

    assert_eq!(m("remember").signature, "remember(name: String)");
    assert_eq!(m("double").signature, "double(x: i64) -> i64");
    assert_eq!(m("type").signature, "type() -> &'static str");
    assert_eq!(m("type").doc, "Renamed on the wire.");
    assert_eq!(m("match").signature, "match(in: String) -> String");

    let step = m("step");
    assert_eq!(step.kind, MemberKind::Property { settable: true });
    assert_eq!(step.signature, "step: i64");
    assert_eq!(step.doc, "The increment.");

    let value = m("value");
    assert_eq!(value.kind, MemberKind::Property { settable: false });
    assert_eq!(value.signature, "value: i64");

    let max = m("max");
    assert_eq!(max.kind, MemberKind::Property { settable: true });
    assert_eq!(max.signature, "max: i64");
    assert_eq!(max.doc, "The upper limit of `check`, read asynchronously.");

    assert_eq!(info.find("hidden"), None);
    assert_eq!(info.find("set_step"), None);
    assert_eq!(info.find("limit"), None);
}

#[tokio::test]
async fn invoke_refuses_operations_that_do_not_fit() {
    // The gate never sends these; the generated code reports them instead of panicking.
    let obj = Obj::new(Thing::default());
    let info = obj.type_info();
    let add = info.find("add").unwrap();
    let value = info.find("value").unwrap();
    let arc = obj.arc().clone();
    for (member, inv) in [
        (add, netref::Invocation::Get),
        (add, netref::Invocation::Set(Value::Int(1))),
        (value, netref::Invocation::Set(Value::Int(1))),
        (value, netref::Invocation::Call(Args::new())),
        (info.members.len(), netref::Invocation::Get),
    ] {
        let e = Object::invoke(arc.clone(), member, inv).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WrongOperation, "{e}");
        assert!(e.to_string().contains("Thing"), "{e}");
    }
}

#[test]
fn objects_downcast_back_to_their_type() {
    let obj = Obj::new(Thing::default());
    let erased = obj.erase();
    let back = Obj::<Thing>::downcast(erased).expect("a Thing");
    assert!(Obj::ptr_eq(&obj, &back));
}

/// A unit struct with an empty block: no members at all.
struct Empty;

#[expose]
impl Empty {}

#[tokio::test]
async fn an_empty_block_exposes_nothing() {
    let p = Proxy::local(Obj::new(Empty).erase());
    assert!(p.dir().await.unwrap().is_empty());
    assert_eq!(p.help().await.unwrap(), "Empty");
    let e = p.call_method("anything", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSuchMember);
    assert_eq!(Obj::new(Empty).type_info().doc, "");
}

mod nested {
    /// Exposed through a path: `impl super::Outer`.
    pub(crate) struct Outer;
}

#[expose]
impl nested::Outer {
    #[exposed]
    fn ping(&self) -> &'static str {
        "pong"
    }
}

#[tokio::test]
async fn a_type_named_by_a_path_uses_its_last_segment() {
    let p = Proxy::local(Obj::new(nested::Outer).erase());
    assert_eq!(
        p.call_method("ping", ()).await.unwrap().as_str(),
        Some("pong")
    );
    assert_eq!(Obj::new(nested::Outer).type_info().name, "Outer");
    assert_eq!(Obj::new(nested::Outer).type_info().members[0].doc, "");
}

#[derive(Default)]
struct Conditional {
    len: AtomicI64,
}

#[expose]
impl Conditional {
    #[exposed]
    fn first(&self) -> i64 {
        1
    }

    #[cfg(not(test))]
    #[exposed]
    fn gone(&self) -> i64 {
        0
    }

    #[cfg(test)]
    #[exposed]
    fn kept(&self) -> i64 {
        2
    }

    #[cfg(not(test))]
    #[exposed(name = "platform")]
    fn platform_a(&self) -> &'static str {
        "a"
    }

    #[cfg(test)]
    #[exposed(name = "platform")]
    fn platform_b(&self) -> &'static str {
        "b"
    }

    /// Read-only: its setter is compiled out.
    #[exposed(property)]
    fn level(&self) -> i64 {
        7
    }

    #[cfg(not(test))]
    #[exposed(setter)]
    fn set_level(&self, _level: i64) {}

    /// Renamed; the setter finds it by the getter's Rust name.
    #[exposed(property, name = "size")]
    fn len(&self) -> i64 {
        self.len.load(Ordering::SeqCst)
    }

    #[exposed(setter)]
    fn set_len(&self, len: i64) {
        self.len.store(len, Ordering::SeqCst);
    }

    #[exposed]
    fn last(&self) -> i64 {
        3
    }
}

#[tokio::test]
async fn cfg_on_members_is_honoured() {
    let p = Proxy::local(Obj::new(Conditional::default()).erase());
    assert_eq!(
        p.dir().await.unwrap(),
        ["first", "kept", "platform", "level", "size", "last"]
    );
    assert_eq!(p.call_method("first", ()).await.unwrap(), Value::Int(1));
    assert_eq!(p.call_method("kept", ()).await.unwrap(), Value::Int(2));
    assert_eq!(
        p.call_method("platform", ()).await.unwrap().as_str(),
        Some("b")
    );
    assert_eq!(p.call_method("last", ()).await.unwrap(), Value::Int(3));
    let e = p.call_method("gone", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSuchMember, "{e}");

    assert_eq!(p.attr("level").get().await.unwrap(), Value::Int(7));
    let e = p.attr("level").set(1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongOperation, "{e}");

    p.attr("size").set(12).await.unwrap();
    assert_eq!(p.attr("size").get().await.unwrap(), Value::Int(12));

    let info = Obj::new(Conditional::default()).type_info();
    assert_eq!(
        info.members[info.find("level").unwrap()].kind,
        MemberKind::Property { settable: false }
    );
    assert_eq!(
        info.members[info.find("size").unwrap()].kind,
        MemberKind::Property { settable: true }
    );
    assert_eq!(
        info.members[info.find("size").unwrap()].signature,
        "size: i64"
    );
}

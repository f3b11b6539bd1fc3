//! Argument decoding: a missing argument is an error naming it for every parameter type but
//! `Option`, an explicit nil is a value, and a misspelt keyword is named as unexpected.
//! Run against the real lab over a connection, and against a local object.

use netref::lab::{Lab, LabOptions};
use netref::{expose, Args, Connection, ErrorKind, Obj, Proxy, Value};

/// The netref lab lent over an in-memory pair; the returned connection is the client's.
async fn lab() -> (Connection, Connection) {
    let root = Lab::new(LabOptions::default()).unwrap().into_root();
    netref::pair(None, Some(root)).await.unwrap()
}

fn assert_bad(e: netref::Error, needle: &str) {
    assert_eq!(e.kind(), ErrorKind::BadArguments, "{e}");
    assert!(e.to_string().contains(needle), "{e:#} lacks {needle:?}");
}

#[tokio::test]
async fn a_missing_value_argument_is_an_error_naming_it() {
    let (client, _server) = lab().await;
    let root = client.root();
    // `add(a: Value, b: Value)`: before, `b` ran as nil ("cannot add int and nil").
    let e = root.call_method("add", (1,)).await.unwrap_err();
    assert_bad(e, "missing argument `b`");
    // `echo(x: Value)`: before, it answered nil.
    let e = root.call_method("echo", ()).await.unwrap_err();
    assert_bad(e, "missing argument `x`");
    // `same(a: Value, b: Value) -> bool`: before, it answered false.
    let e = root.call_method("same", (1,)).await.unwrap_err();
    assert_bad(e, "missing argument `b`");
    // An explicit nil is a value, not a missing argument.
    let v = root.call_method("echo", (Value::Nil,)).await.unwrap();
    assert_eq!(v, Value::Nil);
    let v = root.call_method("same", (Value::Nil, ())).await.unwrap();
    assert_eq!(v, Value::Bool(true));
    // The connection is still fine.
    let v = root.call_method("add", (1, 2)).await.unwrap();
    assert_eq!(v, Value::Int(3));
}

#[tokio::test]
async fn a_misspelt_keyword_is_named_as_unexpected() {
    let (client, _server) = lab().await;
    let root = client.root();
    // Before, this reported only the missing `seconds`.
    let e = root
        .call_method("sleep", Args::new().named("secs", 1))
        .await
        .unwrap_err();
    assert_bad(e, "unexpected argument `secs`");
    let e = root
        .call_method("add", Args::new().arg(1).named("bb", 2))
        .await
        .unwrap_err();
    assert_bad(e, "unexpected argument `bb` (parameters: `a`, `b`)");
    // A right keyword still works, and a keyword for a later parameter is not "unexpected".
    let v = root
        .call_method("add", Args::new().named("b", 2).named("a", 1))
        .await
        .unwrap();
    assert_eq!(v, Value::Int(3));
    let e = root
        .call_method("add", Args::new().named("b", 2))
        .await
        .unwrap_err();
    assert_bad(e, "missing argument `a`");
}

/// One parameter of each sort of type.
struct Kinds;

#[derive(serde::Deserialize)]
struct Point {
    x: i64,
    #[serde(default)]
    y: i64,
}

#[expose]
impl Kinds {
    /// An integer.
    #[exposed]
    fn int(&self, n: i64) -> i64 {
        n
    }
    /// A string.
    #[exposed]
    fn text(&self, s: String) -> String {
        s
    }
    /// Unit.
    #[exposed]
    fn unit(&self, u: ()) {
        u
    }
    /// A list.
    #[exposed]
    fn list(&self, items: Vec<i64>) -> usize {
        items.len()
    }
    /// A struct whose fields all have defaults but one.
    #[exposed]
    fn point(&self, p: Point) -> i64 {
        p.x + p.y
    }
    /// A dynamic value.
    #[exposed]
    fn value(&self, v: Value) -> Value {
        v
    }
    /// A reference.
    #[exposed]
    fn proxy(&self, p: Proxy) -> bool {
        p.is_local()
    }
    /// An optional parameter: may be left out.
    #[exposed]
    fn maybe(&self, n: Option<i64>) -> i64 {
        n.unwrap_or(-1)
    }
    /// A required parameter after an optional one.
    #[exposed]
    fn both(&self, a: Option<i64>, b: i64) -> i64 {
        a.unwrap_or(0) + b
    }
}

#[tokio::test]
async fn every_parameter_type_but_option_is_required() {
    let (a, b) = netref::pair(None, Some(Obj::new(Kinds).erase()))
        .await
        .unwrap();
    let remote = a.root();
    let local = Proxy::local(Obj::new(Kinds).erase());
    for root in [remote, local] {
        for (member, param) in [
            ("int", "n"),
            ("text", "s"),
            ("unit", "u"),
            ("list", "items"),
            ("point", "p"),
            ("value", "v"),
            ("proxy", "p"),
        ] {
            let e = root.call_method(member, ()).await.unwrap_err();
            assert_bad(e, &format!("missing argument `{param}`"));
        }
        let v = root.call_method("maybe", ()).await.unwrap();
        assert_eq!(v, Value::Int(-1));
        let v = root.call_method("maybe", (Value::Nil,)).await.unwrap();
        assert_eq!(v, Value::Int(-1));
        let v = root
            .call_method("both", Args::new().named("b", 2))
            .await
            .unwrap();
        assert_eq!(v, Value::Int(2));
        let e = root.call_method("both", (1,)).await.unwrap_err();
        assert_bad(e, "missing argument `b`");
        // Given values still decode as before.
        let v = root.call_method("unit", ((),)).await.unwrap();
        assert_eq!(v, Value::Nil);
        let v = root.call_method("int", (4,)).await.unwrap();
        assert_eq!(v, Value::Int(4));
    }
    drop(b);
}

#[tokio::test]
async fn a_callback_called_with_too_few_arguments_fails() {
    let cb = netref::callback(|x: Value, y: Value| format!("{x:?}{y:?}"));
    let e = cb.call((1,)).await.unwrap_err();
    assert_bad(e, "missing argument `arg1`");
    let v = cb.call((1, Value::Nil)).await.unwrap();
    assert!(v.as_str().is_some());
}

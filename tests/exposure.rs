//! Exposure: exposed members are reachable, everything else is not, and the connection
//! survives refusals.
mod common;

use common::*;
use netref::{ErrorKind, Value};

#[tokio::test]
async fn exposed_method_returns_and_unexposed_members_are_refused() {
    let (_server, conn, _) = lab_client().await;
    let root = conn.root();

    let sum = root.call_method("add", (2, 40)).await.unwrap();
    assert_eq!(sum, Value::Int(42));

    // An unmarked method: refused, and indistinguishable from a missing one.
    let e = root.call_method("hidden", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSuchMember, "{e}");
    assert!(root.call_method("add", (1, 1)).await.is_ok());

    let e = root.call_method("no_such_thing", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSuchMember, "{e}");
    assert!(root.call_method("add", (1, 1)).await.is_ok());

    // Reading an unexposed "property" (a field, or the hidden method) is refused too.
    for name in ["drops", "hidden", "value_raw"] {
        let e = root.attr(name).get().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSuchMember, "{name}: {e}");
    }
    // Private Rust names via paths: refused at the first segment.
    let e = root.path_to(["drops", "0"]).get().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSuchMember);

    // And the connection goes on.
    assert_eq!(
        root.call_method("add", (1, 2)).await.unwrap(),
        Value::Int(3)
    );
}

#[tokio::test]
async fn settable_property_changes_and_read_only_is_refused() {
    let (_server, conn, _) = lab_client().await;
    let root = conn.root();
    root.attr("step").set(5).await.unwrap();
    assert_eq!(root.attr("step").get_as::<i64>().await.unwrap(), 5);
    assert_eq!(root.call_method("inc", ()).await.unwrap(), Value::Int(5));

    let e = root.attr("value").set(100).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongOperation, "{e}");
    assert!(e.to_string().contains("read-only"), "{e}");
    assert_eq!(root.attr("value").get_as::<i64>().await.unwrap(), 5);

    // Setting a method, or a wrongly typed value, is refused as well.
    let e = root.attr("add").set(1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongOperation);
    let e = root.attr("step").set("five").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArguments, "{e}");
}

#[tokio::test]
async fn dir_and_help_list_exactly_the_exposed_members() {
    let (_server, conn, _) = lab_client().await;
    let root = conn.root();
    let names = root.dir().await.unwrap();
    assert_eq!(
        names,
        [
            "add",
            "echo",
            "inc",
            "value",
            "step",
            "fail",
            "boom",
            "sum_callbacks",
            "bounce",
            "fill",
            "count_lines",
            "lend",
            "tree",
            "ask",
            "sleep"
        ]
    );
    assert!(!names.iter().any(|n| n == "hidden" || n == "set_step"));

    let help = root.help().await.unwrap();
    assert!(help.starts_with("Lab - A lab for tests."), "{help}");
    assert!(help.contains("add(a: i64, b: i64) -> i64"), "{help}");
    assert!(help.contains("Adds two numbers."), "{help}");
    assert!(help.contains("value: i64  (read-only property)"), "{help}");
    assert!(help.contains("step: i64  (property)"), "{help}");
    assert!(!help.contains("hidden"), "{help}");
    assert!(!help.contains("Not exposed"), "{help}");

    let one = root.attr("add").help().await.unwrap();
    assert_eq!(one, "add(a: i64, b: i64) -> i64\n    Adds two numbers.");

    // dir through a path reaches the nested object.
    assert_eq!(
        root.attr("tree").dir().await.unwrap(),
        ["child", "path", "next"]
    );
    let e = root.attr("hidden").help().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSuchMember);
}

#[tokio::test]
async fn bad_arguments_are_reported() {
    let (_server, conn, _) = lab_client().await;
    let root = conn.root();
    let e = root.call_method("add", (1,)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArguments);
    assert!(e.to_string().contains("missing argument `b`"), "{e}");
    let e = root.call_method("add", (1, "x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArguments);
    let e = root.call_method("add", (1, 2, 3)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArguments);
    // Named arguments work.
    let v = root
        .call_method("add", netref::Args::new().named("b", 2).named("a", 1))
        .await
        .unwrap();
    assert_eq!(v, Value::Int(3));
}

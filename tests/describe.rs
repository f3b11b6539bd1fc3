//! Describing an object as data (`Proxy::describe`) and reading a member whatever its kind
//! (`Proxy::get_or_bind`): the engine operations RPyC's `INSPECT` and `GETATTR` map onto,
//! over the native wire and locally, through the same gate.

use netref::{expose, DescribedKind, ErrorKind, Obj, Proxy, Value};

struct Gauge {
    level: parking_lot::Mutex<i64>,
}

/// A gauge.
#[expose]
impl Gauge {
    /// Reads the level.
    #[exposed(property)]
    fn level(&self) -> i64 {
        *self.level.lock()
    }

    /// Sets the level.
    #[exposed(setter)]
    fn set_level(&self, v: i64) {
        *self.level.lock() = v;
    }

    /// Adds to the level.
    #[exposed]
    fn bump(&self, by: i64) -> i64 {
        let mut l = self.level.lock();
        *l += by;
        *l
    }

    #[allow(dead_code)]
    fn hidden(&self) -> i64 {
        7
    }
}

struct Panel {
    gauge: Obj<Gauge>,
}

/// A panel holding a gauge.
#[expose]
impl Panel {
    /// The gauge.
    #[exposed(property)]
    fn gauge(&self) -> Obj<Gauge> {
        self.gauge.clone()
    }

    /// A name.
    #[exposed(property)]
    fn name(&self) -> String {
        "panel".into()
    }
}

fn panel() -> Obj<Panel> {
    Obj::new(Panel {
        gauge: Obj::new(Gauge {
            level: parking_lot::Mutex::new(1),
        }),
    })
}

async fn remote_root() -> (netref::Connection, netref::Connection, Proxy) {
    let (server, client) = netref::pair(Some(panel().erase()), None).await.unwrap();
    let root = client.root();
    (server, client, root)
}

async fn check_describe(root: &Proxy) {
    let d = root.describe().await.unwrap();
    assert_eq!(d.type_name, "Panel");
    assert_eq!(d.doc, "A panel holding a gauge.");
    assert!(!d.callable);
    let names: Vec<_> = d
        .members
        .iter()
        .map(|m| (m.name.as_str(), m.kind))
        .collect();
    assert_eq!(
        names,
        [
            ("gauge", DescribedKind::Property),
            ("name", DescribedKind::Property)
        ]
    );
    // Through a property holding an object: that object's description.
    let g = root.attr("gauge").describe().await.unwrap();
    assert_eq!(g.type_name, "Gauge");
    let kinds: Vec<_> = g
        .members
        .iter()
        .map(|m| (m.name.as_str(), m.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("level", DescribedKind::Settable),
            ("bump", DescribedKind::Method)
        ]
    );
    assert_eq!(g.members[1].doc, "Adds to the level.");
    // A method: described as one.
    let m = root.path_to(["gauge", "bump"]).describe().await.unwrap();
    assert_eq!(m.type_name, "method");
    assert_eq!(m.doc, "Adds to the level.");
    assert!(m.callable && m.members.is_empty());
    // Hidden and unknown members are refused alike; a plain value has no description.
    for name in ["hidden", "nothing"] {
        let e = root.path_to(["gauge", name]).describe().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSuchMember, "{name}: {e}");
    }
    let e = root.attr("name").describe().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongOperation, "{e}");
}

async fn check_bind(root: &Proxy) {
    let gauge = root.attr("gauge");
    // A property reads as with `get`.
    assert_eq!(
        gauge.attr("level").get_or_bind().await.unwrap(),
        Value::Int(1)
    );
    // A method, which `get` refuses, is bound: calling the proxy calls the method.
    let e = gauge.attr("bump").get().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongOperation);
    let bound = gauge
        .attr("bump")
        .get_or_bind()
        .await
        .unwrap()
        .into_proxy()
        .unwrap();
    assert_eq!(bound.call((4,)).await.unwrap(), Value::Int(5));
    assert_eq!(bound.call((1,)).await.unwrap(), Value::Int(6));
    assert_eq!(gauge.attr("level").get().await.unwrap(), Value::Int(6));
    // Hidden or unknown: refused alike, nothing bound.
    for name in ["hidden", "nothing"] {
        let e = gauge.attr(name).get_or_bind().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSuchMember, "{name}: {e}");
    }
    // The object itself: itself.
    assert!(gauge.get_or_bind().await.unwrap().into_proxy().is_ok());
}

#[tokio::test]
async fn describe_over_the_native_wire() {
    let (_server, _client, root) = remote_root().await;
    check_describe(&root).await;
}

#[tokio::test]
async fn describe_locally() {
    check_describe(&Proxy::local(panel())).await;
}

#[tokio::test]
async fn get_or_bind_over_the_native_wire() {
    let (server, client, root) = remote_root().await;
    check_bind(&root).await;
    // The bound method was lent for as long as a proxy of it lived.
    client.flush_releases().await.unwrap();
    assert_eq!(server.tables().exports.len(), 0, "{:?}", server.tables());
}

#[tokio::test]
async fn get_or_bind_locally() {
    check_bind(&Proxy::local(panel())).await;
}

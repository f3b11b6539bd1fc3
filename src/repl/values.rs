//! netref values in the REPL's language: conversions between [`Value`] and Rhai's
//! [`Dynamic`], and closures lent as callbacks.

use std::sync::Weak;

use rhai::{Array, Blob, Dynamic, FnPtr, Map, INT};

use super::Inner;
use crate::object::Args;
use crate::proxy::Proxy;
use crate::value::Value;

/// A proxy as a value of the language: a remote object, a path not yet read (the middle of
/// `root.counter.inc()`), or a REPL-side object such as a collector.
#[derive(Clone)]
pub(crate) struct Remote {
    pub(crate) proxy: Proxy,
    /// The connection it came from (see [`Inner::epoch`]); a proxy of a lost connection
    /// says so when used.
    pub(crate) epoch: u64,
}

/// A built-in function used as a value (`root.every(3, print)`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Builtin(pub(crate) &'static str);

/// A value the language has no type for (a map with non-string keys, an integer beyond 64
/// bits): shown as it is and sent back unchanged.
#[derive(Clone)]
pub(crate) struct Opaque(pub(crate) Value);

/// Named arguments for a remote call: `named(#{mode: "w"})` as the last argument.
#[derive(Clone)]
pub(crate) struct Named(pub(crate) Vec<(String, Value)>);

/// `Value` to `Dynamic`. References become [`Remote`]s of connection `epoch`.
pub(crate) fn to_dynamic(v: Value, epoch: u64) -> Dynamic {
    match v {
        Value::Nil => Dynamic::UNIT,
        Value::Bool(b) => b.into(),
        Value::Int(i) => (i as INT).into(),
        Value::UInt(u) => match INT::try_from(u) {
            Ok(i) => i.into(),
            Err(_) => Dynamic::from(Opaque(Value::UInt(u))),
        },
        Value::Float(f) => f.into(),
        Value::Str(s) => s.into(),
        Value::Bytes(b) => Dynamic::from_blob(b),
        Value::List(items) => {
            let array: Array = items.into_iter().map(|i| to_dynamic(i, epoch)).collect();
            array.into()
        }
        Value::Map(entries) => {
            if entries.iter().all(|(k, _)| matches!(k, Value::Str(_))) {
                let mut map = Map::new();
                for (k, v) in entries {
                    if let Value::Str(k) = k {
                        map.insert(k.into(), to_dynamic(v, epoch));
                    }
                }
                map.into()
            } else {
                Dynamic::from(Opaque(Value::Map(entries)))
            }
        }
        Value::Ref(proxy) => Dynamic::from(Remote { proxy, epoch }),
    }
}

/// `Dynamic` to `Value`, for arguments of remote calls. Closures become callbacks lent by
/// reference; `print` becomes the REPL's print callback.
pub(crate) fn to_value(inner: &Inner, d: &Dynamic) -> Result<Value, String> {
    if d.is_unit() {
        return Ok(Value::Nil);
    }
    if let Some(b) = d.clone().try_cast::<bool>() {
        return Ok(Value::Bool(b));
    }
    if let Some(i) = d.clone().try_cast::<INT>() {
        return Ok(Value::Int(i));
    }
    if let Some(f) = d.clone().try_cast::<f64>() {
        return Ok(Value::Float(f));
    }
    if d.is_string() {
        return Ok(Value::Str(d.clone().into_string().unwrap_or_default()));
    }
    if let Some(c) = d.clone().try_cast::<char>() {
        return Ok(Value::Str(c.to_string()));
    }
    if d.is_blob() {
        return Ok(Value::Bytes(d.clone().cast::<Blob>()));
    }
    if d.is_array() {
        let array = d
            .read_lock::<Array>()
            .map(|a| a.clone())
            .unwrap_or_default();
        let items: Result<Vec<Value>, String> = array.iter().map(|i| to_value(inner, i)).collect();
        return Ok(Value::List(items?));
    }
    if d.is_map() {
        let map = d.read_lock::<Map>().map(|m| m.clone()).unwrap_or_default();
        let mut entries = Vec::with_capacity(map.len());
        for (k, v) in &map {
            entries.push((Value::Str(k.to_string()), to_value(inner, v)?));
        }
        return Ok(Value::Map(entries));
    }
    if let Some(r) = d.clone().try_cast::<Remote>() {
        inner.check_epoch(&r)?;
        return Ok(Value::Ref(r.proxy));
    }
    if let Some(o) = d.clone().try_cast::<Opaque>() {
        return Ok(o.0);
    }
    if let Some(Builtin(name)) = d.clone().try_cast::<Builtin>() {
        return match name {
            "print" => Ok(Value::Ref(
                inner
                    .print_proxy
                    .get_or_init(|| super::print_callback(inner.me.clone()))
                    .clone(),
            )),
            other => Err(format!(
                "the built-in `{other}` cannot be passed; wrap it in a closure: |x| {other}(x)"
            )),
        };
    }
    if let Some(f) = d.clone().try_cast::<FnPtr>() {
        return Ok(Value::Ref(closure_callback(inner.me.clone(), f)));
    }
    Err(format!(
        "{} cannot be sent to the peer",
        super::render::a_type(&super::render::type_name(d))
    ))
}

/// The positional and named arguments of a remote call.
pub(crate) fn to_args(inner: &Inner, args: &[Dynamic]) -> Result<Args, String> {
    let mut pos = Vec::with_capacity(args.len());
    let mut named = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if let Some(Named(n)) = a.clone().try_cast::<Named>() {
            if i + 1 != args.len() {
                return Err("named(...) must be the last argument".into());
            }
            named = n;
        } else {
            pos.push(to_value(inner, a)?);
        }
    }
    Ok(Args::from_parts(pos, named))
}

/// A closure lent to the peer: each call runs it on a blocking thread (it may call the peer
/// in turn); an error inside it travels back as the call's error.
fn closure_callback(session: Weak<Inner>, f: FnPtr) -> Proxy {
    crate::Callback::from_fn(move |args: Args| {
        let session = session.clone();
        let f = f.clone();
        async move {
            let run = tokio::task::spawn_blocking(move || {
                let Some(s) = session.upgrade() else {
                    return Err(crate::Error::remote(
                        crate::ErrorKind::Failed,
                        "the REPL session is gone",
                    ));
                };
                s.run_closure(&f, args)
            });
            run.await.unwrap_or_else(|e| {
                Err(crate::Error::remote(
                    crate::ErrorKind::Panicked,
                    format!("the closure panicked: {e}"),
                ))
            })
        }
    })
    .into_proxy()
}

//! Property tests: any brine value round-trips, and hostile bytes at every layer (frame,
//! message, brine, boxing, vinegar) give an error or a value, never a panic, and what they
//! decode to stays within the limits.

use proptest::prelude::*;

use super::boxing::Boxed;
use super::brine::{self, Brine, Limits};
use super::frame;
use super::message::Message;
use super::vinegar::Raised;

fn leaf() -> impl Strategy<Value = Brine> {
    prop_oneof![
        Just(Brine::None),
        any::<bool>().prop_map(Brine::Bool),
        any::<i64>().prop_map(Brine::Int),
        "[1-9][0-9]{19,60}".prop_map(Brine::BigInt),
        any::<f64>()
            .prop_filter("nan != nan", |x| !x.is_nan())
            .prop_map(Brine::Float),
        ".{0,20}".prop_map(Brine::Str),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Brine::Bytes),
        Just(Brine::Ellipsis),
        Just(Brine::NotImplemented),
    ]
}

fn value() -> impl Strategy<Value = Brine> {
    leaf().prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Brine::Tuple),
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Brine::FrozenSet),
            (inner.clone(), inner.clone(), inner)
                .prop_map(|(a, b, c)| Brine::Slice(Box::new([a, b, c]))),
        ]
    })
}

/// Counts every value in `v`, nested ones included (what `Limits::max_items` bounds).
fn count(v: &Brine) -> usize {
    1 + match v {
        Brine::Tuple(items) | Brine::FrozenSet(items) => 1 + items.iter().map(count).sum::<usize>(),
        Brine::Slice(s) => 1 + s.iter().map(count).sum::<usize>(),
        Brine::Str(_) => 1,
        _ => 0,
    }
}

/// Runs every decoder on `bytes`, as the connection would, checking the bounds.
fn feed(bytes: &[u8]) {
    let lim = Limits {
        max_depth: 16,
        max_items: 500,
    };
    if let Ok(v) = brine::decode(bytes, lim) {
        assert!(count(&v) <= 2 * lim.max_items);
        let _ = Boxed::from_brine(v.clone());
        let _ = Raised::from_brine(v).into_error();
    }
    if let Ok(m) = Message::decode(bytes, lim) {
        match m {
            Message::Request { args, .. } => drop(Boxed::from_brine(args)),
            Message::Reply { value, .. } => drop(Boxed::from_brine(value)),
            Message::Exception { value, .. } => drop(Raised::from_brine(value)),
        }
    }
    if let Ok(Some(f)) = frame::split(bytes, 4096) {
        assert!(f.len <= bytes.len());
        if let Ok(p) = frame::payload(bytes, &f, 4096) {
            assert!(p.len() <= 4096);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn brine_round_trips(v in value()) {
        let bytes = brine::to_bytes(&v);
        prop_assert_eq!(brine::decode(&bytes, Limits::default()).unwrap(), v);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        feed(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(
        v in value(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut payload = Vec::new();
        Message::Request { seq: 1, handler: 8, args: v }.encode(&mut payload);
        let mut framed = Vec::new();
        frame::encode(&payload, false, &mut framed).unwrap();
        for (at, byte) in flips {
            let i = at.index(framed.len());
            framed[i] = byte;
        }
        feed(&framed);
        feed(&framed[..cut.index(framed.len() + 1)]);
        feed(&payload);
    }

    #[test]
    fn mutated_zlib_never_panics(
        data in proptest::collection::vec(any::<u8>(), 3001..6000),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let mut framed = Vec::new();
        frame::encode(&data, true, &mut framed).unwrap();
        for (at, byte) in flips {
            let i = at.index(framed.len() - frame::HEADER - 1) + frame::HEADER;
            framed[i] = byte;
        }
        if let Ok(Some(f)) = frame::split(&framed, 1 << 20) {
            if let Ok(p) = frame::payload(&framed, &f, 8192) {
                prop_assert!(p.len() <= 8192);
            }
        }
    }
}

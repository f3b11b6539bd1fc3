//! Compile-time behaviour of `#[expose]`: every misuse is reported with a clear message at
//! the offending code (`tests/ui/fail_*.rs`, expected output in the `.stderr` files next to
//! them), and a full-featured block compiles and runs (`tests/ui/pass_*.rs`).
//!
//! After an intended change to a message, regenerate the expected output with
//! `TRYBUILD=overwrite cargo test --test macro_ui` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail_*.rs");
    t.pass("tests/ui/pass_*.rs");
}

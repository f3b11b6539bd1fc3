//! Procedural macros for [netref](https://docs.rs/netref).
//!
//! This crate provides [`macro@expose`], re-exported as `netref::expose`. Depend on `netref`
//! rather than on this crate: the generated code names `::netref` paths only.
//!
//! # Pipeline
//!
//! The macro runs in three stages, each in its own module:
//!
//! 1. **parse** (`parse.rs`): reads the `impl` block and the `#[exposed(...)]` markers on its
//!    functions, removing the markers;
//! 2. **check** (`check.rs`): validates everything (receivers, parameters, property/setter
//!    pairs, names) and collects *all* problems, each with the span of the offending code;
//! 3. **expand** (`expand.rs`): writes the `impl netref::__private::Object` block.
//!
//! The macro never panics: every problem becomes a `compile_error!` at the right place, and
//! the `impl` block itself is still emitted (without markers) so that unrelated code keeps
//! compiling and no follow-up errors drown the real ones.

mod check;
mod client;
mod expand;
mod parse;
mod render;
mod service;

use proc_macro::TokenStream;

/// Exposes the marked methods of an inherent `impl` block to netref peers.
///
/// `#[expose]` goes on an inherent `impl` of a concrete type (no generic parameters, not a
/// trait impl). It keeps the block as written, minus the `#[exposed]` markers, and adds an
/// implementation of `netref::Object` for the type with:
///
/// - `type_info`: a `static` `TypeInfo` holding the type's name (the last segment of the
///   path, as written), the doc comment on the `impl` block, and one `MemberInfo` per exposed
///   member, in source order, each with its remote name, kind, a readable signature
///   (`add(a: i64, b: i64) -> i64`, or `value: i64` for a property) and its doc comment;
/// - `invoke`: a dispatcher by member index that decodes each argument with serde (a named
///   argument stands for the parameter of its name; a named argument that names no parameter,
///   a missing argument of any type but `Option`, and extra arguments are refused with
///   `BadArguments` errors naming them), calls the method
///   (awaiting it when it is `async`) and encodes its return value. A return type written as
///   a path ending in `Result` (`Result<T, E>`, `io::Result<T>`, `netref::Result<T>`...) is
///   unwrapped: `Err(e)` becomes a remote error of kind `Failed` with `e`'s type name and
///   message;
/// - `as_any`: the upcast used to recover the concrete type from a proxy of a local object.
///
/// It also writes a typed client, `<Type>Proxy` (see `netref::typed` and `docs/typed.md`):
///
/// - `pub struct LabProxy<M: Mode = Async>` wrapping a dynamic proxy, with `Clone`, `Debug`,
///   `PartialEq`, `Eq`, `Hash`, serde (it travels as a reference), `From<LabProxy> for
///   Proxy`, `netref::TypedProxy` and an inherent `dynamic()`;
/// - in `impl LabProxy<Async>`, one method per exposed method (same name and parameters,
///   returning `netref::TypedCall<T>`), a getter per property and `set_<name>` per settable
///   property; in `impl LabProxy<Blocking>` the same methods returning `netref::Result<T>`.
///   A result `Result<T, E>` becomes `T`; `Obj<X>` anywhere in a type becomes X's proxy; a
///   `Proxy` parameter takes `impl Into<Proxy>` (callbacks and typed proxies);
/// - `impl netref::HasProxy for Lab`, mapping `Obj<Lab>` to `LabProxy`.
///
/// Options: `#[expose(proxy = "Name")]` renames the client, `#[expose(proxy_vis =
/// "pub(crate)")]` sets its visibility, `#[expose(no_proxy)]` leaves it out.
///
/// # Traits
///
/// On a trait (no generic parameters), `#[expose]` keeps the trait (markers removed, each
/// `async fn` declared as `fn ... -> impl Future<Output = R> + Send`), and writes
/// `LabServer<T>`, which serves any `T: Lab + Send + Sync + 'static` under the type name
/// `Lab`, and the typed client `LabProxy`. The markers and rules are those of impl blocks;
/// unmarked trait functions stay ordinary trait functions.
///
/// # Markers
///
/// Only functions carrying a marker are reachable; everything else in the block is left
/// alone and appears nowhere in the generated code.
///
/// | Marker | On | Makes |
/// |---|---|---|
/// | `#[exposed]` | `fn name(&self, a: A, ...) -> R` | method `name` |
/// | `#[exposed(property)]` | `fn name(&self) -> T` | read-only property `name` |
/// | `#[exposed(setter)]` | `fn set_name(&self, value: T)` | property `name` settable |
/// | `#[exposed(setter = "name")]` | `fn any(&self, value: T)` | property `name` settable |
/// | `#[exposed(name = "other")]` | a method or property | the member is called `other` |
/// | `#[exposed(oneway)]` | a method | the typed client sends it one-way (no answer) |
///
/// `name = "..."` combines with `property`: `#[exposed(property, name = "size")]`. A setter
/// may return `()` or a `Result<(), E>`; it is not a member of its own.
///
/// `#[cfg(...)]` on a marked function makes the member conditional: when the function is
/// compiled out, so is the member (two conditional members may share a name). A marker
/// inside `#[cfg_attr(...)]` is not supported: rustc evaluates `cfg_attr` after this macro
/// runs.
///
/// # Rules
///
/// The macro reports every broken rule at once, each at the offending code:
///
/// - exposed functions take `&self` (state goes behind interior mutability, since the object
///   is shared by every peer holding a reference);
/// - they are not generic (lifetime parameters are fine) and not `unsafe`;
/// - parameters are plain names (`a: T`), not patterns; each type implements
///   `serde::de::DeserializeOwned`, and return types implement `serde::Serialize`;
/// - a property getter has no parameters and returns a value; a setter takes one value and
///   needs an exposed property to set, and a property has at most one setter;
/// - remote names are unique within the block.
///
/// # Example
///
/// ```ignore
/// use std::sync::atomic::{AtomicI64, Ordering};
/// use netref::expose;
///
/// #[derive(Default)]
/// struct Counter { value: AtomicI64, step: AtomicI64 }
///
/// /// A counter.
/// #[expose]
/// impl Counter {
///     /// Adds `step` and returns the new value.
///     #[exposed]
///     fn inc(&self) -> i64 {
///         let step = self.step.load(Ordering::SeqCst);
///         self.value.fetch_add(step, Ordering::SeqCst) + step
///     }
///
///     /// The increment.
///     #[exposed(property)]
///     fn step(&self) -> i64 { self.step.load(Ordering::SeqCst) }
///
///     #[exposed(setter)]
///     fn set_step(&self, step: i64) { self.step.store(step, Ordering::SeqCst) }
///
///     /// Not exposed: a peer can neither call nor list it.
///     fn reset(&self) { self.value.store(0, Ordering::SeqCst) }
/// }
/// ```
#[proc_macro_attribute]
pub fn expose(args: TokenStream, item: TokenStream) -> TokenStream {
    run(args.into(), item.into()).into()
}

/// The whole pipeline on `proc_macro2` streams (testable outside a macro invocation).
fn run(args: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let mut errors = Vec::new();
    let options = client::parse_options(args, &mut errors);
    if let Ok(syn::Item::Trait(item)) = syn::parse2::<syn::Item>(item.clone()) {
        return service::run(options, item, &mut errors);
    }
    let parsed = match parse::parse(proc_macro2::TokenStream::new(), item, &mut errors) {
        Ok(parsed) => parsed,
        Err(original) => return report(errors, original),
    };
    let model = check::check(&parsed, &mut errors);
    let client = if errors.is_empty() {
        let subject = client::Subject::Impl {
            self_ty: &parsed.item.self_ty,
        };
        client::expand(&model, &options, &subject, &mut errors)
    } else {
        proc_macro2::TokenStream::new()
    };
    if errors.is_empty() {
        let mut out = expand::expand(&parsed.item, &model);
        out.extend(client);
        out
    } else {
        report(errors, quote::ToTokens::to_token_stream(&parsed.item))
    }
}

/// The errors as `compile_error!`s, followed by `item` so that the rest of the crate still
/// sees the type's methods.
fn report(errors: Vec<syn::Error>, item: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let errors = errors.into_iter().map(|e| e.to_compile_error());
    quote::quote! {
        #(#errors)*
        #item
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    #[test]
    fn the_expansion_parses_as_items() {
        let out = super::run(
            quote!(),
            quote! {
                /// Doc.
                impl Lab {
                    #[exposed]
                    fn add(&self, a: i64, b: i64) -> i64 { a + b }
                    #[cfg(feature = "x")]
                    #[exposed(property)]
                    fn value(&self) -> i64 { 1 }
                    #[exposed(setter)]
                    async fn set_value(&self, v: i64) -> Result<(), E> { Ok(()) }
                    #[exposed]
                    fn last(&self) {}
                }
            },
        );
        let file: syn::File = syn::parse2(out.clone()).expect("items");
        let text = out.to_string();
        assert!(file.items.len() > 2, "{out}");
        assert!(text.contains("__NETREF_MEMBER_2"), "{text}");
        assert!(text.contains("struct LabProxy"), "{text}");
        assert!(text.contains("fn set_value"), "{text}");
        assert!(!text.contains("# [exposed"), "{text}");
    }

    #[test]
    fn a_trait_expands_to_itself_a_server_and_a_client() {
        let out = super::run(
            quote!(),
            quote! {
                /// Doc.
                pub trait Lab {
                    #[exposed]
                    async fn add(&self, a: i64, b: i64) -> i64;
                    #[exposed(property)]
                    fn value(&self) -> i64 { 1 }
                    fn helper(&self) {}
                }
            },
        );
        let file: syn::File = syn::parse2(out.clone()).expect("items");
        let text = out.to_string();
        assert!(file.items.len() > 3, "{out}");
        for part in [
            "pub trait Lab",
            "pub struct LabServer",
            "pub struct LabProxy",
            "Send",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        assert!(
            !text.contains("# [exposed") && !text.contains("async fn"),
            "{text}"
        );
    }

    #[test]
    fn errors_come_with_the_item_and_never_panic() {
        for input in [
            quote!(),
            quote!(
                fn f() {}
            ),
            quote!(impl),
            quote!(impl X { #[exposed(name =)] fn f(&self) {} }),
            quote!(impl X { #[exposed(setter = 1)] fn f(&self) {} }),
            quote!(impl X { #[exposed(setter)] fn set_(&self) {} }),
            quote!(impl X { #[exposed] fn f(&self, ...) {} }),
            quote!(
                trait X<T> {
                    #[exposed]
                    fn f(&self);
                }
            ),
            quote!(
                trait X {
                    #[exposed]
                    fn f(self);
                }
            ),
            quote!(impl X {
                #[exposed(property)] fn x(&self) -> i64 { 1 }
                #[exposed(setter)] fn set_x(&self, v: i64) {}
                #[exposed(name = "set_x")] fn other(&self) {}
            }),
            quote!(impl dyn X { #[exposed] fn f(&self) {} }),
            quote!(
                impl<T> X<T> where T: Send {}
            ),
        ] {
            let out = super::run(quote!(), input.clone()).to_string();
            assert!(out.contains("compile_error"), "{input} -> {out}");
        }
    }
}

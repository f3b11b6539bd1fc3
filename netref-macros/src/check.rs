//! Stage 2: validate the marked functions and build the model the expansion works from.
//!
//! Every rule is checked even after one fails, so the user sees all problems in one build;
//! each error carries the span of the code it is about.

use std::collections::HashMap;

use proc_macro2::{Ident, TokenStream};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, GenericParam, Pat, PathArguments, ReturnType, Signature, Type};

use crate::parse::{doc_text, Marked, Marker, Parsed};

const NOT_INHERENT: &str = "#[expose] needs an inherent impl of a concrete type";
const NEEDS_REF_SELF: &str = "exposed methods must take `&self`; use interior mutability for state";
const NOT_GENERIC: &str = "exposed methods cannot be generic";

/// What the expansion needs to know about the block.
pub(crate) struct Model {
    /// The type's name: the last segment of its path, as written.
    pub(crate) type_name: String,
    /// The doc comment on the `impl` block.
    pub(crate) doc: String,
    /// The exposed members, in source order.
    pub(crate) members: Vec<Member>,
}

/// One exposed member.
pub(crate) struct Member {
    /// The remote name.
    pub(crate) name: String,
    /// The member's doc comment.
    pub(crate) doc: String,
    /// Method or property, with the functions that serve it.
    pub(crate) kind: Kind,
    /// `#[exposed(oneway)]`: the typed client sends it as a one-way call.
    pub(crate) oneway: bool,
}

impl Member {
    /// The function that defines the member: the method, or the property's getter.
    pub(crate) fn handler(&self) -> &Handler {
        match &self.kind {
            Kind::Method(handler) => handler,
            Kind::Property { getter, .. } => getter,
        }
    }
}

/// What sort of member, and the functions behind it.
pub(crate) enum Kind {
    /// A method.
    Method(Handler),
    /// A property: its getter and, when settable, its setter.
    Property {
        getter: Handler,
        setter: Option<Box<Handler>>,
    },
}

/// A function the dispatcher calls.
pub(crate) struct Handler {
    /// The Rust name of the function.
    pub(crate) ident: Ident,
    /// True for an `async fn`.
    pub(crate) is_async: bool,
    /// The parameters after `&self`.
    pub(crate) params: Vec<Param>,
    /// The return type, classified.
    pub(crate) output: Output,
    /// The predicates of the function's `#[cfg(...)]` attributes.
    pub(crate) cfgs: Vec<TokenStream>,
}

/// One parameter.
pub(crate) struct Param {
    /// The parameter's name (without `r#`), also the name of a named argument.
    pub(crate) name: String,
    /// Its type.
    pub(crate) ty: Type,
}

/// A function's return type, as the dispatcher encodes it.
pub(crate) enum Output {
    /// No return type, or `()`.
    Unit,
    /// A value to encode.
    Value(Type),
    /// A path ending in `Result`: `Ok` is encoded, `Err` becomes a remote error.
    Result(Type),
}

impl Output {
    /// The return type as written, if any.
    pub(crate) fn ty(&self) -> Option<&Type> {
        match self {
            Output::Unit => None,
            Output::Value(ty) | Output::Result(ty) => Some(ty),
        }
    }
}

/// Checks the block and its marked functions, pushing every problem onto `errors`. The model
/// is only meaningful when `errors` stays empty.
pub(crate) fn check(parsed: &Parsed, errors: &mut Vec<syn::Error>) -> Model {
    let item = &parsed.item;
    if let Some((_, path, _)) = &item.trait_ {
        errors.push(syn::Error::new_spanned(
            path,
            format!("{NOT_INHERENT}, not a trait impl: write `impl MyType {{ ... }}`"),
        ));
    }
    if !item.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &item.generics,
            format!("{NOT_INHERENT}, not a generic impl"),
        ));
    } else if let Some(clause) = &item.generics.where_clause {
        errors.push(syn::Error::new_spanned(
            clause,
            format!("{NOT_INHERENT}, without a `where` clause"),
        ));
    }
    let type_name = match &*item.self_ty {
        Type::Path(p) if p.qself.is_none() => p
            .path
            .segments
            .last()
            .map(|s| s.ident.unraw().to_string())
            .unwrap_or_default(),
        other => {
            errors.push(syn::Error::new_spanned(
                other,
                format!("{NOT_INHERENT}, named by a path such as `MyType`"),
            ));
            String::new()
        }
    };

    let mut members: Vec<Member> = Vec::new();
    let mut setters: Vec<(&Marked, Handler)> = Vec::new();
    let mut names: HashMap<String, (Ident, bool)> = HashMap::new();
    for marked in &parsed.marked {
        let sig = &marked.func.sig;
        let handler = handler(sig, marked.cfgs.clone(), errors);
        let oneway = matches!(marked.marker, Marker::Method { oneway: true, .. });
        let (explicit, is_property) = match &marked.marker {
            Marker::Setter { .. } => {
                if handler.params.len() != 1 {
                    errors.push(syn::Error::new(
                        sig.paren_token.span.join(),
                        "an exposed setter takes exactly one value: `fn set_name(&self, value: T)`",
                    ));
                }
                setters.push((marked, handler));
                continue;
            }
            Marker::Method { name, .. } => (name, false),
            Marker::Property { name } => (name, true),
        };
        if is_property {
            check_getter(sig, &handler, errors);
        }

        let (name, name_span) = match explicit {
            Some(lit) => (lit.value(), lit.span()),
            None => (sig.ident.unraw().to_string(), sig.ident.span()),
        };
        if name.is_empty() {
            errors.push(syn::Error::new(name_span, "exposed names cannot be empty"));
        }
        // Two conditional members may share a name: their `cfg`s are presumably exclusive
        // (`#[cfg(unix)]` and `#[cfg(windows)]` versions of one method).
        let conditional = !handler.cfgs.is_empty();
        match names.get(&name) {
            Some((first, first_conditional)) if !(conditional && *first_conditional) => {
                errors.push(syn::Error::new(
                    name_span,
                    format!("duplicate exposed name `{name}`: `fn {first}` already uses it"),
                ));
            }
            Some(_) => {}
            None => {
                names.insert(name.clone(), (sig.ident.clone(), conditional));
            }
        }
        let kind = if is_property {
            Kind::Property {
                getter: handler,
                setter: None,
            }
        } else {
            Kind::Method(handler)
        };
        members.push(Member {
            name,
            doc: doc_text(&marked.func.attrs),
            kind,
            oneway,
        });
    }

    for (marked, handler) in setters {
        attach_setter(&mut members, marked, handler, errors);
    }

    Model {
        type_name,
        doc: doc_text(&item.attrs),
        members,
    }
}

/// Checks what every exposed function shares (receiver, generics, parameters) and reads it.
fn handler(sig: &Signature, cfgs: Vec<TokenStream>, errors: &mut Vec<syn::Error>) -> Handler {
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            unsafety,
            "exposed methods cannot be `unsafe`",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "exposed methods cannot be variadic",
        ));
    }
    if sig
        .generics
        .params
        .iter()
        .any(|p| !matches!(p, GenericParam::Lifetime(_)))
    {
        errors.push(syn::Error::new_spanned(&sig.generics, NOT_GENERIC));
    }

    let mut inputs = sig.inputs.iter().peekable();
    match inputs.peek() {
        Some(FnArg::Receiver(r)) => {
            let shared_ref = match &r.colon_token {
                // `self: &Self`
                Some(_) => {
                    matches!(&*r.ty, Type::Reference(t) if t.mutability.is_none() && is_self(&t.elem))
                }
                None => r.reference.is_some() && r.mutability.is_none(),
            };
            if !shared_ref {
                errors.push(syn::Error::new_spanned(r, NEEDS_REF_SELF));
            }
            inputs.next();
        }
        _ => errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            format!("{NEEDS_REF_SELF} (this function has no `self`)"),
        )),
    }

    let mut params = Vec::new();
    for arg in inputs {
        let FnArg::Typed(pt) = arg else {
            // The parser only accepts a receiver first; rustc reports any other.
            continue;
        };
        if has_impl_trait(&pt.ty) {
            errors.push(syn::Error::new_spanned(
                &pt.ty,
                format!("{NOT_GENERIC}: name the parameter's type instead of `impl Trait`"),
            ));
        }
        match &*pt.pat {
            Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => params.push(Param {
                name: pi.ident.unraw().to_string(),
                ty: (*pt.ty).clone(),
            }),
            other => errors.push(syn::Error::new_spanned(
                other,
                "exposed method parameters must be plain names (`name: Type`), not patterns; \
                 the name is also the argument's remote name",
            )),
        }
    }

    let output = match &sig.output {
        ReturnType::Default => Output::Unit,
        ReturnType::Type(_, ty) => match &**ty {
            Type::Tuple(t) if t.elems.is_empty() => Output::Unit,
            ty if is_result(ty) => Output::Result(ty.clone()),
            ty => Output::Value(ty.clone()),
        },
    };

    Handler {
        ident: sig.ident.clone(),
        is_async: sig.asyncness.is_some(),
        params,
        output,
        cfgs,
    }
}

/// A property getter has no parameters and returns a value.
fn check_getter(sig: &Signature, handler: &Handler, errors: &mut Vec<syn::Error>) {
    if let Some(extra) = sig.inputs.iter().find(|a| matches!(a, FnArg::Typed(_))) {
        errors.push(syn::Error::new_spanned(
            extra,
            "an exposed property takes no parameters: `fn name(&self) -> T`; \
             use a method (#[exposed]) to take arguments",
        ));
    }
    if handler.output.ty().is_none() {
        let span = match &sig.output {
            ReturnType::Type(_, ty) => ty.span(),
            ReturnType::Default => sig.paren_token.span.join(),
        };
        errors.push(syn::Error::new(
            span,
            "an exposed property must return a value: `fn name(&self) -> T`",
        ));
    }
}

/// Makes the property a setter names settable.
fn attach_setter(
    members: &mut [Member],
    marked: &Marked,
    handler: Handler,
    errors: &mut Vec<syn::Error>,
) {
    let ident = &marked.func.sig.ident;
    let rust_name = ident.unraw().to_string();
    let (target, span) = match &marked.marker {
        Marker::Setter {
            property: Some(lit),
        } => (lit.value(), lit.span()),
        _ => match rust_name.strip_prefix("set_") {
            Some(rest) if !rest.is_empty() => (rest.to_owned(), ident.span()),
            _ => {
                errors.push(syn::Error::new(
                    ident.span(),
                    format!(
                        "cannot tell which property setter `{rust_name}` sets: name it \
                         `set_<property>` or write #[exposed(setter = \"property\")]"
                    ),
                ));
                return;
            }
        },
    };

    // The remote name first; then the getter's Rust name (for a renamed property).
    let by_name = members.iter().position(|m| m.name == target);
    let by_getter = || {
        members.iter().position(
            |m| matches!(&m.kind, Kind::Property { getter, .. } if getter.ident.unraw() == target),
        )
    };
    let Some(index) = by_name.or_else(by_getter) else {
        errors.push(syn::Error::new(
            span,
            format!("setter `{rust_name}` has no exposed property `{target}`; mark its getter with #[exposed(property)]"),
        ));
        return;
    };
    let member = &mut members[index];
    match &mut member.kind {
        Kind::Method(_) => errors.push(syn::Error::new(
            span,
            format!(
                "setter `{rust_name}` has no exposed property `{target}`: `{target}` is a method"
            ),
        )),
        Kind::Property {
            setter: Some(first),
            ..
        } => errors.push(syn::Error::new(
            span,
            format!(
                "property `{}` already has a setter: `fn {}`",
                member.name, first.ident
            ),
        )),
        Kind::Property { setter, .. } => {
            if member.doc.is_empty() {
                member.doc = doc_text(&marked.func.attrs);
            }
            *setter = Some(Box::new(handler));
        }
    }
}

/// True for the type `Self`.
fn is_self(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.is_ident("Self"))
}

/// True when `ty` is written as a path whose last segment is `Result`.
fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => {
            p.path.segments.last().is_some_and(|s| s.ident == "Result")
        }
        Type::Paren(p) => is_result(&p.elem),
        Type::Group(g) => is_result(&g.elem),
        _ => false,
    }
}

/// True when `impl Trait` appears in `ty` (which makes the function generic).
fn has_impl_trait(ty: &Type) -> bool {
    match ty {
        Type::ImplTrait(_) => true,
        Type::Reference(t) => has_impl_trait(&t.elem),
        Type::Ptr(t) => has_impl_trait(&t.elem),
        Type::Slice(t) => has_impl_trait(&t.elem),
        Type::Array(t) => has_impl_trait(&t.elem),
        Type::Paren(t) => has_impl_trait(&t.elem),
        Type::Group(t) => has_impl_trait(&t.elem),
        Type::Tuple(t) => t.elems.iter().any(has_impl_trait),
        Type::Path(p) => p.path.segments.iter().any(|s| match &s.arguments {
            PathArguments::AngleBracketed(a) => a.args.iter().any(|arg| match arg {
                GenericArgument::Type(t) => has_impl_trait(t),
                _ => false,
            }),
            _ => false,
        }),
        _ => false,
    }
}

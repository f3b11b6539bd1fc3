//! The typed client: `LabProxy`, generated next to the dispatcher from the same model.
//!
//! Runs after `check` (the model is valid) with its own small check for what only the client
//! cares about: the options of `#[expose(...)]` and the Rust names of the client's methods.
//! Everything generated reaches netref through `::netref` paths.

use std::collections::HashMap;

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{GenericArgument, LitStr, PathArguments, Type, Visibility};

use crate::check::{Handler, Kind, Model, Output};

/// The options of `#[expose(...)]`.
#[derive(Default)]
pub(crate) struct Options {
    /// `proxy = "Name"`: the typed client's name (default: the type's name + `Proxy`).
    pub(crate) name: Option<Ident>,
    /// `proxy_vis = "pub(crate)"`: the typed client's visibility (default `pub`, or the
    /// trait's).
    pub(crate) vis: Option<Visibility>,
    /// `no_proxy`: no typed client; `Obj<T>` maps to the dynamic proxy.
    pub(crate) no_proxy: bool,
}

const OPTIONS: &str = "`proxy = \"Name\"`, `proxy_vis = \"pub(crate)\"` or `no_proxy`";

/// Reads the options of `#[expose(...)]`, reporting malformed ones.
pub(crate) fn parse_options(args: TokenStream, errors: &mut Vec<syn::Error>) -> Options {
    let mut options = Options::default();
    if args.is_empty() {
        return options;
    }
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("proxy") {
            let lit: LitStr = meta.value()?.parse()?;
            options.name = Some(lit.parse::<Ident>().map_err(|_| {
                syn::Error::new(lit.span(), "expected a type name: proxy = \"LabClient\"")
            })?);
        } else if meta.path.is_ident("proxy_vis") {
            let lit: LitStr = meta.value()?.parse()?;
            options.vis = Some(lit.parse::<Visibility>().map_err(|_| {
                syn::Error::new(
                    lit.span(),
                    "expected a visibility: proxy_vis = \"pub(crate)\"",
                )
            })?);
        } else if meta.path.is_ident("no_proxy") {
            options.no_proxy = true;
        } else {
            return Err(meta.error(format!(
                "unknown #[expose] option; expected {OPTIONS} (mark members with #[exposed(...)])"
            )));
        }
        Ok(())
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, args) {
        errors.push(e);
    }
    options
}

/// What the client is generated for.
pub(crate) enum Subject<'a> {
    /// `#[expose] impl Lab`: the inherent methods of `Lab`.
    Impl { self_ty: &'a Type },
    /// `#[expose] trait Lab`: the trait, served by `server` (`LabServer<T>`).
    Trait {
        vis: &'a Visibility,
        server: &'a Ident,
    },
}

/// One method of the client.
struct ClientFn<'a> {
    /// The Rust name on the client.
    ident: Ident,
    /// The remote member's name.
    remote: &'a str,
    doc: String,
    cfgs: Vec<&'a TokenStream>,
    what: What<'a>,
}

enum What<'a> {
    Call(&'a Handler),
    /// `#[exposed(oneway)]`: sent as a one-way call, nothing comes back.
    Cast(&'a Handler),
    Get(&'a Handler),
    Set(&'a Handler),
}

/// Checks the client's method names (unique once setters become `set_<name>`), pushing
/// problems onto `errors`.
fn client_fns<'a>(model: &'a Model, errors: &mut Vec<syn::Error>) -> Vec<ClientFn<'a>> {
    let mut fns = Vec::new();
    for member in &model.members {
        let remote = member.name.as_str();
        let handler = member.handler();
        let base = rust_name(remote, &handler.ident);
        let cfgs: Vec<&TokenStream> = handler.cfgs.iter().collect();
        match &member.kind {
            Kind::Method(h) if member.oneway => fns.push(ClientFn {
                ident: base,
                remote,
                doc: format!(
                    "{}\n\nOne-way: sent without waiting for an answer (the owner logs a \
                     failure); resolves once the call is on its way.",
                    doc_or(&member.doc, format!("Calls `{remote}` on the object."))
                ),
                cfgs,
                what: What::Cast(h),
            }),
            Kind::Method(h) => fns.push(ClientFn {
                ident: base,
                remote,
                doc: doc_or(&member.doc, format!("Calls `{remote}` on the object.")),
                cfgs,
                what: What::Call(h),
            }),
            Kind::Property { getter, setter } => {
                fns.push(ClientFn {
                    ident: base.clone(),
                    remote,
                    doc: doc_or(&member.doc, format!("Reads property `{remote}`.")),
                    cfgs: cfgs.clone(),
                    what: What::Get(getter),
                });
                if let Some(setter) = setter {
                    let mut cfgs = cfgs;
                    cfgs.extend(&setter.cfgs);
                    fns.push(ClientFn {
                        ident: format_ident!("set_{}", base, span = setter.ident.span()),
                        remote,
                        doc: format!("Sets property `{remote}`."),
                        cfgs,
                        what: What::Set(setter),
                    });
                }
            }
        }
    }
    let mut seen: HashMap<String, bool> = HashMap::new();
    for f in &fns {
        let name = f.ident.to_string();
        let conditional = !f.cfgs.is_empty();
        match seen.get(&name) {
            Some(first_conditional) if !(conditional && *first_conditional) => {
                errors.push(syn::Error::new(
                    f.ident.span(),
                    format!(
                        "the typed client would have two methods `{name}` (a setter of property \
                         `x` is `set_x`); rename one with #[exposed(name = \"...\")] or turn the \
                         client off with #[expose(no_proxy)]"
                    ),
                ));
            }
            _ => {
                seen.insert(name, conditional);
            }
        }
    }
    fns
}

/// The remote name when it is a Rust identifier, else the function's own name.
fn rust_name(remote: &str, func: &Ident) -> Ident {
    match syn::parse_str::<Ident>(remote) {
        Ok(ident) => Ident::new(&ident.to_string(), func.span()),
        Err(_) => func.clone(),
    }
}

fn doc_or(doc: &str, fallback: String) -> String {
    if doc.is_empty() {
        fallback
    } else {
        doc.to_owned()
    }
}

/// The client (or, with `no_proxy`, only the `HasProxy` mapping) for a checked model.
pub(crate) fn expand(
    model: &Model,
    options: &Options,
    subject: &Subject<'_>,
    errors: &mut Vec<syn::Error>,
) -> TokenStream {
    let has_proxy_for = match subject {
        Subject::Impl { self_ty } => quote!(impl ::netref::typed::HasProxy for #self_ty),
        Subject::Trait { server, .. } => {
            quote!(impl<__T> ::netref::typed::HasProxy for #server<__T>)
        }
    };
    if options.no_proxy {
        return quote! {
            #has_proxy_for {
                type Proxy<__M: ::netref::typed::Mode> = <__M as ::netref::typed::Mode>::Dynamic;
            }
        };
    }

    let fns = client_fns(model, errors);
    if !errors.is_empty() {
        return TokenStream::new();
    }
    let type_name = &model.type_name;
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| format_ident!("{}Proxy", type_name));
    let proxy_name = name.to_string();
    let vis = match (&options.vis, subject) {
        (Some(vis), _) => quote!(#vis),
        (None, Subject::Trait { vis, .. }) => quote!(#vis),
        (None, Subject::Impl { .. }) => quote!(pub),
    };
    let self_ty = match subject {
        Subject::Impl { self_ty } => Some(*self_ty),
        Subject::Trait { .. } => None,
    };
    let struct_doc = format!(
        "Typed client of `{type_name}`, generated by `#[expose]`: one method per exposed \
         method, a getter per property and `set_<name>` per settable property, checked by the \
         compiler.\n\n`{proxy_name}` (that is, `{proxy_name}<Async>`) returns futures \
         (`netref::TypedCall`); `{proxy_name}<Blocking>` blocks. Get one with \
         `netref::Proxy::typed` or `Connection::root_as`, which check that the object is a \
         `{type_name}`."
    );
    let async_ty = quote!(::netref::typed::Async);
    let blocking_ty = quote!(::netref::typed::Blocking);
    let async_fns = fns.iter().map(|f| client_fn(f, &async_ty, self_ty, false));
    let blocking_fns = fns
        .iter()
        .map(|f| client_fn(f, &blocking_ty, self_ty, true));
    // The inherent `dynamic()` the issue promises, unless a member already has the name
    // (`TypedProxy::as_dynamic` is always there).
    let dynamic = (!fns.iter().any(|f| f.ident == "dynamic")).then(|| {
        quote! {
            /// The dynamic proxy this typed proxy wraps (typed and dynamic calls mix freely).
            pub fn dynamic(&self) -> &<__M as ::netref::typed::Mode>::Dynamic {
                &self.inner
            }
        }
    });

    quote! {
        #[doc = #struct_doc]
        #[allow(dead_code, unreachable_pub)]
        #vis struct #name<__M: ::netref::typed::Mode = ::netref::typed::Async> {
            inner: <__M as ::netref::typed::Mode>::Dynamic,
        }

        #[allow(dead_code, unreachable_pub)]
        impl<__M: ::netref::typed::Mode> #name<__M> {
            #dynamic
        }

        impl<__M: ::netref::typed::Mode> ::core::clone::Clone for #name<__M> {
            fn clone(&self) -> Self {
                #name { inner: ::core::clone::Clone::clone(&self.inner) }
            }
        }

        impl<__M: ::netref::typed::Mode> ::core::fmt::Debug for #name<__M> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_tuple(#proxy_name).field(&self.inner).finish()
            }
        }

        impl<__M: ::netref::typed::Mode> ::core::cmp::PartialEq for #name<__M> {
            fn eq(&self, other: &Self) -> bool {
                self.inner == other.inner
            }
        }

        impl<__M: ::netref::typed::Mode> ::core::cmp::Eq for #name<__M> {}

        impl<__M: ::netref::typed::Mode> ::core::hash::Hash for #name<__M> {
            fn hash<__H: ::core::hash::Hasher>(&self, state: &mut __H) {
                ::core::hash::Hash::hash(&self.inner, state)
            }
        }

        impl<__M: ::netref::typed::Mode> ::netref::typed::TypedProxy for #name<__M> {
            type Mode = __M;
            const TYPE_NAME: &'static str = #type_name;
            const PROXY_NAME: &'static str = #proxy_name;

            fn from_dynamic_unchecked(proxy: <__M as ::netref::typed::Mode>::Dynamic) -> Self {
                #name { inner: proxy }
            }

            fn as_dynamic(&self) -> &<__M as ::netref::typed::Mode>::Dynamic {
                &self.inner
            }

            fn into_dynamic(self) -> <__M as ::netref::typed::Mode>::Dynamic {
                self.inner
            }
        }

        impl<__M: ::netref::typed::Mode> ::netref::__private::serde::Serialize for #name<__M> {
            fn serialize<__S: ::netref::__private::serde::Serializer>(
                &self,
                serializer: __S,
            ) -> ::core::result::Result<__S::Ok, __S::Error> {
                ::netref::__private::serde::Serialize::serialize(&self.inner, serializer)
            }
        }

        impl<'de, __M: ::netref::typed::Mode> ::netref::__private::serde::Deserialize<'de>
            for #name<__M>
        {
            fn deserialize<__D: ::netref::__private::serde::Deserializer<'de>>(
                deserializer: __D,
            ) -> ::core::result::Result<Self, __D::Error> {
                <<__M as ::netref::typed::Mode>::Dynamic as ::netref::__private::serde::Deserialize>
                    ::deserialize(deserializer)
                    .map(|inner| #name { inner })
            }
        }

        impl<__M: ::netref::typed::Mode> ::core::convert::From<#name<__M>> for ::netref::Proxy {
            fn from(proxy: #name<__M>) -> ::netref::Proxy {
                ::core::convert::Into::into(proxy.inner)
            }
        }

        #has_proxy_for {
            type Proxy<__M: ::netref::typed::Mode> = #name<__M>;
        }

        #[allow(
            dead_code,
            unreachable_pub,
            clippy::too_many_arguments,
            clippy::len_without_is_empty,
            clippy::should_implement_trait,
            clippy::new_ret_no_self,
            clippy::wrong_self_convention
        )]
        impl #name<::netref::typed::Async> {
            #(#async_fns)*
        }

        #[allow(
            dead_code,
            unreachable_pub,
            clippy::too_many_arguments,
            clippy::len_without_is_empty,
            clippy::should_implement_trait,
            clippy::new_ret_no_self,
            clippy::wrong_self_convention
        )]
        impl #name<::netref::typed::Blocking> {
            #(#blocking_fns)*
        }
    }
}

/// One client method in `mode`.
///
/// What the types need (`Serialize` arguments, a `DeserializeOwned` result, `HasProxy` for
/// each `Obj<X>`) is stated as `where for<'__nr> ...` clauses: the bound names no parameter of
/// the method, so rustc checks it where the method is *called*, not here. A member whose
/// types the client cannot carry (a result that is `Serialize` only, say) thus costs nothing
/// until someone calls it through the typed client, and the error is then at that call.
fn client_fn(
    f: &ClientFn<'_>,
    mode: &TokenStream,
    self_ty: Option<&Type>,
    blocking: bool,
) -> TokenStream {
    let ident = &f.ident;
    let remote = f.remote;
    let doc = &f.doc;
    let cfgs = f.cfgs.iter().map(|p| quote!(#[cfg(#p)]));
    let serde = quote!(::netref::__private::serde);
    let mut bounds: Vec<TokenStream> = Vec::new();
    let objects = |ty: &Type, bounds: &mut Vec<TokenStream>| {
        for inner in object_types(ty) {
            let inner = map_type(inner, mode, self_ty);
            bounds.push(quote!(#inner: ::netref::typed::HasProxy));
        }
    };
    let mut cast = false;
    let (params, out, body) = match f.what {
        What::Call(h) | What::Cast(h) => {
            cast = matches!(f.what, What::Cast(_));
            let mut params = Vec::new();
            let mut args = Vec::new();
            for p in &h.params {
                let name = param_ident(&p.name, p.ty.span());
                if is_dynamic_proxy(&p.ty) {
                    params.push(quote!(#name: impl ::core::convert::Into<::netref::Proxy>));
                    args.push(quote! {
                        ::netref::__private::typed_arg(
                            &::core::convert::Into::<::netref::Proxy>::into(#name),
                        )
                    });
                } else {
                    let ty = client_type(&p.ty, mode, self_ty);
                    objects(&p.ty, &mut bounds);
                    bounds.push(quote!(#ty: #serde::Serialize));
                    params.push(quote_spanned!(p.ty.span()=> #name: #ty));
                    args.push(quote!(::netref::__private::typed_arg(&#name)));
                }
            }
            let out = output_type(&h.output, mode, self_ty);
            if let Some(ty) = h.output.ty() {
                objects(ty, &mut bounds);
            }
            let args = quote! {
                ::netref::__private::typed_args([#(#args),*])
            };
            let body = if cast && blocking {
                quote!(::netref::__private::blocking_cast(&self.inner, #remote, #args))
            } else if cast {
                quote!(::netref::__private::typed_cast(&self.inner, #remote, #args))
            } else if blocking {
                bounds.push(quote!(#out: #serde::de::DeserializeOwned));
                quote!(::netref::__private::blocking_call(&self.inner, #remote, #args))
            } else {
                quote!(::netref::__private::typed_call(&self.inner, #remote, #args))
            };
            (params, out, body)
        }
        What::Get(h) => {
            let out = output_type(&h.output, mode, self_ty);
            if let Some(ty) = h.output.ty() {
                objects(ty, &mut bounds);
            }
            let body = if blocking {
                bounds.push(quote!(#out: #serde::de::DeserializeOwned));
                quote!(::netref::__private::blocking_get(&self.inner, #remote))
            } else {
                quote!(::netref::__private::typed_get(&self.inner, #remote))
            };
            (Vec::new(), out, body)
        }
        What::Set(h) => {
            let (name, ty) = match h.params.first() {
                Some(p) => {
                    objects(&p.ty, &mut bounds);
                    (
                        param_ident(&p.name, p.ty.span()),
                        client_type(&p.ty, mode, self_ty),
                    )
                }
                None => (format_ident!("value"), quote!(())),
            };
            bounds.push(quote!(#ty: #serde::Serialize));
            let body = if blocking {
                quote!(::netref::__private::blocking_set(&self.inner, #remote, &#name))
            } else {
                quote!(::netref::__private::typed_set(&self.inner, #remote, &#name))
            };
            (vec![quote!(#name: #ty)], quote!(()), body)
        }
    };
    let ret = if cast && blocking {
        quote!(::netref::Result<()>)
    } else if cast {
        quote! {
            impl ::core::future::Future<Output = ::netref::Result<()>>
                + ::core::marker::Send
                + 'static
        }
    } else if blocking {
        quote!(::netref::Result<#out>)
    } else {
        quote!(::netref::TypedCall<#out>)
    };
    quote! {
        #[doc = #doc]
        #(#cfgs)*
        pub fn #ident(&self, #(#params),*) -> #ret
        where
            #(for<'__nr> #bounds,)*
        {
            #body
        }
    }
}

/// The `X` of every `Obj<X>` in `ty`.
fn object_types(ty: &Type) -> Vec<&Type> {
    let mut out = Vec::new();
    collect_objects(ty, &mut out);
    out
}

fn collect_objects<'a>(ty: &'a Type, out: &mut Vec<&'a Type>) {
    match ty {
        Type::Path(p) if p.qself.is_none() => {
            let Some(last) = p.path.segments.last() else {
                return;
            };
            if let PathArguments::AngleBracketed(a) = &last.arguments {
                let types: Vec<&Type> = a
                    .args
                    .iter()
                    .filter_map(|arg| match arg {
                        GenericArgument::Type(t) => Some(t),
                        _ => None,
                    })
                    .collect();
                if last.ident == "Obj" && a.args.len() == 1 && types.len() == 1 {
                    out.push(types[0]);
                    return;
                }
                for t in types {
                    collect_objects(t, out);
                }
            }
        }
        Type::Tuple(t) => t.elems.iter().for_each(|e| collect_objects(e, out)),
        Type::Array(a) => collect_objects(&a.elem, out),
        Type::Slice(s) => collect_objects(&s.elem, out),
        Type::Paren(p) => collect_objects(&p.elem, out),
        Type::Group(g) => collect_objects(&g.elem, out),
        Type::Reference(r) => collect_objects(&r.elem, out),
        _ => {}
    }
}

/// A parameter's name as an identifier (raw when it is a keyword).
fn param_ident(name: &str, span: Span) -> Ident {
    if syn::parse_str::<Ident>(name).is_ok() {
        Ident::new(name, span)
    } else {
        Ident::new_raw(name, span)
    }
}

/// True for `Proxy`, `netref::Proxy`, `::netref::Proxy` or `crate::Proxy`: a parameter that
/// accepts callbacks and typed proxies alike on the client.
fn is_dynamic_proxy(ty: &Type) -> bool {
    let Type::Path(p) = ty else { return false };
    if p.qself.is_some() {
        return false;
    }
    let segments: Vec<String> = p
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    let plain = p.path.segments.iter().all(|s| s.arguments.is_none());
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    plain
        && matches!(
            segments.as_slice(),
            ["Proxy"] | ["netref" | "crate", "Proxy"]
        )
}

/// What the client's call returns for a handler's output.
fn output_type(output: &Output, mode: &TokenStream, self_ty: Option<&Type>) -> TokenStream {
    match output {
        Output::Unit => quote!(()),
        Output::Value(ty) => client_type(ty, mode, self_ty),
        Output::Result(ty) => match ok_type(ty) {
            Some(ok) => client_type(ok, mode, self_ty),
            // A `Result` alias without arguments: its `Ok` type cannot be read here.
            None => quote!(::netref::Value),
        },
    }
}

/// The first type argument of a path type's last segment (`T` of `Result<T, E>`).
fn ok_type(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Path(p) => match &p.path.segments.last()?.arguments {
            PathArguments::AngleBracketed(a) => a.args.iter().find_map(|arg| match arg {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            }),
            _ => None,
        },
        Type::Paren(p) => ok_type(&p.elem),
        Type::Group(g) => ok_type(&g.elem),
        _ => None,
    }
}

/// `ty` as the client sees it: every `Obj<X>` becomes `X`'s proxy in `mode`, and `Self` the
/// exposed type.
fn client_type(ty: &Type, mode: &TokenStream, self_ty: Option<&Type>) -> TokenStream {
    let mapped = map_type(ty, mode, self_ty);
    quote_spanned!(ty.span()=> #mapped)
}

fn map_type(ty: &Type, mode: &TokenStream, self_ty: Option<&Type>) -> TokenStream {
    match ty {
        Type::Path(p) if p.qself.is_none() => {
            if p.path.is_ident("Self") {
                if let Some(self_ty) = self_ty {
                    return quote!(#self_ty);
                }
            }
            let Some(last) = p.path.segments.last() else {
                return quote!(#ty);
            };
            if let PathArguments::AngleBracketed(a) = &last.arguments {
                let types: Vec<&Type> = a
                    .args
                    .iter()
                    .filter_map(|arg| match arg {
                        GenericArgument::Type(t) => Some(t),
                        _ => None,
                    })
                    .collect();
                if last.ident == "Obj" && a.args.len() == 1 && types.len() == 1 {
                    let inner = map_type(types[0], &quote!(#mode), self_ty);
                    return quote!(<#inner as ::netref::typed::HasProxy>::Proxy<#mode>);
                }
                // A stream the owner lends is pulled by the client, and the other way round.
                if a.args.len() == 1 && types.len() == 1 {
                    let item = map_type(types[0], mode, self_ty);
                    if last.ident == "Stream" {
                        return quote!(::netref::RemoteStream<#item>);
                    }
                    if last.ident == "RemoteStream" {
                        return quote!(::netref::Stream<#item>);
                    }
                }
                let mut path = p.path.clone();
                let last = path.segments.last_mut().expect("checked above");
                if let PathArguments::AngleBracketed(a) = &mut last.arguments {
                    for arg in a.args.iter_mut() {
                        if let GenericArgument::Type(t) = arg {
                            let mapped = map_type(t, mode, self_ty);
                            *t = Type::Verbatim(mapped);
                        }
                    }
                }
                return quote!(#path);
            }
            quote!(#ty)
        }
        Type::Tuple(t) => {
            let elems = t.elems.iter().map(|e| map_type(e, mode, self_ty));
            if t.elems.len() == 1 {
                quote!((#(#elems,)*))
            } else {
                quote!((#(#elems),*))
            }
        }
        Type::Array(a) => {
            let elem = map_type(&a.elem, mode, self_ty);
            let len = &a.len;
            quote!([#elem; #len])
        }
        Type::Slice(s) => {
            let elem = map_type(&s.elem, mode, self_ty);
            quote!([#elem])
        }
        Type::Paren(p) => map_type(&p.elem, mode, self_ty),
        Type::Group(g) => map_type(&g.elem, mode, self_ty),
        // A borrowed result (`&'static str`) arrives owned.
        Type::Reference(r) => match &*r.elem {
            Type::Path(p) if p.qself.is_none() && p.path.is_ident("str") => {
                quote!(::std::string::String)
            }
            Type::Slice(s) => {
                let elem = map_type(&s.elem, mode, self_ty);
                quote!(::std::vec::Vec<#elem>)
            }
            elem => map_type(elem, mode, self_ty),
        },
        other => quote!(#other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(ty: Type) -> String {
        map_type(&ty, &quote!(M), None).to_string().replace(' ', "")
    }

    #[test]
    fn objects_become_proxies_anywhere_in_a_type() {
        use syn::parse_quote as q;
        assert_eq!(mapped(q!(i64)), "i64");
        assert_eq!(
            mapped(q!(Obj<Counter>)),
            "<Counteras::netref::typed::HasProxy>::Proxy<M>"
        );
        assert_eq!(
            mapped(q!(Vec<netref::Obj<Counter>>)),
            "Vec<<Counteras::netref::typed::HasProxy>::Proxy<M>>"
        );
        assert_eq!(mapped(q!(&'static str)), "::std::string::String");
        assert_eq!(mapped(q!(netref::Stream<u8>)), "::netref::RemoteStream<u8>");
        assert_eq!(mapped(q!(RemoteStream<u8>)), "::netref::Stream<u8>");
        assert_eq!(mapped(q!(&'static [u8])), "::std::vec::Vec<u8>");
        assert_eq!(
            mapped(q!((Obj<A>, String))),
            "(<Aas::netref::typed::HasProxy>::Proxy<M>,String)"
        );
    }

    #[test]
    fn proxy_parameters_are_recognised() {
        use syn::parse_quote as q;
        assert!(is_dynamic_proxy(&q!(Proxy)));
        assert!(is_dynamic_proxy(&q!(netref::Proxy)));
        assert!(!is_dynamic_proxy(&q!(blocking::Proxy)));
        assert!(!is_dynamic_proxy(&q!(LabProxy)));
        assert!(!is_dynamic_proxy(&q!(Option<Proxy>)));
    }

    #[test]
    fn ok_types() {
        use syn::parse_quote as q;
        let ty: Type = q!(netref::Result<Vec<u8>>);
        let ok = ok_type(&ty).map(|t| quote!(#t).to_string().replace(' ', ""));
        assert_eq!(ok.as_deref(), Some("Vec<u8>"));
        let alias: Type = q!(MyResult);
        assert!(ok_type(&alias).is_none());
    }
}

//! Stage 3: write the `impl netref::__private::Object` block for a checked model.
//!
//! Generated code names only `::netref` paths (plus `::core`/`::std`), so users need no
//! dependency but `netref`. Handlers are called as `Self::name(&*self, ...)`: the path form
//! always reaches the inherent method, even when a trait in scope (or `Object` itself) has a
//! method of the same name.

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::ItemImpl;

use crate::check::{Handler, Kind, Member, Model, Output};
use crate::render::type_text;

/// How the dispatcher reaches the handlers.
pub(crate) struct Dispatch {
    /// `impl<...> ::netref::__private::Object for Type`.
    pub(crate) header: TokenStream,
    /// The path the handlers are called through: `Self` (inherent methods) or `<T as Trait>`.
    pub(crate) callee: TokenStream,
    /// The `&` expression handlers take as `self`, given `self: Arc<Self>`.
    pub(crate) receiver: TokenStream,
}

/// The block as written (markers already removed) followed by its `Object` impl.
pub(crate) fn expand(item: &ItemImpl, model: &Model) -> TokenStream {
    let self_ty = &item.self_ty;
    let dispatch = Dispatch {
        header: quote!(impl ::netref::__private::Object for #self_ty),
        callee: quote!(Self),
        receiver: quote!(&*self),
    };
    let object = object_impl(&dispatch, model);
    quote! {
        #item

        #object
    }
}

/// The `Object` impl serving `model` through `dispatch`.
pub(crate) fn object_impl(dispatch: &Dispatch, model: &Model) -> TokenStream {
    let header = &dispatch.header;
    let type_name = &model.type_name;
    let type_doc = &model.doc;
    let infos = model.members.iter().map(member_info);
    let (index_consts, indices) = indices(&model.members);
    let arms = model
        .members
        .iter()
        .zip(indices)
        .map(|(member, index)| member_arms(index, member, dispatch));

    quote! {
        #header {
            fn type_info(&self) -> &'static ::netref::__private::TypeInfo {
                static INFO: ::netref::__private::TypeInfo = ::netref::__private::TypeInfo {
                    name: #type_name,
                    doc: #type_doc,
                    members: &[#(#infos),*],
                    call: ::core::option::Option::None,
                };
                &INFO
            }

            fn invoke(
                self: ::netref::__private::Arc<Self>,
                member: usize,
                inv: ::netref::__private::Invocation,
            ) -> ::netref::__private::Reply {
                #(#index_consts)*
                match (member, inv) {
                    #(#arms)*
                    (member, _) => ::netref::__private::Reply::Ready(
                        ::core::result::Result::Err(
                            ::netref::__private::bad_invocation(#type_name, member),
                        ),
                    ),
                }
            }

            fn as_any(
                self: ::netref::__private::Arc<Self>,
            ) -> ::netref::__private::Arc<
                dyn ::core::any::Any + ::core::marker::Send + ::core::marker::Sync,
            > {
                self
            }
        }
    }
}

/// `#[cfg(...)]` attributes for `predicates`.
fn cfg_attrs<'a>(predicates: impl IntoIterator<Item = &'a TokenStream>) -> TokenStream {
    let predicates = predicates.into_iter();
    quote!(#(#[cfg(#predicates)])*)
}

/// True when all `predicates` hold, as a constant expression.
fn cfg_holds(predicates: &[TokenStream]) -> TokenStream {
    if predicates.is_empty() {
        quote!(true)
    } else {
        quote!(::core::cfg!(all(#(#predicates),*)))
    }
}

/// The `match` pattern for each member's index, and the constants some of them need.
///
/// A member's index is its position in the `members` array *as compiled*: when an earlier
/// member has `#[cfg(...)]`, the index depends on the configuration and becomes a constant
/// (itself present only when its member is) that counts the earlier members compiled in.
fn indices(members: &[Member]) -> (Vec<TokenStream>, Vec<TokenStream>) {
    let mut consts = Vec::new();
    let mut patterns = Vec::new();
    for (i, member) in members.iter().enumerate() {
        let earlier = &members[..i];
        if earlier.iter().all(|m| m.handler().cfgs.is_empty()) {
            patterns.push(Literal::usize_unsuffixed(i).to_token_stream());
            continue;
        }
        let name = format_ident!("__NETREF_MEMBER_{}", i);
        let counts = earlier.iter().map(|m| {
            let cfgs = &m.handler().cfgs;
            if cfgs.is_empty() {
                quote!(1)
            } else {
                quote!((::core::cfg!(all(#(#cfgs),*)) as usize))
            }
        });
        let cfgs = cfg_attrs(&member.handler().cfgs);
        consts.push(quote! {
            #cfgs
            const #name: usize = 0 #(+ #counts)*;
        });
        patterns.push(name.to_token_stream());
    }
    (consts, patterns)
}

/// The static `MemberInfo` of one member.
fn member_info(member: &Member) -> TokenStream {
    let name = &member.name;
    let doc = &member.doc;
    let cfgs = cfg_attrs(&member.handler().cfgs);
    let (kind, signature) = match &member.kind {
        Kind::Method(handler) => (
            quote!(::netref::__private::MemberKind::Method),
            method_signature(name, handler),
        ),
        Kind::Property { getter, setter } => {
            let settable = match setter {
                Some(setter) => cfg_holds(&setter.cfgs),
                None => quote!(false),
            };
            let ty = getter.output.ty().map(type_text).unwrap_or_default();
            (
                quote!(::netref::__private::MemberKind::Property { settable: #settable }),
                format!("{name}: {ty}"),
            )
        }
    };
    quote! {
        #cfgs
        ::netref::__private::MemberInfo {
            name: #name,
            kind: #kind,
            signature: #signature,
            doc: #doc,
        }
    }
}

/// `name(a: A, b: B) -> R`, without `-> ()`.
fn method_signature(name: &str, handler: &Handler) -> String {
    let params: Vec<String> = handler
        .params
        .iter()
        .map(|p| format!("{}: {}", p.name, type_text(&p.ty)))
        .collect();
    let mut signature = format!("{name}({})", params.join(", "));
    if let Some(ty) = handler.output.ty() {
        signature.push_str(" -> ");
        signature.push_str(&type_text(ty));
    }
    signature
}

/// The `match` arms that serve one member.
///
/// A plain `fn` handler runs inside the arm: its arguments are decoded, it is called and its
/// result encoded before `invoke` returns, as a `Reply::Ready`. An `async fn` handler's arm
/// returns a `Reply::Later` whose future does all of that when polled.
fn member_arms(index: TokenStream, member: &Member, dispatch: &Dispatch) -> TokenStream {
    let cfgs = cfg_attrs(&member.handler().cfgs);
    match &member.kind {
        Kind::Method(handler) => {
            let vars: Vec<_> = (0..handler.params.len())
                .map(|i| format_ident!("__arg{}", i))
                .collect();
            let takes = handler
                .params
                .iter()
                .zip(&vars)
                .enumerate()
                .map(|(i, (p, var))| {
                    let ty = &p.ty;
                    let name = &p.name;
                    let i = Literal::usize_unsuffixed(i);
                    // Spanned at the type: "`T` cannot be deserialized" points there.
                    let take = quote_spanned!(ty.span()=> __args.take(#i, #name));
                    let take = try_or_reply(handler, take);
                    quote!(let #var: #ty = #take;)
                });
            let args_binding = if vars.is_empty() {
                quote!(__args)
            } else {
                quote!(mut __args)
            };
            // Named arguments are checked against every parameter first, so a misspelt
            // keyword is reported as itself, not as the parameter it failed to fill.
            let names = handler.params.iter().map(|p| &p.name);
            let expect = try_or_reply(handler, quote!(__args.expect_names(&[#(#names),*])));
            let finish = try_or_reply(handler, quote!(__args.finish()));
            let reply = call_and_reply(handler, &vars, dispatch);
            let body = quote! {
                #expect;
                #(#takes)*
                #finish;
                #reply
            };
            let reply = in_reply(handler, body);
            quote! {
                #cfgs
                (#index, ::netref::__private::Invocation::Call(#args_binding)) => { #reply }
            }
        }
        Kind::Property { getter, setter } => {
            let get = in_reply(getter, call_and_reply(getter, &[], dispatch));
            let set = setter.as_ref().map(|setter| {
                let var = format_ident!("__arg0");
                let ty = setter.params.first().map(|p| &p.ty);
                let decode = match ty {
                    Some(ty) => {
                        quote_spanned!(ty.span()=> ::netref::__private::from_value(__value))
                    }
                    None => quote!(::netref::__private::from_value(__value)),
                };
                let message = format!("property `{}`: ", member.name);
                let decode = try_or_reply(
                    setter,
                    quote! {
                        #decode.map_err(|e| {
                            let detail = match e {
                                ::netref::Error::Value(detail) => detail,
                                other => ::std::string::ToString::to_string(&other),
                            };
                            ::netref::Error::remote(
                                ::netref::ErrorKind::BadArguments,
                                ::std::format!("{}{}", #message, detail),
                            )
                        })
                    },
                );
                let reply = call_and_reply(setter, std::slice::from_ref(&var), dispatch);
                let reply = in_reply(
                    setter,
                    quote! {
                        let #var: #ty = #decode;
                        #reply
                    },
                );
                let cfgs = cfg_attrs(getter.cfgs.iter().chain(&setter.cfgs));
                quote! {
                    #cfgs
                    (#index, ::netref::__private::Invocation::Set(__value)) => { #reply }
                }
            });
            quote! {
                #cfgs
                (#index, ::netref::__private::Invocation::Get) => { #get }
                #set
            }
        }
    }
}

/// The `Reply` of an arm whose statements `body` end in the handler's result: `Ready` with
/// the result, run now, for a plain `fn`; `Later` with a future running `body` for an
/// `async fn`.
fn in_reply(handler: &Handler, body: TokenStream) -> TokenStream {
    if handler.is_async {
        quote! {
            ::netref::__private::Reply::later(async move { #body })
        }
    } else {
        quote! {
            ::netref::__private::Reply::Ready({ #body })
        }
    }
}

/// `result?` for an `async fn` handler's future; for a plain `fn`, the same early exit as a
/// `return` of the error from `invoke` as a ready reply.
fn try_or_reply(handler: &Handler, result: TokenStream) -> TokenStream {
    if handler.is_async {
        quote!(#result?)
    } else {
        quote! {
            match #result {
                ::core::result::Result::Ok(__ok) => __ok,
                ::core::result::Result::Err(__err) => {
                    return ::netref::__private::Reply::Ready(::core::result::Result::Err(__err));
                }
            }
        }
    }
}

/// Calls the handler on `self` with `vars` and turns its return into the reply.
fn call_and_reply(handler: &Handler, vars: &[Ident], dispatch: &Dispatch) -> TokenStream {
    let ident = &handler.ident;
    let wait = handler.is_async.then(|| quote!(.await));
    let callee = &dispatch.callee;
    let receiver = &dispatch.receiver;
    let call = quote!(#callee::#ident(#receiver, #(#vars),*) #wait);
    // The reply's argument is spanned at the return type, so that "`T` cannot be serialized"
    // points there rather than at `#[expose]`.
    match &handler.output {
        Output::Unit => quote! {
            #call;
            ::netref::__private::reply(())
        },
        Output::Value(ty) => {
            let r = Ident::new("__reply", ty.span());
            quote! {
                let #r = #call;
                ::netref::__private::reply(#r)
            }
        }
        Output::Result(ty) => {
            let r = Ident::new("__reply", ty.span());
            quote! {
                let #r = #call;
                ::netref::__private::reply_result(#r)
            }
        }
    }
}

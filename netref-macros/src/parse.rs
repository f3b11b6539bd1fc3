//! Stage 1: read the `impl` block and the `#[exposed(...)]` markers on its functions.
//!
//! Markers are removed from the block as they are read, so the block can be emitted as is
//! whatever the later stages find. Malformed markers are reported and read as far as they
//! make sense, so that one typo does not hide the other problems.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ImplItem, ImplItemFn, Item, ItemImpl, Lit, LitStr, Meta};

/// The attribute that marks an exposed member.
const MARKER: &str = "exposed";

/// The options `#[exposed(...)]` accepts, for error messages.
const OPTIONS: &str =
    "`property`, `setter`, `setter = \"property\"`, `name = \"remote_name\"` or `oneway`";

/// The `impl` block with its markers read (and removed from `item`).
pub(crate) struct Parsed {
    /// The block as it will be emitted: everything but the markers.
    pub(crate) item: ItemImpl,
    /// The marked functions, in source order.
    pub(crate) marked: Vec<Marked>,
}

/// A function carrying a marker.
pub(crate) struct Marked {
    /// The function as written (markers removed).
    pub(crate) func: ImplItemFn,
    /// What the marker asks for.
    pub(crate) marker: Marker,
    /// The predicates of the function's `#[cfg(...)]` attributes: the member exists only
    /// when they all hold.
    pub(crate) cfgs: Vec<TokenStream>,
}

/// What a marker asks for.
pub(crate) enum Marker {
    /// `#[exposed]` or `#[exposed(name = "...")]`, with `oneway` when the typed client sends
    /// it as a one-way call.
    Method { name: Option<LitStr>, oneway: bool },
    /// `#[exposed(property)]`, optionally with `name = "..."`.
    Property { name: Option<LitStr> },
    /// `#[exposed(setter)]` or `#[exposed(setter = "property")]`.
    Setter { property: Option<LitStr> },
}

/// Parses the macro input. On `Err`, the input was not an `impl` block and is handed back
/// unchanged for emission after the errors.
pub(crate) fn parse(
    args: TokenStream,
    item: TokenStream,
    errors: &mut Vec<syn::Error>,
) -> Result<Parsed, TokenStream> {
    if !args.is_empty() {
        errors.push(syn::Error::new_spanned(
            &args,
            "#[expose] takes no arguments; mark members with #[exposed(...)] instead",
        ));
    }
    let mut item = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Impl(item)) => item,
        Ok(other) => {
            errors.push(syn::Error::new_spanned(
                other,
                "#[expose] goes on an `impl` block or a trait: `#[expose] impl MyType { ... }`",
            ));
            return Err(item);
        }
        Err(e) => {
            errors.push(e);
            return Err(item);
        }
    };

    let mut marked = Vec::new();
    for impl_item in &mut item.items {
        match impl_item {
            ImplItem::Fn(func) => {
                reject_cfg_attr_marker(&mut func.attrs, errors);
                if let Some(marker) = take_marker(&mut func.attrs, errors) {
                    marked.push(Marked {
                        cfgs: cfg_predicates(&func.attrs),
                        func: func.clone(),
                        marker,
                    });
                }
            }
            ImplItem::Const(c) => reject_marker(&mut c.attrs, errors),
            ImplItem::Type(t) => reject_marker(&mut t.attrs, errors),
            ImplItem::Macro(m) => reject_marker(&mut m.attrs, errors),
            _ => {}
        }
    }
    Ok(Parsed { item, marked })
}

/// Removes the markers from `attrs` and reads the first one.
pub(crate) fn take_marker(
    attrs: &mut Vec<Attribute>,
    errors: &mut Vec<syn::Error>,
) -> Option<Marker> {
    let mut found = None;
    for attr in take_marker_attrs(attrs) {
        if found.is_some() {
            errors.push(syn::Error::new_spanned(
                &attr,
                "duplicate #[exposed] marker; put all options in one: #[exposed(property, name = \"x\")]",
            ));
            continue;
        }
        found = Some(read_marker(&attr, errors));
    }
    found
}

/// Reports and removes markers on items that are not functions.
pub(crate) fn reject_marker(attrs: &mut Vec<Attribute>, errors: &mut Vec<syn::Error>) {
    for attr in take_marker_attrs(attrs) {
        errors.push(syn::Error::new_spanned(
            attr,
            "#[exposed] goes on methods (`fn`) only",
        ));
    }
}

/// The predicates of the `#[cfg(...)]` attributes in `attrs`.
///
/// rustc does not evaluate `cfg` on the items inside the block before running the macro, so
/// the expansion carries them over to everything it generates for the member.
pub(crate) fn cfg_predicates(attrs: &[Attribute]) -> Vec<TokenStream> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .filter_map(|a| match &a.meta {
            Meta::List(list) => Some(list.tokens.clone()),
            _ => None,
        })
        .collect()
}

/// Reports and removes `#[cfg_attr(..., exposed...)]`: a conditional marker on an
/// unconditional function cannot be seen before `cfg_attr` is evaluated, which happens after
/// this macro runs.
pub(crate) fn reject_cfg_attr_marker(attrs: &mut Vec<Attribute>, errors: &mut Vec<syn::Error>) {
    attrs.retain(|attr| {
        if !attr.path().is_ident("cfg_attr") {
            return true;
        }
        let Ok(parts) = attr
            .parse_args_with(syn::punctuated::Punctuated::<Meta, syn::Token![,]>::parse_terminated)
        else {
            return true;
        };
        let Some(marker) = parts.iter().skip(1).find(|m| m.path().is_ident(MARKER)) else {
            return true;
        };
        errors.push(syn::Error::new_spanned(
            marker,
            "#[exposed] cannot be applied through #[cfg_attr]; put #[cfg(...)] on the \
             function to make the member conditional",
        ));
        false
    });
}

fn take_marker_attrs(attrs: &mut Vec<Attribute>) -> Vec<Attribute> {
    let (markers, rest) = std::mem::take(attrs)
        .into_iter()
        .partition(|a| a.path().is_ident(MARKER));
    *attrs = rest;
    markers
}

/// Reads one marker's options, reporting malformed ones and keeping what makes sense.
fn read_marker(attr: &Attribute, errors: &mut Vec<syn::Error>) -> Marker {
    let list = match &attr.meta {
        Meta::Path(_) => {
            return Marker::Method {
                name: None,
                oneway: false,
            }
        }
        Meta::NameValue(nv) => {
            errors.push(syn::Error::new_spanned(
                nv,
                format!("expected #[exposed] or #[exposed(...)] with options {OPTIONS}"),
            ));
            return Marker::Method {
                name: None,
                oneway: false,
            };
        }
        Meta::List(list) => list,
    };

    let mut property: Option<Span> = None;
    let mut setter: Option<(Span, Option<LitStr>)> = None;
    let mut name: Option<LitStr> = None;
    let mut oneway: Option<Span> = None;
    let result = list.parse_nested_meta(|meta| {
        let span = meta.path.span();
        let duplicate = || syn::Error::new(span, "this option is given twice");
        if meta.path.is_ident("property") {
            if property.is_some() {
                return Err(duplicate());
            }
            property = Some(span);
        } else if meta.path.is_ident("setter") {
            if setter.is_some() {
                return Err(duplicate());
            }
            let target = if meta.input.peek(syn::Token![=]) {
                Some(meta.value()?.parse::<LitStr>()?)
            } else {
                None
            };
            setter = Some((span, target));
        } else if meta.path.is_ident("oneway") {
            if oneway.is_some() {
                return Err(duplicate());
            }
            oneway = Some(span);
        } else if meta.path.is_ident("name") {
            if name.is_some() {
                return Err(duplicate());
            }
            name = Some(string_value(meta.value()?.parse::<Expr>()?)?);
        } else {
            let option = quote::ToTokens::to_token_stream(&meta.path).to_string();
            return Err(meta.error(format!(
                "unknown option `{}` for #[exposed]; expected {OPTIONS}",
                option.replace(' ', "")
            )));
        }
        Ok(())
    });
    if let Err(e) = result {
        errors.push(e);
    }

    if let (Some(span), true) = (oneway, property.is_some() || setter.is_some()) {
        errors.push(syn::Error::new(
            span,
            "`oneway` applies to methods only: a property read or write waits for its answer",
        ));
    }
    match (property, setter) {
        (Some(_), Some((span, _))) => {
            errors.push(syn::Error::new(
                span,
                "a function is either a property getter or a setter, not both",
            ));
            Marker::Property { name }
        }
        (Some(_), None) => Marker::Property { name },
        (None, Some((_, property))) => {
            if let Some(name) = name {
                errors.push(syn::Error::new(
                    name.span(),
                    "`name` does not apply to setters; name the property with `setter = \"property\"`",
                ));
            }
            Marker::Setter { property }
        }
        (None, None) => Marker::Method {
            name,
            oneway: oneway.is_some(),
        },
    }
}

/// A string literal option value.
fn string_value(expr: Expr) -> syn::Result<LitStr> {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s),
        other => Err(syn::Error::new_spanned(
            other,
            "expected a string literal: name = \"remote_name\"",
        )),
    }
}

/// The doc comment in `attrs` (`///` lines or `#[doc = "..."]`), one leading space stripped
/// per line, lines joined with `\n`, trimmed.
pub(crate) fn doc_text(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs {
        if !attr.path().is_ident("doc") {
            continue;
        }
        let Meta::NameValue(nv) = &attr.meta else {
            continue;
        };
        let Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) = &nv.value
        else {
            continue;
        };
        let value = s.value();
        for line in value.split('\n') {
            lines.push(line.strip_prefix(' ').unwrap_or(line).trim_end().to_owned());
        }
    }
    lines.join("\n").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_lines_lose_one_leading_space_and_the_whole_is_trimmed() {
        let item: ItemImpl = syn::parse_quote! {
            /// First line.
            ///   indented
            ///
            #[doc = "last"]
            #[doc(hidden)]
            impl T {}
        };
        assert_eq!(doc_text(&item.attrs), "First line.\n  indented\n\nlast");
    }

    #[test]
    fn markers_are_read_and_removed() {
        let mut errors = Vec::new();
        let parsed = parse(
            TokenStream::new(),
            quote::quote! {
                impl T {
                    #[exposed]
                    fn a(&self) {}
                    #[exposed(property, name = "bee")]
                    fn b(&self) -> i64 { 1 }
                    #[exposed(setter = "bee")]
                    fn c(&self, v: i64) {}
                    fn d(&self) {}
                }
            },
            &mut errors,
        )
        .unwrap_or_else(|_| panic!("an impl block"));
        assert!(errors.is_empty());
        assert_eq!(parsed.marked.len(), 3);
        assert!(matches!(
            parsed.marked[0].marker,
            Marker::Method {
                name: None,
                oneway: false
            }
        ));
        assert!(
            matches!(&parsed.marked[1].marker, Marker::Property { name: Some(n) } if n.value() == "bee")
        );
        assert!(
            matches!(&parsed.marked[2].marker, Marker::Setter { property: Some(p) } if p.value() == "bee")
        );
        let out = quote::ToTokens::to_token_stream(&parsed.item).to_string();
        assert!(!out.contains("exposed"), "{out}");
    }

    #[test]
    fn bad_options_are_reported() {
        let mut errors = Vec::new();
        let _ = parse(
            TokenStream::new(),
            quote::quote! {
                impl T {
                    #[exposed(prop)]
                    fn a(&self) {}
                    #[exposed(property, setter)]
                    fn b(&self) -> i64 { 1 }
                    #[exposed = "x"]
                    fn c(&self) {}
                    #[exposed]
                    #[exposed]
                    fn d(&self) {}
                    #[exposed]
                    const X: i32 = 1;
                }
            },
            &mut errors,
        );
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 5, "{messages:#?}");
        assert!(messages[0].contains("unknown option `prop`"));
    }
}

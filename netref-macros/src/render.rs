//! Compact, readable text for types in member signatures: `Vec<String>`, `&'a str`,
//! `Box<dyn Fn(i64) -> i64 + Send>`, `[u8; 4]`, `(String, Value)`.
//!
//! `TokenStream::to_string` puts spaces between all tokens (`Vec < String >`); this printer
//! joins tokens the way people write types.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use syn::Type;

/// The type as a person would write it.
pub(crate) fn type_text(ty: &Type) -> String {
    tokens_text(ty.to_token_stream())
}

/// One printable unit: a word (identifier, literal, lifetime), an operator (consecutive
/// joint punctuation) or a delimited group, already printed.
enum Atom {
    Word(String),
    Op(String),
    Group(String),
}

fn tokens_text(tokens: TokenStream) -> String {
    let atoms = atoms(tokens);
    let mut out = String::new();
    for (i, atom) in atoms.iter().enumerate() {
        if i > 0 && space_between(&atoms[i - 1], atom) {
            out.push(' ');
        }
        match atom {
            Atom::Word(s) | Atom::Op(s) | Atom::Group(s) => out.push_str(s),
        }
    }
    out
}

fn atoms(tokens: TokenStream) -> Vec<Atom> {
    let mut out = Vec::new();
    let mut iter = tokens.into_iter().peekable();
    while let Some(tree) = iter.next() {
        let atom = match tree {
            TokenTree::Ident(i) => Atom::Word(i.to_string()),
            TokenTree::Literal(l) => Atom::Word(l.to_string()),
            TokenTree::Group(g) => {
                let inner = tokens_text(g.stream());
                match g.delimiter() {
                    Delimiter::Parenthesis => Atom::Group(format!("({inner})")),
                    Delimiter::Bracket => Atom::Group(format!("[{inner}]")),
                    Delimiter::Brace => Atom::Group(format!("{{{inner}}}")),
                    Delimiter::None => Atom::Word(inner),
                }
            }
            TokenTree::Punct(p) => {
                if p.as_char() == '\'' {
                    if let Some(TokenTree::Ident(name)) = iter.peek() {
                        let lifetime = format!("'{name}");
                        iter.next();
                        out.push(Atom::Word(lifetime));
                        continue;
                    }
                }
                let mut op = p.as_char().to_string();
                let mut spacing = p.spacing();
                while spacing == Spacing::Joint {
                    match iter.peek() {
                        Some(TokenTree::Punct(q)) if q.as_char() != '\'' => {
                            op.push(q.as_char());
                            spacing = q.spacing();
                            iter.next();
                        }
                        _ => break,
                    }
                }
                Atom::Op(op)
            }
        };
        out.push(atom);
    }
    out
}

/// Operators written with a space on both sides.
fn is_spaced(op: &str) -> bool {
    matches!(op, "=" | "+" | "->" | "=>")
}

fn space_between(prev: &Atom, next: &Atom) -> bool {
    match (prev, next) {
        (Atom::Word(_), Atom::Word(_)) => true,
        // `&mut [u8]`, `dyn ?Sized`, `&mut &T`, `impl (Trait)`
        (Atom::Word(w), _) if matches!(w.as_str(), "mut" | "dyn" | "impl" | "const") => true,
        (Atom::Op(op), _) if is_spaced(op) || matches!(op.as_str(), "," | ";" | ":") => true,
        (_, Atom::Op(op)) if is_spaced(op) => true,
        // `for<'a> fn(..)`, `impl<T> X`
        (Atom::Op(op), Atom::Word(_)) if op.ends_with('>') => true,
        // `&'a [u8]`, but `Fn(i64)` and `fn(i64)`
        (Atom::Word(w), Atom::Group(_)) => w.starts_with('\''),
        (Atom::Group(_), Atom::Word(_)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(ty: Type) -> String {
        type_text(&ty)
    }

    #[test]
    fn types_print_compactly() {
        use syn::parse_quote as q;
        assert_eq!(text(q!(i64)), "i64");
        assert_eq!(text(q!(Vec<String>)), "Vec<String>");
        assert_eq!(text(q!(Option<Vec<Option<u8>>>)), "Option<Vec<Option<u8>>>");
        assert_eq!(
            text(q!(std::result::Result<i64, Refused>)),
            "std::result::Result<i64, Refused>"
        );
        assert_eq!(text(q!(&'a str)), "&'a str");
        assert_eq!(text(q!(&mut [u8])), "&mut [u8]");
        assert_eq!(text(q!(&'static [u8])), "&'static [u8]");
        assert_eq!(text(q!([u8; 4])), "[u8; 4]");
        assert_eq!(text(q!((String, Value))), "(String, Value)");
        assert_eq!(text(q!(())), "()");
        assert_eq!(text(q!((i32,))), "(i32,)");
        assert_eq!(
            text(q!(Box<dyn Fn(i64) -> i64 + Send + 'static>)),
            "Box<dyn Fn(i64) -> i64 + Send + 'static>"
        );
        assert_eq!(text(q!(*const T)), "*const T");
        assert_eq!(text(q!(<T as Trait>::Assoc)), "<T as Trait>::Assoc");
        assert_eq!(
            text(q!(impl Iterator<Item = u8>)),
            "impl Iterator<Item = u8>"
        );
        assert_eq!(
            text(q!(for<'a> fn(&'a str) -> bool)),
            "for<'a> fn(&'a str) -> bool"
        );
        assert_eq!(text(q!(Box<dyn ?Sized + Send>)), "Box<dyn ?Sized + Send>");
    }
}

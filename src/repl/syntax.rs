//! The REPL's expression language: tokens, syntax tree and parser.
//!
//! ```text
//! input     := stmt (';' stmt)*
//! stmt      := 'del' NAME (',' NAME)* | postfix '=' expr | expr
//! expr      := '-' expr | postfix
//! postfix   := primary ('.' NAME | '(' args ')' | '[' expr ']')*
//! primary   := literal | NAME | '(' expr ')' | '[' exprs ']' | '{' entries '}'
//! args      := (arg (',' arg)*)? ','?        arg := NAME '=' expr | expr
//! entries   := (key ':' expr (',' ...)*)? ','?  key := NAME | expr
//! literal   := 12 | 1.5 | 1e3 | "text" | 'text' | b"bytes" | true | false | nil
//! ```
//!
//! `#` starts a comment. Newlines are plain white space, so an open bracket continues the
//! input on the next line.

use crate::value::Value;

/// A token and where it starts and ends (byte offsets).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// A token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Name(String),
    Lit(Value),
    /// One of `. , ( ) [ ] { } : = - ;`.
    Punct(char),
}

/// A syntax error, with the byte offset it was found at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError {
    pub(crate) message: String,
    pub(crate) pos: usize,
    /// True when more input could complete it (an open string or bracket, a trailing `=`).
    pub(crate) incomplete: bool,
}

fn err(message: impl Into<String>, pos: usize) -> SyntaxError {
    SyntaxError {
        message: message.into(),
        pos,
        incomplete: false,
    }
}

/// Splits `src` into tokens.
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, SyntaxError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' | b'\'' => {
                let (s, end) = string(src, i)?;
                out.push(Token {
                    tok: Tok::Lit(Value::Str(s)),
                    start,
                    end,
                });
                i = end;
            }
            b'b' if matches!(bytes.get(i + 1), Some(b'"' | b'\'')) => {
                let (b, end) = byte_string(src, i + 1)?;
                out.push(Token {
                    tok: Tok::Lit(Value::Bytes(b)),
                    start,
                    end,
                });
                i = end;
            }
            b'0'..=b'9' => {
                let (v, end) = number(src, i)?;
                out.push(Token {
                    tok: Tok::Lit(v),
                    start,
                    end,
                });
                i = end;
            }
            c if c == b'_' || c.is_ascii_alphabetic() => {
                while i < bytes.len() && (bytes[i] == b'_' || bytes[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
                let word = &src[start..i];
                let tok = match word {
                    "true" => Tok::Lit(Value::Bool(true)),
                    "false" => Tok::Lit(Value::Bool(false)),
                    "nil" => Tok::Lit(Value::Nil),
                    _ => Tok::Name(word.to_owned()),
                };
                out.push(Token { tok, start, end: i });
            }
            b'.' | b',' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b':' | b'=' | b'-' | b';' => {
                out.push(Token {
                    tok: Tok::Punct(c as char),
                    start,
                    end: i + 1,
                });
                i += 1;
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(err(format!("unexpected character {ch:?}"), i));
            }
        }
    }
    Ok(out)
}

fn unterminated(pos: usize) -> SyntaxError {
    SyntaxError {
        message: "unterminated string".into(),
        pos,
        incomplete: true,
    }
}

/// Reads a string literal starting at the quote at `start`; returns it and the end offset.
fn string(src: &str, start: usize) -> Result<(String, usize), SyntaxError> {
    let quote = src.as_bytes()[start] as char;
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        let at = start + 1 + off;
        match c {
            c if c == quote => return Ok((out, at + 1)),
            '\\' => {
                let Some((_, e)) = chars.next() else {
                    return Err(unterminated(start));
                };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '0' => out.push('\0'),
                    '\\' | '"' | '\'' => out.push(e),
                    'u' => {
                        let rest = &src[at + 2..];
                        let close = rest
                            .strip_prefix('{')
                            .and_then(|r| r.find('}'))
                            .ok_or_else(|| err("expected \\u{HEX}", at))?;
                        let hex = &rest[1..close + 1];
                        let ch = u32::from_str_radix(hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| err(format!("bad escape \\u{{{hex}}}"), at))?;
                        out.push(ch);
                        for _ in 0..close + 2 {
                            chars.next();
                        }
                    }
                    'x' => {
                        let hex = src.get(at + 2..at + 4).unwrap_or("");
                        let b = u8::from_str_radix(hex, 16)
                            .ok()
                            .filter(u8::is_ascii)
                            .ok_or_else(|| err("\\x in a string takes 00 to 7f", at))?;
                        out.push(b as char);
                        chars.next();
                        chars.next();
                    }
                    other => return Err(err(format!("unknown escape \\{other}"), at)),
                }
            }
            c => out.push(c),
        }
    }
    Err(unterminated(start))
}

/// Reads a byte string whose quote is at `start`.
fn byte_string(src: &str, start: usize) -> Result<(Vec<u8>, usize), SyntaxError> {
    let bytes = src.as_bytes();
    let quote = bytes[start];
    let mut out = Vec::new();
    let mut i = start + 1;
    while i < bytes.len() {
        let c = bytes[i];
        if c == quote {
            return Ok((out, i + 1));
        }
        if c == b'\\' {
            let Some(&e) = bytes.get(i + 1) else {
                return Err(unterminated(start - 1));
            };
            match e {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'0' => out.push(0),
                b'\\' | b'"' | b'\'' => out.push(e),
                b'x' => {
                    let hex = src.get(i + 2..i + 4).unwrap_or("");
                    let b = u8::from_str_radix(hex, 16)
                        .map_err(|_| err("expected two hex digits after \\x", i))?;
                    out.push(b);
                    i += 2;
                }
                other => {
                    return Err(err(format!("unknown escape \\{}", other as char), i));
                }
            }
            i += 2;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Err(unterminated(start - 1))
}

/// Reads a number: an integer, or a float with a fraction or an exponent.
fn number(src: &str, start: usize) -> Result<(Value, usize), SyntaxError> {
    let bytes = src.as_bytes();
    let mut i = start;
    let digits = |i: &mut usize| {
        while *i < bytes.len() && (bytes[*i].is_ascii_digit() || bytes[*i] == b'_') {
            *i += 1;
        }
    };
    digits(&mut i);
    let mut float = false;
    if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
        float = true;
        i += 1;
        digits(&mut i);
    }
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        let mut j = i + 1;
        if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
            j += 1;
        }
        if j < bytes.len() && bytes[j].is_ascii_digit() {
            float = true;
            i = j;
            digits(&mut i);
        }
    }
    if i < bytes.len() && (bytes[i] == b'_' || bytes[i].is_ascii_alphabetic()) {
        return Err(err("a name cannot start with a digit", start));
    }
    let text: String = src[start..i].chars().filter(|c| *c != '_').collect();
    let v = if float {
        Value::Float(
            text.parse()
                .map_err(|_| err(format!("bad number {text}"), start))?,
        )
    } else if let Ok(n) = text.parse::<i64>() {
        Value::Int(n)
    } else if let Ok(n) = text.parse::<u64>() {
        Value::UInt(n)
    } else {
        return Err(err(format!("{text} does not fit in 64 bits"), start));
    };
    Ok((v, i))
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Lit(Value),
    Var(String),
    Attr(Box<Expr>, String),
    Call(Box<Expr>, Vec<Arg>),
    Index(Box<Expr>, Box<Expr>),
    List(Vec<Expr>),
    Map(Vec<(Expr, Expr)>),
    Neg(Box<Expr>),
}

/// A call argument.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Pos(Expr),
    Named(String, Expr),
}

/// A statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stmt {
    /// Evaluate and show.
    Expr(Expr),
    /// `target = value`; the target is a variable, an attribute or an index.
    Assign(Expr, Expr),
    /// `del a, b`.
    Del(Vec<String>),
}

/// Parses a whole input into statements.
pub(crate) fn parse(src: &str) -> Result<Vec<Stmt>, SyntaxError> {
    let tokens = lex(src)?;
    let mut p = Parser {
        tokens,
        i: 0,
        len: src.len(),
        depth: 0,
    };
    let mut out = Vec::new();
    loop {
        while p.eat(';') {}
        if p.at_end() {
            return Ok(out);
        }
        out.push(p.stmt()?);
        if !p.at_end() && !p.eat(';') {
            return Err(p.unexpected("`;` or the end of the input"));
        }
    }
}

/// True when `src` is complete enough to run: no open string or bracket, and no trailing
/// `=`, `,`, `.`, `:` or `-`. Syntax errors count as complete (running reports them).
pub(crate) fn is_complete(src: &str) -> bool {
    if src.trim_start().starts_with(':') {
        return true;
    }
    let tokens = match lex(src) {
        Ok(t) => t,
        Err(e) => return !e.incomplete,
    };
    let mut depth: i64 = 0;
    for t in &tokens {
        match t.tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => depth -= 1,
            _ => {}
        }
    }
    if depth > 0 {
        return false;
    }
    !matches!(
        tokens.last().map(|t| &t.tok),
        Some(Tok::Punct('=' | ',' | '.' | ':' | '-'))
    )
}

/// The deepest nesting of expressions the parser accepts (the parser recurses).
const MAX_DEPTH: usize = 128;

struct Parser {
    tokens: Vec<Token>,
    i: usize,
    len: usize,
    depth: usize,
}

impl Parser {
    fn at_end(&self) -> bool {
        self.i >= self.tokens.len()
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.i).map(|t| &t.tok)
    }

    fn peek_at(&self, k: usize) -> Option<&Tok> {
        self.tokens.get(self.i + k).map(|t| &t.tok)
    }

    fn pos(&self) -> usize {
        self.tokens.get(self.i).map_or(self.len, |t| t.start)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Punct(c)) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char, what: &str) -> Result<(), SyntaxError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn unexpected(&self, wanted: &str) -> SyntaxError {
        match self.tokens.get(self.i) {
            Some(t) => err(
                format!("expected {wanted}, found {}", describe(&t.tok)),
                t.start,
            ),
            None => SyntaxError {
                message: format!("expected {wanted}, found the end of the input"),
                pos: self.len,
                incomplete: true,
            },
        }
    }

    fn name(&mut self, what: &str) -> Result<String, SyntaxError> {
        match self.peek() {
            Some(Tok::Name(n)) => {
                let n = n.clone();
                self.i += 1;
                Ok(n)
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn stmt(&mut self) -> Result<Stmt, SyntaxError> {
        if self.peek() == Some(&Tok::Name("del".into()))
            && matches!(self.peek_at(1), Some(Tok::Name(_)))
        {
            self.i += 1;
            let mut names = vec![self.name("a variable name")?];
            while self.eat(',') {
                names.push(self.name("a variable name")?);
            }
            return Ok(Stmt::Del(names));
        }
        let start = self.pos();
        let lhs = self.expr()?;
        if self.eat('=') {
            if !matches!(lhs, Expr::Var(_) | Expr::Attr(..) | Expr::Index(..)) {
                return Err(err(
                    "can only assign to a variable, an attribute (`x.a = …`) or an item (`x[k] = …`)",
                    start,
                ));
            }
            let rhs = self.expr()?;
            return Ok(Stmt::Assign(lhs, rhs));
        }
        Ok(Stmt::Expr(lhs))
    }

    fn expr(&mut self) -> Result<Expr, SyntaxError> {
        if self.depth >= MAX_DEPTH {
            return Err(err(
                format!("expressions nest deeper than {MAX_DEPTH} levels"),
                self.pos(),
            ));
        }
        self.depth += 1;
        let e = self.unary();
        self.depth -= 1;
        e
    }

    fn unary(&mut self) -> Result<Expr, SyntaxError> {
        if self.eat('-') {
            return Ok(match self.expr()? {
                Expr::Lit(Value::Int(n)) if n != i64::MIN => Expr::Lit(Value::Int(-n)),
                Expr::Lit(Value::Float(f)) => Expr::Lit(Value::Float(-f)),
                Expr::Lit(Value::UInt(u)) if u == i64::MAX as u64 + 1 => {
                    Expr::Lit(Value::Int(i64::MIN))
                }
                other => Expr::Neg(Box::new(other)),
            });
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, SyntaxError> {
        let mut e = self.primary()?;
        loop {
            if self.eat('.') {
                let name = self.name("an attribute name after `.`")?;
                e = Expr::Attr(Box::new(e), name);
            } else if self.eat('(') {
                let args = self.args()?;
                e = Expr::Call(Box::new(e), args);
            } else if self.eat('[') {
                let index = self.expr()?;
                self.expect(']', "`]`")?;
                e = Expr::Index(Box::new(e), Box::new(index));
            } else {
                return Ok(e);
            }
        }
    }

    fn args(&mut self) -> Result<Vec<Arg>, SyntaxError> {
        let mut args = Vec::new();
        let mut named_seen = false;
        loop {
            if self.eat(')') {
                return Ok(args);
            }
            let at = self.pos();
            let arg = match (self.peek(), self.peek_at(1)) {
                (Some(Tok::Name(n)), Some(Tok::Punct('='))) => {
                    let n = n.clone();
                    self.i += 2;
                    named_seen = true;
                    Arg::Named(n, self.expr()?)
                }
                _ => {
                    let e = self.expr()?;
                    if named_seen {
                        return Err(err("a positional argument after a named one", at));
                    }
                    Arg::Pos(e)
                }
            };
            args.push(arg);
            if !self.eat(',') {
                self.expect(')', "`,` or `)`")?;
                return Ok(args);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, SyntaxError> {
        let Some(tok) = self.peek().cloned() else {
            return Err(self.unexpected("an expression"));
        };
        match tok {
            Tok::Lit(v) => {
                self.i += 1;
                Ok(Expr::Lit(v))
            }
            Tok::Name(n) => {
                self.i += 1;
                Ok(Expr::Var(n))
            }
            Tok::Punct('(') => {
                self.i += 1;
                let e = self.expr()?;
                self.expect(')', "`)`")?;
                Ok(e)
            }
            Tok::Punct('[') => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    if self.eat(']') {
                        return Ok(Expr::List(items));
                    }
                    items.push(self.expr()?);
                    if !self.eat(',') {
                        self.expect(']', "`,` or `]`")?;
                        return Ok(Expr::List(items));
                    }
                }
            }
            Tok::Punct('{') => {
                self.i += 1;
                let mut entries = Vec::new();
                loop {
                    if self.eat('}') {
                        return Ok(Expr::Map(entries));
                    }
                    let key = match (self.peek(), self.peek_at(1)) {
                        (Some(Tok::Name(n)), Some(Tok::Punct(':'))) => {
                            let k = Expr::Lit(Value::Str(n.clone()));
                            self.i += 1;
                            k
                        }
                        _ => self.expr()?,
                    };
                    self.expect(':', "`:` after a map key")?;
                    let value = self.expr()?;
                    entries.push((key, value));
                    if !self.eat(',') {
                        self.expect('}', "`,` or `}`")?;
                        return Ok(Expr::Map(entries));
                    }
                }
            }
            _ => Err(self.unexpected("an expression")),
        }
    }
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Name(n) => format!("`{n}`"),
        Tok::Lit(v) => format!("`{v}`"),
        Tok::Punct(c) => format!("`{c}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(n: &str) -> Expr {
        Expr::Var(n.into())
    }

    #[test]
    fn parses_calls_paths_and_assignments() {
        let s = parse("x = root.add(1, b=-2.5)").unwrap();
        assert_eq!(
            s,
            vec![Stmt::Assign(
                var("x"),
                Expr::Call(
                    Box::new(Expr::Attr(Box::new(var("root")), "add".into())),
                    vec![
                        Arg::Pos(Expr::Lit(Value::Int(1))),
                        Arg::Named("b".into(), Expr::Lit(Value::Float(-2.5)))
                    ]
                )
            )]
        );
        let s = parse("root.counter.step = 5; del x, y").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1], Stmt::Del(vec!["x".into(), "y".into()]));
    }

    #[test]
    fn parses_literals() {
        let s = parse(r#"[b"a\x00", 'q\n', {k: nil, "j": [true, false]}, 1_000, 1e3]"#).unwrap();
        let Stmt::Expr(Expr::List(items)) = &s[0] else {
            panic!("{s:?}")
        };
        assert_eq!(items[0], Expr::Lit(Value::Bytes(vec![b'a', 0])));
        assert_eq!(items[1], Expr::Lit(Value::from("q\n")));
        assert_eq!(items[3], Expr::Lit(Value::Int(1000)));
        assert_eq!(items[4], Expr::Lit(Value::Float(1000.0)));
        assert_eq!(
            parse("18446744073709551615").unwrap()[0],
            Stmt::Expr(Expr::Lit(Value::UInt(u64::MAX)))
        );
        assert_eq!(
            parse("-9223372036854775808").unwrap()[0],
            Stmt::Expr(Expr::Lit(Value::Int(i64::MIN)))
        );
    }

    #[test]
    fn reports_errors_with_positions() {
        let e = parse("root.add(1,,2)").unwrap_err();
        assert_eq!(e.pos, 11);
        assert!(e.message.contains("expected an expression"), "{e:?}");
        assert!(parse("1 = 2").is_err());
        assert!(parse("\"open").unwrap_err().incomplete);
        assert!(parse("f(a=1, 2)").is_err());
        assert!(parse("x @ 1").is_err());
        assert!(parse("99999999999999999999999").is_err());
        let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse(&deep).unwrap_err().message.contains("nest deeper"));
        let deep = format!("{}1", "-".repeat(10_000));
        assert!(parse(&deep).is_err());
        assert!(parse("--9223372036854775808").is_ok());
    }

    #[test]
    fn completeness() {
        assert!(is_complete("root.add(1, 2)"));
        assert!(!is_complete("root.add(1,"));
        assert!(!is_complete("[1, 2"));
        assert!(!is_complete("x ="));
        assert!(!is_complete("\"abc"));
        assert!(is_complete("root.add(1))"));
        assert!(is_complete(":trace on"));
        assert!(is_complete(""));
    }
}

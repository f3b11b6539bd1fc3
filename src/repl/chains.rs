//! What the REPL learns from each compiled input before it runs it: which properties sit
//! in the middle of a chain (lazy paths, no message) and which at its end (read), which
//! `[` index a remote object, and which calls are calls of variables (Rhai calls only
//! functions by name, so those are rewritten to call what the variable holds).

use std::collections::{HashMap, HashSet};

use rhai::{ASTNode, Expr, Position, AST};

use super::script::{builtin_name, CALL};

/// Where a property (after a `.`) or a key (in `[...]`) sits in its chain.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Link {
    /// A property followed by more of the chain: stays a lazy path.
    Inner,
    /// The last property of a chain: read.
    Last,
    /// An index (`x["k"]`): the remote object's `get(k)`.
    Index,
}

/// What the walk of compiled inputs learnt, keyed by the position of the `.` or `[` and the
/// property name (empty for an index).
#[derive(Default)]
pub(crate) struct Chains {
    links: HashMap<(usize, usize, String), Link>,
}

impl Chains {
    pub(crate) fn learn(&mut self, ast: &AST) {
        let mut lazy: Vec<(Position, String)> = Vec::new();
        let links = &mut self.links;
        let mut add = |pos: Position, name: &str, link: Link| {
            let key = (
                pos.line().unwrap_or(0),
                pos.position().unwrap_or(0),
                name.to_owned(),
            );
            links
                .entry(key)
                .and_modify(|old| {
                    // Seen both ways in different inputs: read, which is always right.
                    if *old != link {
                        *old = Link::Last;
                    }
                })
                .or_insert(link);
        };
        ast.walk(&mut |path: &[ASTNode<'_>]| {
            match path.last() {
                Some(ASTNode::Expr(Expr::Dot(x, _, pos))) => match &x.rhs {
                    Expr::Property(p, _) => add(*pos, p.2.as_str(), Link::Last),
                    Expr::Dot(y, ..) | Expr::Index(y, ..) => {
                        if let Expr::Property(p, _) = &y.lhs {
                            add(*pos, p.2.as_str(), Link::Inner);
                        }
                    }
                    _ => {}
                },
                Some(ASTNode::Expr(Expr::Index(_, _, pos))) => add(*pos, "", Link::Index),
                _ => {}
            }
            // `dir(root.counter)`, `help(root.add)`: the path itself, not what it holds.
            let call = match path.last() {
                Some(ASTNode::Expr(Expr::FnCall(x, _))) => Some(x),
                Some(ASTNode::Stmt(rhai::Stmt::FnCall(x, _))) => Some(x),
                _ => None,
            };
            if let Some(x) = call {
                if matches!(x.name.as_str(), "dir" | "help") && x.args.len() == 1 {
                    let mut arg = &x.args[0];
                    while let Expr::Dot(d, _, pos) = arg {
                        match &d.rhs {
                            Expr::Property(p, _) => {
                                lazy.push((*pos, p.2.to_string()));
                                break;
                            }
                            Expr::Dot(..) => arg = &d.rhs,
                            _ => break,
                        }
                    }
                }
            }
            true
        });
        for (pos, name) in lazy {
            let key = (pos.line().unwrap_or(0), pos.position().unwrap_or(0), name);
            self.links.insert(key, Link::Inner);
        }
    }

    pub(crate) fn get(&self, pos: Position, name: &str) -> Option<Link> {
        let line = pos.line().unwrap_or(0);
        let col = pos.position().unwrap_or(0);
        self.links
            .get(&(line, col, name.to_owned()))
            .or_else(|| self.links.get(&(line, col, String::new())))
            .copied()
    }
}

/// The positions of calls of variables (`f(1, 2)` where `f` is a `let`, a parameter or a
/// variable of the scope, and no function has that name). Rhai calls only functions by
/// name; these become `f.netref_call(1, 2)`, which calls what `f` holds.
pub(crate) fn variable_calls(ast: &AST, scope_names: &HashSet<String>, lib: &AST) -> Vec<Position> {
    let mut vars: HashSet<String> = scope_names.clone();
    let mut fns: HashSet<String> = HashSet::new();
    for f in ast.iter_fn_def().chain(lib.iter_fn_def()) {
        vars.extend(f.params.iter().map(|p| p.to_string()));
        fns.insert(f.name.to_string());
    }
    ast.walk(&mut |path: &[ASTNode<'_>]| {
        if let Some(ASTNode::Stmt(rhai::Stmt::Var(x, ..))) = path.last() {
            vars.insert(x.0.name.to_string());
        }
        true
    });
    let mut out = Vec::new();
    ast.walk(&mut |path: &[ASTNode<'_>]| {
        let call = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(x, pos))) => Some((x, pos)),
            Some(ASTNode::Stmt(rhai::Stmt::FnCall(x, pos))) => Some((x, pos)),
            _ => None,
        };
        if let Some((x, pos)) = call {
            let name = x.name.as_str();
            if x.op_token.is_none()
                && x.namespace.is_empty()
                && vars.contains(name)
                && !fns.contains(name)
                && builtin_name(name).is_none()
            {
                out.push(*pos);
            }
        }
        true
    });
    out
}

/// `source` with `.netref_call` after the name of each call at `positions`.
pub(crate) fn insert_calls(source: &str, positions: &[Position]) -> String {
    let mut at: Vec<usize> = positions
        .iter()
        .filter_map(|p| {
            let line = source.split_inclusive('\n').nth(p.line()? - 1)?;
            let start = line.as_ptr() as usize - source.as_ptr() as usize;
            let col = p.position()? - 1;
            let (offset, _) = line.char_indices().nth(col)?;
            let rest = &line[offset..];
            let len = rest
                .find(|c: char| !(c == '_' || c.is_alphanumeric()))
                .unwrap_or(rest.len());
            Some(start + offset + len)
        })
        .collect();
    at.sort_unstable();
    at.dedup();
    let mut out = String::with_capacity(source.len() + at.len() * 5);
    let mut last = 0;
    for i in at {
        out.push_str(&source[last..i]);
        out.push('.');
        out.push_str(CALL);
        last = i;
    }
    out.push_str(&source[last..]);
    out
}

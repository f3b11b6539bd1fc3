//! Tab completion: commands, variables and built-ins, and member names from the peer's
//! `dir`, cached per remote type.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, Map};

use super::render::object_key;
use super::script::BUILTINS;
use super::values::Remote;
use super::{Inner, COMMANDS};
use crate::proxy::Proxy;

const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

impl Inner {
    pub(crate) async fn complete(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let mut pos = pos.min(line.len());
        while !line.is_char_boundary(pos) {
            pos -= 1;
        }
        let head = &line[..pos];
        let trimmed = head.trim_start();
        if trimmed.starts_with(':') {
            return complete_command(trimmed, pos);
        }
        // Nothing to complete inside a string literal.
        if in_string(head) {
            return (pos, Vec::new());
        }
        let chain_len = head
            .chars()
            .rev()
            .take_while(|c| *c == '_' || *c == '.' || c.is_ascii_alphanumeric())
            .count();
        let chain = &head[pos - chain_len..];
        if chain.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            return (pos, Vec::new());
        }
        let parts: Vec<&str> = chain.split('.').collect();
        let partial = parts.last().copied().unwrap_or("");
        let start = pos - partial.len();
        let mut names = if parts.len() == 1 {
            self.top_level_names()
        } else {
            // A `.` right after a closing bracket (`f(x).`) would need a call: skip it.
            let before = &head[..pos - chain_len];
            if before.ends_with([')', ']', '"', '\'']) {
                return (start, Vec::new());
            }
            self.members(parts[0], &parts[1..parts.len() - 1]).await
        };
        names.retain(|n| n.starts_with(partial));
        names.sort();
        names.dedup();
        (start, names)
    }

    fn top_level_names(&self) -> Vec<String> {
        let mut names: Vec<String> = match self.scope.try_lock() {
            Some(scope) => scope.iter_raw().map(|(n, ..)| n.to_owned()).collect(),
            None => Vec::new(),
        };
        names.push("root".to_owned());
        names.extend(BUILTINS.iter().map(|b| b.0.to_owned()));
        names.extend(KEYWORDS.iter().map(|k| k.to_string()));
        names
    }

    /// Member names of `var.path…`.
    async fn members(&self, var: &str, path: &[&str]) -> Vec<String> {
        let value: Option<Dynamic> = self
            .scope
            .try_lock()
            .and_then(|scope| scope.get_value::<Dynamic>(var));
        let value = match value {
            Some(v) => v,
            None if var == "root" => Dynamic::from(self.root_value()),
            None => return Vec::new(),
        };
        if let Some(r) = value.clone().try_cast::<Remote>() {
            let target = r.proxy.path_to(path.iter().copied());
            return self.dir_of(&target).await;
        }
        match value.try_cast::<Map>() {
            Some(map) if path.is_empty() => map
                .keys()
                .map(|k| k.to_string())
                .filter(|k| is_name(k))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// `dir` of `target`, cached by type when the type is known, else by path.
    async fn dir_of(&self, target: &Proxy) -> Vec<String> {
        if let Some(obj) = target.local_object() {
            return obj
                .type_info()
                .members
                .iter()
                .map(|m| m.name.to_owned())
                .collect();
        }
        let key = match object_key(target) {
            Some(_) => match self.type_of(target).await {
                Some(t) => format!("type:{t}"),
                None => return Vec::new(),
            },
            None => match path_key(target) {
                Some(k) => k,
                None => return Vec::new(),
            },
        };
        if let Some(names) = self.dirs.lock().get(&key) {
            return names.as_ref().clone();
        }
        let _mute = self.mute();
        let Ok(Ok(names)) = tokio::time::timeout(LOOKUP_TIMEOUT, target.dir()).await else {
            return Vec::new();
        };
        self.dirs.lock().insert(key, Arc::new(names.clone()));
        names
    }
}

/// `path:root.counter` or `path:#3.a.b` for a proxy with a path.
fn path_key(p: &Proxy) -> Option<String> {
    let mut base = p.clone();
    base.path = crate::protocol::empty_path();
    let mut key = format!("path:{}", object_key(&base)?);
    for seg in p.path() {
        key.push('.');
        key.push_str(seg);
    }
    Some(key)
}

const KEYWORDS: &[&str] = &[
    "let", "const", "fn", "if", "else", "while", "loop", "for", "in", "break", "continue",
    "return", "throw", "try", "catch", "true", "false",
];

fn is_name(s: &str) -> bool {
    s.starts_with(|c: char| c == '_' || c.is_ascii_alphabetic())
        && s.chars().all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// True when `head` ends inside a string literal.
fn in_string(head: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in head.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if matches!(c, '"' | '`' | '\'') => quote = Some(c),
            None => {}
        }
    }
    quote.is_some()
}

fn complete_command(trimmed: &str, pos: usize) -> (usize, Vec<String>) {
    if let Some((cmd, arg)) = trimmed.split_once(' ') {
        let arg = arg.trim_start();
        let options: &[&str] = match cmd {
            ":trace" => &["mermaid", "off", "on"],
            ":time" => &["on", "off"],
            ":timeout" => &["off"],
            _ => &[],
        };
        let mut names: Vec<String> = options
            .iter()
            .filter(|o| o.starts_with(arg))
            .map(|o| o.to_string())
            .collect();
        names.sort();
        return (pos - arg.len(), names);
    }
    let mut names: Vec<String> = COMMANDS
        .iter()
        .filter(|c| c.starts_with(trimmed))
        .map(|c| c.to_string())
        .collect();
    names.sort();
    (pos - trimmed.len(), names)
}

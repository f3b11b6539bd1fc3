//! The REPL's `:commands`: tables, counters, settings, `:load` and re-dialing.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{values, Inner, Outcome, COMMANDS, HELP};
use crate::connection::{Connection, Tables};
use crate::protocol::fmt_id;
use crate::value::Value;

impl Inner {
    pub(crate) async fn load(self: &Arc<Self>, path: &str) -> Outcome {
        match std::fs::read_to_string(path) {
            Ok(source) => {
                // A `#!` line makes a script executable; the language has no use for it.
                let source = if source.starts_with("#!") {
                    format!("//{source}")
                } else {
                    source
                };
                self.run_blocking(source, Some(path.to_owned())).await
            }
            Err(e) => {
                self.print_error(&format!("error: cannot read {path}: {e}"));
                Outcome::Failed
            }
        }
    }

    pub(crate) async fn command(self: &Arc<Self>, command: &str) -> Outcome {
        let mut words = command.split_whitespace();
        let name = words.next().unwrap_or("");
        let arg = words.next();
        let usage = |text: &str| {
            self.print_error(&format!("error: usage: {text}"));
            Outcome::Failed
        };
        match (name, arg) {
            ("q" | "quit" | "exit", None) => return Outcome::Quit,
            ("help" | "h" | "?", None) => self.print(HELP),
            ("trace", Some("on")) => self.set_trace(true),
            ("trace", Some("off")) => self.set_trace(false),
            ("trace", Some("mermaid")) => {
                if !self.trace.load(Ordering::Acquire) {
                    self.print_error(
                        "error: :trace mermaid draws the last traced input: turn :trace on first",
                    );
                    return Outcome::Failed;
                }
                let (events, dropped) = self.last.lock().clone();
                let diagram = crate::trace::mermaid(&events, "repl", &self.link().peer_name)
                    .omitted(dropped)
                    .to_string();
                self.print(diagram.trim_end());
            }
            ("trace", None) => {
                let on = self.trace.load(Ordering::Acquire);
                self.print(&format!(
                    "trace is {}; usage: :trace on|off|mermaid",
                    if on { "on" } else { "off" }
                ));
            }
            ("trace", Some(_)) => return usage(":trace on|off|mermaid"),
            ("time", Some("on")) => self.time.store(true, Ordering::Release),
            ("time", Some("off")) => self.time.store(false, Ordering::Release),
            ("time", None) => {
                let on = self.time.load(Ordering::Acquire);
                self.print(&format!(
                    "time is {}; usage: :time on|off",
                    if on { "on" } else { "off" }
                ));
            }
            ("time", Some(_)) => return usage(":time on|off"),
            ("timeout", Some("off")) => *self.timeout.lock() = None,
            ("timeout", Some(secs)) => match secs.parse::<f64>() {
                Ok(s) if s > 0.0 && s.is_finite() && s <= 86_400.0 => {
                    *self.timeout.lock() = Some(Duration::from_secs_f64(s));
                }
                _ => return usage(":timeout SECONDS (0 < SECONDS <= 86400) or :timeout off"),
            },
            ("timeout", None) => {
                let now = match *self.timeout.lock() {
                    Some(t) => format!("{} s", t.as_secs_f64()),
                    None => "off (the connection's default)".to_owned(),
                };
                self.print(&format!(
                    "timeout is {now}; usage: :timeout SECONDS (0 < SECONDS <= 86400) or :timeout off"
                ));
            }
            ("load", Some(_)) => {
                let path = command["load".len()..].trim();
                return self.load(path).await;
            }
            ("load", None) => return usage(":load FILE"),
            ("reconnect", None) => return self.redial(None).await,
            ("connect", Some(target)) => return self.redial(Some(target.to_owned())).await,
            ("connect", None) => return usage(":connect TARGET"),
            ("tables", None) => self.tables().await,
            ("stats", None) => self.stats().await,
            _ => {
                self.print_error(&format!(
                    "error: unknown command `:{command}`; commands: {}",
                    COMMANDS.join(" ")
                ));
                return Outcome::Failed;
            }
        }
        Outcome::Ok
    }

    /// `:reconnect` and `:connect TARGET`: a new connection; variables stay, and proxies
    /// of the old connection say so when used. `:reconnect` on a connection that heals
    /// takes its `Resilient`'s next connection.
    async fn redial(self: &Arc<Self>, target: Option<String>) -> Outcome {
        if target.is_none() && self.link().healing.is_some() {
            return self.reconnect_healing().await;
        }
        let Some(dialer) = self.dialer.lock().clone() else {
            self.print_error("error: this session cannot dial: it was not started from a target");
            return Outcome::Failed;
        };
        let attached = match dialer(target).await {
            Ok(dialed) => self.attach(dialed).await,
            Err(message) => Err(message),
        };
        match attached {
            Ok(()) => Outcome::Ok,
            Err(message) => {
                self.print_error(&format!("error: disconnected: {message}"));
                Outcome::Failed
            }
        }
    }

    async fn tables(&self) {
        self.settle().await;
        let link = self.link();
        let me = link.conn.tables();
        let peer = link.peer.as_ref().map(Connection::tables);
        if peer.is_none() {
            // The peer's table is out of sight: ask it for the types of what we import (the
            // REPL's own lookup, not traced; a held import's handle, so no count changes).
            for e in &me.imports {
                if !self.types.lock().contains_key(&fmt_id(e.id)) {
                    self.type_of(&link.conn.remote_object(e.id)).await;
                }
            }
        }
        let mut text = self.table_rows("repl side", &me, peer.as_ref());
        match &peer {
            Some(p) => {
                text.push('\n');
                text.push_str(&self.table_rows("peer side", p, Some(&me)));
            }
            None => text.push_str(&format!(
                "\npeer side: not visible from here; it lends us what we import ({})",
                me.imports.len()
            )),
        }
        let held: Vec<(String, Value)> = {
            let scope = self.scope.lock();
            scope
                .iter_raw()
                .filter_map(|(k, _, v)| {
                    let r = v.clone().try_cast::<values::Remote>()?;
                    Some((k.to_owned(), Value::Ref(r.proxy)))
                })
                .collect()
        };
        let mut held = held;
        held.sort_by(|a, b| a.0.cmp(&b.0));
        held.dedup_by(|a, b| a.0 == b.0);
        let mut shown = Vec::with_capacity(held.len());
        for (k, v) in &held {
            shown.push(format!("{k} = {}", self.render_value(v).await));
        }
        drop(held);
        if !shown.is_empty() {
            text.push_str("\nvariables holding objects: ");
            text.push_str(&shown.join(", "));
        }
        self.print(&text);
    }

    /// `who: N exported, M imported`, then one line per row. An import's type comes from
    /// the owner's row when the owner is in this process, else from what the REPL learnt.
    fn table_rows(&self, who: &str, t: &Tables, owner: Option<&Tables>) -> String {
        let mut text = format!(
            "{who}: {} exported, {} imported",
            t.exports.len(),
            t.imports.len()
        );
        for e in &t.exports {
            let ty = e.type_name.as_deref().unwrap_or("?");
            text.push_str(&format!(
                "\n  export {} {ty}, count {}",
                e.display_id(),
                e.count
            ));
        }
        for e in &t.imports {
            let ty = match owner {
                Some(o) => o
                    .exports
                    .iter()
                    .find(|x| x.id == e.id)
                    .and_then(|x| x.type_name.clone()),
                None => self.types.lock().get(&fmt_id(e.id)).cloned(),
            };
            let ty = ty.map(|t| format!(" {t}")).unwrap_or_default();
            text.push_str(&format!(
                "\n  import {}{ty}, count {}",
                e.display_id(),
                e.count
            ));
        }
        text
    }

    async fn stats(&self) {
        self.settle().await;
        let line = |who: &str, s: crate::Stats| {
            format!(
                "{who}: messages {} sent / {} received, calls {} sent / {} received, \
                 round trips {}, releases sent {}, bytes {} sent / {} received, \
                 exports {}, imports {}",
                s.messages_sent,
                s.messages_received,
                s.calls_sent,
                s.calls_received,
                s.round_trips,
                s.releases_sent,
                s.bytes_sent,
                s.bytes_received,
                s.live_exports,
                s.live_imports
            )
        };
        let link = self.link();
        let mut text = line("repl side", link.conn.stats());
        if let Some(peer) = &link.peer {
            text.push('\n');
            text.push_str(&line("peer side", peer.stats()));
        }
        self.print(&text);
    }
}

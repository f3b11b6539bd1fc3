//! New connections for a session: what a dialer returns, and following a [`Resilient`]
//! through its re-dials.

use std::any::Any;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Inner, Link};
use crate::connection::Connection;
use crate::resilient::Resilient;

/// What a [`Dialer`](super::Dialer) opened for `:reconnect` or `:connect TARGET`.
pub struct Dialed {
    opened: Opened,
    description: String,
    keep: Option<Box<dyn Any + Send + Sync>>,
}

enum Opened {
    Once(Connection),
    Healing(Resilient),
}

impl fmt::Debug for Dialed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dialed")
            .field("description", &self.description)
            .field("heals", &matches!(self.opened, Opened::Healing(_)))
            .finish_non_exhaustive()
    }
}

impl Dialed {
    /// `conn`, which the session shows as `attached to DESCRIPTION`.
    pub fn new(conn: Connection, description: impl Into<String>) -> Dialed {
        Dialed {
            opened: Opened::Once(conn),
            description: description.into(),
            keep: None,
        }
    }

    /// The current connection of `link`, which the session then follows through its
    /// re-dials, like [`Session::healing`](super::Session::healing).
    pub fn healing(link: Resilient, description: impl Into<String>) -> Dialed {
        Dialed {
            opened: Opened::Healing(link),
            description: description.into(),
            keep: None,
        }
    }

    /// Keeps `keep` alive as long as the session uses this connection (the child process
    /// behind a command target, say).
    pub fn keep(mut self, keep: impl Any + Send + Sync) -> Dialed {
        self.keep = Some(Box::new(keep));
        self
    }
}

/// What [`Inner::follow`] did.
pub(crate) enum Followed {
    /// Nothing to do: the connection does not heal, or it is up.
    Nothing,
    /// Took the `Resilient`'s new connection, number `generation`.
    Again { generation: u64 },
    /// No new connection came within the `Resilient`'s wait.
    Away(String),
    /// [`Session::cancel`](super::Session::cancel) while waiting.
    Cancelled,
}

impl Inner {
    /// Says when `link`'s connection is lost, from its supervising task (at the prompt too).
    pub(crate) fn watch(&self, link: &Resilient, description: &str) {
        let me = self.me.clone();
        let description = description.to_owned();
        link.on_broken(move |broken| {
            if let Some(session) = me.upgrade() {
                session.print_error(&format!(
                    "netref repl: the connection is closed ({}); re-dialing {description} \
                     in the background; variables stay: the next input or :reconnect goes on",
                    broken.reason
                ));
            }
        });
    }

    /// When the session's connection heals and is lost: takes the `Resilient`'s new one. With
    /// `wait`, re-dials now and waits for it (up to the `Resilient`'s wait, or a cancel);
    /// without, takes one only if it is already up.
    pub(crate) async fn follow(self: &Arc<Self>, wait: bool) -> Followed {
        let link = self.link();
        let Some(healing) = link.healing.clone() else {
            return Followed::Nothing;
        };
        if !link.conn.is_closed() && healing.generation() == link.generation {
            return Followed::Nothing;
        }
        let conn = if wait {
            self.cancelled.store(false, Ordering::Release);
            let cancel = self.cancel.notified();
            tokio::pin!(cancel);
            cancel.as_mut().enable();
            tokio::select! {
                dialled = healing.reconnect() => match dialled {
                    Ok(conn) => conn,
                    Err(e) => return Followed::Away(e.to_string()),
                },
                _ = cancel => return Followed::Cancelled,
            }
        } else {
            match healing.current() {
                Some(conn) if !conn.is_closed() => conn,
                _ => return Followed::Nothing,
            }
        };
        let generation = healing.generation();
        let description = link.description.clone();
        let old = self.replace_link(conn, description, Some(healing), generation, None);
        old.conn.close().await;
        Followed::Again { generation }
    }

    /// Before a script input: [`Inner::follow`], saying what happened. False when cancelled.
    pub(crate) async fn follow_for_input(self: &Arc<Self>) -> bool {
        match self.follow(true).await {
            Followed::Nothing => {}
            Followed::Again { generation } => self.print_error(&format!(
                "netref repl: attached to {} again (connection {generation}); variables \
                 holding plain values kept them, proxies of the lost connection are dead",
                self.link().description
            )),
            Followed::Away(message) => self.print_error(&format!(
                "netref repl: {message}; the input runs without a connection \
                 (:reconnect tries again)"
            )),
            Followed::Cancelled => {
                self.print_error("error: cancelled while re-dialing");
                return false;
            }
        }
        true
    }

    /// `:reconnect` on a connection that heals.
    pub(crate) async fn reconnect_healing(self: &Arc<Self>) -> super::Outcome {
        match self.follow(true).await {
            Followed::Nothing => {
                let link = self.link();
                self.print(&format!(
                    "attached to {} (connection {}); it is up",
                    link.description, link.generation
                ));
            }
            Followed::Again { generation } => self.print(&format!(
                "attached to {} again (connection {generation})",
                self.link().description
            )),
            Followed::Away(message) => {
                self.print_error(&format!("error: {message}"));
                return super::Outcome::Failed;
            }
            Followed::Cancelled => {
                self.print_error("error: cancelled while re-dialing");
                return super::Outcome::Failed;
            }
        }
        super::Outcome::Ok
    }

    /// `:connect TARGET` or `:reconnect` through the dialer: attaches to what it opened.
    pub(crate) async fn attach(self: &Arc<Self>, dialed: Dialed) -> Result<(), String> {
        let Dialed {
            opened,
            description,
            keep,
        } = dialed;
        let (conn, healing, generation) = match opened {
            Opened::Once(conn) => (conn, None, 0),
            Opened::Healing(link) => {
                let conn = link.connection().await.map_err(|e| e.to_string())?;
                self.watch(&link, &description);
                let generation = link.generation();
                (conn, Some(link), generation)
            }
        };
        self.print(&format!("attached to {description}"));
        let old = self.replace_link(conn, description, healing, generation, keep);
        if let Some(link) = &old.healing {
            link.close().await;
        }
        old.conn.close().await;
        Ok(())
    }

    /// Makes `conn` the session's connection (one more epoch: proxies of the old one say
    /// they are lost); returns the old link, for the caller to close.
    fn replace_link(
        self: &Arc<Self>,
        conn: Connection,
        description: String,
        healing: Option<Resilient>,
        generation: u64,
        keep: Option<Box<dyn Any + Send + Sync>>,
    ) -> Arc<Link> {
        let old = self.link();
        let link = Link {
            idle_tasks: (conn.task_count(), 0),
            conn,
            peer: None,
            peer_name: old.peer_name.clone(),
            description,
            epoch: old.epoch + 1,
            healing,
            generation,
            _keep: keep,
        };
        *self.link.write() = Arc::new(link);
        old.conn.set_tracer(None);
        self.types.lock().clear();
        if self.trace.load(Ordering::Acquire) {
            self.set_trace(true);
        }
        old
    }
}

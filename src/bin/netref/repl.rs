//! `netref repl [TARGET]`: the terminal around [`netref::repl::Session`].
//!
//! With a terminal on stdin: the line editor of `editor.rs` with history, multi-line input
//! and Tab completion;
//! Ctrl-C cancels the running call (or clears the line at the prompt), Ctrl-D leaves.
//! Otherwise (a pipe, a file, CI): reads stdin line by line, evaluates each complete input
//! and prints only results on stdout and error blocks on stderr, with no prompt or greeting
//! (`--echo` prints each input after the prompt and everything on stdout, for a
//! transcript); exits 0 at the end of the input, or 1 if any input failed.
//!
//! A lost connection does not end the session: it says so, variables stay. On TCP, TLS,
//! Unix and NATS targets the connection heals ([`netref::resilient`]): the loss is reported
//! when it happens, re-dialing goes on in the background, and the next input or
//! `:reconnect` takes the new connection. On the others `:reconnect` dials again;
//! `:connect TARGET` attaches elsewhere.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use netref::lab::LabOptions;
use netref::repl::{Dialed, Outcome, Session};
use netref::resilient::{dial_fn, ResilientOptions};
use netref::Resilient;
use tokio::runtime::Runtime;

#[cfg(unix)]
use crate::editor::{Editor, Read};
use crate::target::{self, ConnectOpts, Target};

const PROMPT: &str = "netref> ";
/// Shown before the further lines of a multi-line input in `--echo` transcripts.
const CONTINUATION: &str = "   ...> ";

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to attach: HOST[:PORT], tcp://HOST:PORT, unix:PATH, or cmd:COMMAND, a command
    /// speaking netref on its stdio (`"ssh host netref serve --stdio"`, with a space, is one
    /// too). Default: start the lab in this process.
    target: Option<String>,
    #[command(flatten)]
    connect: ConnectOpts,
    /// The history file [default: $NETREF_HISTORY, else ~/.netref_history].
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    /// Keep no history.
    #[arg(long, conflicts_with = "history")]
    no_history: bool,
    /// In-process lab only: add `exec(command, on_line)`.
    #[arg(long, conflicts_with = "target")]
    allow_exec: bool,
    /// In-process lab only: the directory `files` works in.
    #[arg(long, value_name = "DIR", conflicts_with = "target")]
    sandbox: Option<PathBuf>,
    /// With stdin not a terminal: print each input after the prompt before its output, so
    /// the output reads as a transcript of the session.
    #[arg(long)]
    echo: bool,
}

pub(crate) fn run(args: Args, runtime: &Runtime) -> ExitCode {
    let lab = LabSetup {
        allow_exec: args.allow_exec,
        sandbox: args.sandbox.clone(),
    };
    let opened = runtime.block_on(open(args.target.as_deref(), &args.connect, &lab, true));
    let (session, attached) = match opened {
        Ok(x) => x,
        Err(message) => {
            eprintln!("netref repl: {message}");
            return ExitCode::from(2);
        }
    };
    let code = if cfg!(unix) && std::io::stdin().is_terminal() {
        #[cfg(unix)]
        let code = interactive(&session, runtime, history_path(&args));
        #[cfg(not(unix))]
        let code = ExitCode::SUCCESS;
        code
    } else {
        if !args.echo {
            session.set_error_output(|line: &str| eprintln!("{line}"));
        }
        runtime.block_on(script(&session, args.echo))
    };
    runtime.block_on(async {
        session.close().await;
        if let Some(attached) = attached {
            attached.close().await;
        }
    });
    code
}

/// How to start the in-process lab.
pub(crate) struct LabSetup {
    pub(crate) allow_exec: bool,
    pub(crate) sandbox: Option<PathBuf>,
}

/// The session, and what keeps a command target's child process alive. A session on a
/// target can dial again (`:reconnect`, `:connect TARGET`); with `heal`, on a target that
/// can be re-dialed as it is, its connection heals (the REPL; not `netref run`, which
/// ends when its connection is lost).
pub(crate) async fn open(
    target: Option<&str>,
    connect: &ConnectOpts,
    lab: &LabSetup,
    heal: bool,
) -> Result<(Session, Option<target::Attached>), String> {
    match target {
        None => {
            if connect.secret_file.is_some() || connect.tls_ca.is_some() {
                return Err("--secret-file and --tls-ca need a TARGET".into());
            }
            let mut options = LabOptions::default().allow_exec(lab.allow_exec);
            if let Some(dir) = &lab.sandbox {
                options = options.sandbox(dir);
            }
            let config = connect.config().map_err(|e| e.to_string())?;
            let session = Session::embedded_with(options, config)
                .await
                .map_err(|e| format!("cannot start the lab: {e}"))?;
            Ok((session, None))
        }
        Some(text) => {
            let parsed = target::parse(text)?;
            let (session, attached) = if heal && parsed.redialable() {
                let link = resilient(&parsed, connect).await?;
                let session = Session::healing(link)
                    .await
                    .map_err(|e| format!("cannot connect to {parsed}: {e}"))?;
                (session, None)
            } else {
                let attached = target::connect(&parsed, connect)
                    .await
                    .map_err(|e| format!("cannot connect to {parsed}: {e}"))?;
                let session = match &attached.bridge {
                    // rpyc://: the Python root behind an in-process pair; `:tables` shows
                    // both ends.
                    Some((peer, _)) => Session::with_peer(attached.conn.clone(), peer.clone()),
                    None => Session::new(attached.conn.clone()),
                };
                (session, Some(attached))
            };
            let own = text.to_owned();
            let opts = connect.clone();
            session.set_dialer(Arc::new(move |to: Option<String>| {
                let text = to.unwrap_or_else(|| own.clone());
                let opts = opts.clone();
                Box::pin(async move { dial(&target::parse(&text)?, &opts, heal).await })
            }));
            Ok((session, attached))
        }
    }
}

/// How long an input waits for a lost connection to come back (`:reconnect` too) before
/// it runs without one; re-dialing goes on in the background.
const REDIAL_WAIT: Duration = Duration::from_secs(3);

/// A connection to `target` that re-dials after a loss (see [`netref::resilient`]).
async fn resilient(target: &Target, opts: &ConnectOpts) -> Result<Resilient, String> {
    let (to, opts) = (target.clone(), opts.clone());
    let dial = dial_fn(target.to_string(), move || {
        let (to, opts) = (to.clone(), opts.clone());
        async move { target::connect(&to, &opts).await.map(|a| a.conn) }
    });
    let options = ResilientOptions {
        wait: REDIAL_WAIT,
        ..ResilientOptions::default()
    };
    netref::connect_resilient_with(dial, options)
        .await
        .map_err(|e| format!("cannot connect to {target}: {e}"))
}

/// `:connect TARGET`, and `:reconnect` on a session that does not heal.
async fn dial(target: &Target, opts: &ConnectOpts, heal: bool) -> Result<Dialed, String> {
    if heal && target.redialable() {
        let link = resilient(target, opts).await?;
        return Ok(Dialed::healing(link, target.to_string()));
    }
    let attached = target::connect(target, opts)
        .await
        .map_err(|e| format!("cannot connect to {target}: {e}"))?;
    let conn = attached.conn.clone();
    Ok(Dialed::new(conn, target.to_string()).keep(attached))
}

/// Non-interactive: evaluate stdin's inputs in order.
async fn script(session: &Session, echo: bool) -> ExitCode {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
    // A plain thread: reading stdin blocks, and must not hold up the runtime's workers
    // (callbacks print while an input runs).
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let mut failed = false;
    let mut lost = Lost::default();
    let mut buffer = String::new();
    loop {
        let line = rx.recv().await;
        let at_end = line.is_none();
        if let Some(line) = line {
            if !buffer.is_empty() {
                buffer.push('\n');
            }
            buffer.push_str(&line);
            if !Session::is_complete(&buffer) {
                continue;
            }
        }
        let input = std::mem::take(&mut buffer);
        if !input.trim().is_empty() {
            if echo {
                for (i, line) in input.lines().enumerate() {
                    let prompt = if i == 0 { PROMPT } else { CONTINUATION };
                    println!("{prompt}{line}");
                }
            }
            match session.eval(&input).await {
                Outcome::Quit => break,
                Outcome::Failed => failed = true,
                _ => {}
            }
            lost.check(session);
        }
        if at_end {
            break;
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Says once that the connection is gone, and how to go on.
#[derive(Default)]
pub(crate) struct Lost(bool);

impl Lost {
    pub(crate) fn check(&mut self, session: &Session) {
        if session.heals() {
            // The session says so itself, when it happens.
            return;
        }
        let conn = session.connection();
        if !conn.is_closed() {
            self.0 = false;
            return;
        }
        if self.0 {
            return;
        }
        let reason = conn.close_reason().unwrap_or_else(|| "closed".into());
        eprintln!(
            "netref repl: the connection is closed ({reason}); variables stay: \
             :reconnect or :connect TARGET to go on"
        );
        self.0 = true;
    }
}

fn history_path(args: &Args) -> Option<PathBuf> {
    if args.no_history {
        return None;
    }
    if let Some(p) = &args.history {
        return Some(p.clone());
    }
    if let Some(p) = std::env::var_os("NETREF_HISTORY") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"))?;
    Some(PathBuf::from(home).join(".netref_history"))
}

#[cfg(unix)]
/// Interactive: the line editor on this thread, evaluation on the runtime.
///
/// Each line read joins what is pending; the pending text is split into complete inputs,
/// evaluated in order, and what is left unfinished waits for the next line under the
/// continuation prompt. So a pasted block of statements (bracketed or not) runs them all,
/// and lines typed while an input runs are each read and run in turn.
fn interactive(session: &Session, runtime: &Runtime, history: Option<PathBuf>) -> ExitCode {
    let cancel = session.clone();
    let mut editor = match Editor::new(move || cancel.cancel()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("netref repl: cannot use the terminal: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &history {
        editor.set_history(load_history(path));
    }
    session.set_output(editor.printer());
    println!("{}", session.banner());
    let handle = runtime.handle().clone();
    let completer = session.clone();
    let complete = move |line: &str, pos: usize| handle.block_on(completer.complete(line, pos));
    let mut lost = Lost::default();
    let mut pending = String::new();
    'session: loop {
        let prompt = if pending.is_empty() {
            PROMPT
        } else {
            CONTINUATION
        };
        let line = match editor.read_line(prompt, &complete) {
            Read::Line(line) => line,
            Read::Interrupted => {
                pending.clear();
                continue;
            }
            Read::Eof => break,
        };
        if !pending.is_empty() {
            pending.push('\n');
        }
        pending.push_str(&line);
        for input in complete_inputs(&mut pending) {
            editor.add_history(&input);
            // Ctrl-C cancels the call in flight and lets the input end, so the `Cancel`
            // shows in its own trace.
            editor.set_running(true);
            let outcome = runtime.block_on(session.eval(&input));
            editor.set_running(false);
            lost.check(session);
            if outcome == Outcome::Quit {
                break 'session;
            }
        }
    }
    if let Some(path) = &history {
        save_history(path, editor.history());
    }
    ExitCode::SUCCESS
}

#[cfg(unix)]
/// History lines; a newline inside an entry is stored as `\\n`.
fn load_history(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|text| text.lines().map(|l| l.replace("\\n", "\n")).collect())
        .unwrap_or_default()
}

#[cfg(unix)]
/// Keeps the last thousand entries.
fn save_history(path: &std::path::Path, entries: &[String]) {
    let start = entries.len().saturating_sub(1000);
    let text: String = entries[start..]
        .iter()
        .map(|e| format!("{}\n", e.replace('\n', "\\n")))
        .collect();
    let _ = std::fs::write(path, text);
}

/// Takes the complete inputs at the front of `pending`, line by line (a line joins the
/// input before it while that is unfinished); leaves an unfinished rest in `pending`.
fn complete_inputs(pending: &mut String) -> Vec<String> {
    let mut inputs = Vec::new();
    let mut current = String::new();
    for line in pending.split('\n') {
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(line);
        if current.trim().is_empty() {
            current.clear();
        } else if Session::is_complete(&current) {
            inputs.push(std::mem::take(&mut current));
        }
    }
    *pending = current;
    inputs
}

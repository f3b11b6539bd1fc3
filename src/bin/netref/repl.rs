//! `netref repl [TARGET]`: the terminal around [`netref::repl::Session`].
//!
//! With a terminal on stdin: rustyline with history, multi-line input and Tab completion;
//! Ctrl-C cancels the running call (or clears the line at the prompt), Ctrl-D leaves.
//! Otherwise (a pipe, a file, CI): reads stdin line by line, evaluates each complete input
//! and prints only results on stdout and error blocks on stderr, with no prompt or greeting
//! (`--echo` prints each input after the prompt and everything on stdout, for a
//! transcript); exits 0 at the end of the input, or 1 if any input failed.
//!
//! A lost connection does not end the session: it says so, variables stay, and
//! `:reconnect` or `:connect TARGET` dial again.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use netref::lab::LabOptions;
use netref::repl::{Outcome, Session};
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{CompletionType, Editor, Helper};
use tokio::runtime::Runtime;

use crate::target::{self, ConnectOpts};

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
    let opened = runtime.block_on(open(args.target.as_deref(), &args.connect, &lab));
    let (session, attached) = match opened {
        Ok(x) => x,
        Err(message) => {
            eprintln!("netref repl: {message}");
            return ExitCode::from(2);
        }
    };
    let code = if std::io::stdin().is_terminal() {
        interactive(&session, runtime, history_path(&args))
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
/// target can dial again (`:reconnect`, `:connect TARGET`).
pub(crate) async fn open(
    target: Option<&str>,
    connect: &ConnectOpts,
    lab: &LabSetup,
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
            let attached = target::connect(&parsed, connect)
                .await
                .map_err(|e| format!("cannot connect to {parsed}: {e}"))?;
            let session = match &attached.bridge {
                // rpyc://: the Python root behind an in-process pair; `:tables` shows both ends.
                Some((peer, _)) => Session::with_peer(attached.conn.clone(), peer.clone()),
                None => Session::new(attached.conn.clone()),
            };
            let own = text.to_owned();
            let opts = connect.clone();
            session.set_dialer(Arc::new(move |to: Option<String>| {
                let text = to.unwrap_or_else(|| own.clone());
                let opts = opts.clone();
                Box::pin(async move {
                    let parsed = target::parse(&text)?;
                    let attached = target::connect(&parsed, &opts)
                        .await
                        .map_err(|e| format!("cannot connect to {parsed}: {e}"))?;
                    let conn = attached.conn.clone();
                    let keep: Box<dyn std::any::Any + Send + Sync> = Box::new(attached);
                    Ok((conn, parsed.to_string(), Some(keep)))
                })
            }));
            Ok((session, Some(attached)))
        }
    }
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

/// Interactive: rustyline on this thread, evaluation on the runtime.
fn interactive(session: &Session, runtime: &Runtime, history: Option<PathBuf>) -> ExitCode {
    let config = rustyline::Config::builder()
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .build();
    let mut editor: Editor<ReplHelper, DefaultHistory> = match Editor::with_config(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("netref repl: cannot use the terminal: {e}");
            return ExitCode::from(2);
        }
    };
    editor.set_helper(Some(ReplHelper {
        session: session.clone(),
        runtime: runtime.handle().clone(),
    }));
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    // Lines printed while the prompt is up (a log tap, a late callback): clear the prompt
    // line, print, and draw the prompt again. (rustyline's external printer would keep the
    // line intact, but it makes the editor lag behind pasted input.) Press Ctrl-L to see a
    // line being typed again.
    let reading = Arc::new(AtomicBool::new(false));
    let flag = reading.clone();
    session.set_output(move |line: &str| {
        let mut out = std::io::stdout().lock();
        if flag.load(Ordering::Acquire) {
            let _ = write!(out, "\r\x1b[K{line}\r\n{PROMPT}");
        } else {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    });
    println!("{}", session.banner());
    let mut lost = Lost::default();
    loop {
        reading.store(true, Ordering::Release);
        let read = editor.readline(PROMPT);
        reading.store(false, Ordering::Release);
        match read {
            Ok(line) => {
                if line.trim().is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line.as_str());
                let outcome = runtime.block_on(async {
                    let eval = session.eval(&line);
                    tokio::pin!(eval);
                    tokio::select! {
                        o = &mut eval => return o,
                        _ = tokio::signal::ctrl_c() => {}
                    }
                    // Cancel the call in flight and let the input end, so the `Cancel`
                    // shows in its own trace.
                    session.cancel();
                    eval.await
                });
                if outcome == Outcome::Quit {
                    break;
                }
                lost.check(session);
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("netref repl: {e}");
                break;
            }
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    ExitCode::SUCCESS
}

/// Completion, multi-line input.
struct ReplHelper {
    session: Session,
    runtime: tokio::runtime::Handle,
}

impl Completer for ReplHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        // The editor runs on the main thread, outside the runtime: blocking here is fine.
        Ok(self.runtime.block_on(self.session.complete(line, pos)))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        Ok(if Session::is_complete(ctx.input()) {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

impl Helper for ReplHelper {}

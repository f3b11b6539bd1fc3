//! `netref` in a pseudo-terminal: the REPL as a person types into it.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::pty::{openpty, Winsize};

/// How long [`Pty::expect`] waits for a text.
pub const EXPECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A `netref` process whose stdin, stdout and stderr are a terminal.
pub struct Pty {
    child: Child,
    writer: std::fs::File,
    /// Everything the terminal showed, escape sequences included.
    screen: Arc<Mutex<String>>,
    /// How much of `screen` earlier expectations consumed.
    seen: usize,
}

impl Pty {
    /// Starts `netref ARGS` on a new pseudo-terminal, 120 columns wide.
    pub fn spawn(args: &[&str]) -> Pty {
        let size = Winsize {
            ws_row: 40,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(&size, None).expect("open a pseudo-terminal");
        let slave = std::fs::File::from(pty.slave);
        let child = Command::new(super::NETREF)
            .args(args)
            .env_remove("NETREF_LOG")
            .env("NETREF_HISTORY", "/dev/null")
            .env("TERM", "xterm")
            .stdin(Stdio::from(slave.try_clone().expect("dup the slave")))
            .stdout(Stdio::from(slave.try_clone().expect("dup the slave")))
            .stderr(Stdio::from(slave))
            .spawn()
            .expect("start netref");
        let master = std::fs::File::from(pty.master);
        let mut reader = master.try_clone().expect("dup the master");
        let screen = Arc::new(Mutex::new(String::new()));
        let sink = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with an error (EIO) once every copy of the slave is closed.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Pty {
            child,
            writer: master,
            screen,
            seen: 0,
        }
    }

    /// Types `text` in one burst.
    pub fn send(&mut self, text: &str) {
        self.writer
            .write_all(text.as_bytes())
            .expect("write to the terminal");
        self.writer.flush().expect("flush the terminal");
    }

    /// Pastes `text` as a terminal with bracketed paste does.
    pub fn paste(&mut self, text: &str) {
        self.send(&format!("\x1b[200~{text}\x1b[201~"));
    }

    /// Waits until the terminal shows `text` after what earlier calls consumed; returns
    /// what it showed up to and including it, escape sequences removed.
    pub fn expect(&mut self, text: &str) -> String {
        let deadline = Instant::now() + EXPECT_TIMEOUT;
        loop {
            {
                let screen = self.screen.lock().unwrap();
                if let Some(at) = screen[self.seen..].find(text) {
                    let end = self.seen + at + text.len();
                    let shown = plain(&screen[self.seen..end]);
                    self.seen = end;
                    return shown;
                }
            }
            if Instant::now() > deadline {
                let screen = self.screen.lock().unwrap();
                panic!(
                    "the terminal did not show {text:?} within {EXPECT_TIMEOUT:?}; it showed:\n{}",
                    plain(&screen[self.seen..])
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything shown so far, escape sequences removed.
    pub fn screen(&self) -> String {
        plain(&self.screen.lock().unwrap())
    }

    /// Waits for the process to exit (bounded), killing it if it does not.
    pub fn wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + EXPECT_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll netref") {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("netref did not exit; it showed:\n{}", self.screen());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `text` without terminal escape sequences and carriage returns.
pub fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                Some('[') => {
                    // CSI: parameters, then one final byte in @..~.
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    // OSC: up to BEL or ESC \.
                    while let Some(c) = chars.next() {
                        if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

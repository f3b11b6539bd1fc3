//! The REPL's line editor: a terminal in raw mode, read by a thread of its own.
//!
//! Why not rustyline: it reads the terminal through a buffer made anew for each line, so
//! keys typed (or pasted) while an input runs, beyond the first line, were lost. Here one
//! thread reads every byte the terminal sends, from start to end, into a queue; the editor
//! takes keys from the queue, so typed-ahead lines wait their turn. Ctrl-C while an input
//! runs reaches the session from that thread (raw mode has no SIGINT).
//!
//! Keys: printable text, Enter, Backspace, Delete, Left/Right, Home/End (and Ctrl-A/E,
//! Ctrl-B/F), Up/Down for history, Ctrl-U/K/W, Ctrl-L, Ctrl-C (clear the line; cancel a
//! running input), Ctrl-D (leave on an empty line), Tab (complete), bracketed paste (the
//! pasted text is inserted as it is, newlines included).

use std::io::{Read as _, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};

use nix::sys::termios::{self, LocalFlags, SetArg, Termios};

/// Completion: `(line, cursor)` to the start of the word to replace and the candidates.
pub(crate) type Complete<'a> = &'a dyn Fn(&str, usize) -> (usize, Vec<String>);

/// What reading a line gave.
pub(crate) enum Read {
    Line(String),
    /// Ctrl-C at the prompt.
    Interrupted,
    /// Ctrl-D on an empty line, or the end of the input.
    Eof,
}

/// The terminal as the editor and the printers share it.
struct Screen {
    /// The prompt and line shown now, and the cursor's offset in the line (in chars);
    /// `None` while no line is being read.
    shown: Option<(String, Vec<char>, usize)>,
}

/// A line editor on stdin and stdout, both terminals.
pub(crate) struct Editor {
    keys: Receiver<u8>,
    saved: Termios,
    screen: Arc<Mutex<Screen>>,
    history: Vec<String>,
    /// Set while an input runs: Ctrl-C then calls `on_interrupt` instead of being queued.
    running: Arc<AtomicBool>,
}

impl Editor {
    /// Puts the terminal in raw mode (output processing stays on) and starts reading it.
    /// `on_interrupt` runs (on the reading thread) for a Ctrl-C while an input runs.
    pub(crate) fn new(on_interrupt: impl Fn() + Send + 'static) -> std::io::Result<Editor> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        raw.local_flags &=
            !(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG | LocalFlags::IEXTEN);
        raw.input_flags &= !(termios::InputFlags::ICRNL | termios::InputFlags::IXON);
        raw.control_chars[termios::SpecialCharacterIndices::VMIN as usize] = 1;
        raw.control_chars[termios::SpecialCharacterIndices::VTIME as usize] = 0;
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSADRAIN, &raw)?;
        let running = Arc::new(AtomicBool::new(false));
        let (tx, keys) = channel();
        let flag = running.clone();
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 1024];
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                for &b in &buf[..n] {
                    if b == 3 && flag.load(Ordering::Acquire) {
                        on_interrupt();
                        continue;
                    }
                    if tx.send(b).is_err() {
                        return;
                    }
                }
            }
        });
        // Bracketed paste: the terminal marks pasted text.
        print!("\x1b[?2004h");
        let _ = std::io::stdout().flush();
        Ok(Editor {
            keys,
            saved,
            screen: Arc::new(Mutex::new(Screen { shown: None })),
            history: Vec::new(),
            running,
        })
    }

    /// Marks whether an input runs (see [`Editor::new`]).
    pub(crate) fn set_running(&self, on: bool) {
        self.running.store(on, Ordering::Release);
    }

    /// A function printing a line: above the line being read when there is one (which is
    /// drawn again below it), else plainly.
    pub(crate) fn printer(&self) -> impl Fn(&str) + Send + Sync + 'static {
        let screen = self.screen.clone();
        move |line: &str| {
            let screen = screen.lock().unwrap_or_else(|e| e.into_inner());
            let mut out = std::io::stdout().lock();
            match &screen.shown {
                Some((prompt, buf, cursor)) => {
                    let _ = write!(out, "\r\x1b[K{line}\n");
                    draw(&mut out, prompt, buf, *cursor);
                }
                None => {
                    let _ = writeln!(out, "{line}");
                }
            }
            let _ = out.flush();
        }
    }

    /// Loads history lines (oldest first).
    pub(crate) fn set_history(&mut self, lines: Vec<String>) {
        self.history = lines;
    }

    /// The history, oldest first.
    pub(crate) fn history(&self) -> &[String] {
        &self.history
    }

    /// Adds a history entry (not twice in a row).
    pub(crate) fn add_history(&mut self, line: &str) {
        if self.history.last().map(String::as_str) != Some(line) && !line.trim().is_empty() {
            self.history.push(line.to_owned());
        }
    }

    /// Reads one line after `prompt`. `complete(line, cursor)` gives the start of the word
    /// to replace and the candidates.
    pub(crate) fn read_line(&mut self, prompt: &str, complete: Complete<'_>) -> Read {
        let mut buf: Vec<char> = Vec::new();
        let mut cursor = 0usize;
        let mut hist = self.history.len();
        let mut stashed: Vec<char> = Vec::new();
        self.show(prompt, &buf, cursor);
        loop {
            let Ok(b) = self.keys.recv() else {
                self.hide();
                return Read::Eof;
            };
            match b {
                b'\r' | b'\n' => {
                    self.hide_with_newline(prompt, &buf);
                    return Read::Line(buf.into_iter().collect());
                }
                3 => {
                    self.hide_with_newline(prompt, &buf);
                    return Read::Interrupted;
                }
                4 if buf.is_empty() => {
                    self.hide_with_newline(prompt, &buf);
                    return Read::Eof;
                }
                4 if cursor < buf.len() => {
                    buf.remove(cursor);
                }
                1 => cursor = 0,
                5 => cursor = buf.len(),
                2 => cursor = cursor.saturating_sub(1),
                6 => cursor = (cursor + 1).min(buf.len()),
                11 => buf.truncate(cursor),
                21 => {
                    buf.drain(..cursor);
                    cursor = 0;
                }
                23 => {
                    let mut start = cursor;
                    while start > 0 && buf[start - 1] == ' ' {
                        start -= 1;
                    }
                    while start > 0 && buf[start - 1] != ' ' {
                        start -= 1;
                    }
                    buf.drain(start..cursor);
                    cursor = start;
                }
                12 => print!("\x1b[H\x1b[2J"),
                8 | 127 if cursor > 0 => {
                    cursor -= 1;
                    buf.remove(cursor);
                }
                b'\t' => {
                    let line: String = buf.iter().collect();
                    let at = buf[..cursor].iter().collect::<String>().len();
                    let (start, names) = complete(&line, at);
                    let start_chars = line[..start.min(line.len())].chars().count();
                    if let Some(common) = common_prefix(&names) {
                        let typed = cursor.saturating_sub(start_chars);
                        let add: Vec<char> = common.chars().skip(typed).collect();
                        for (i, c) in add.iter().enumerate() {
                            buf.insert(cursor + i, *c);
                        }
                        cursor += add.len();
                        if names.len() > 1 && add.is_empty() {
                            self.print_above(prompt, &buf, cursor, &names.join("  "));
                        }
                    }
                }
                0x1b => match self.escape() {
                    Key::Left => cursor = cursor.saturating_sub(1),
                    Key::Right => cursor = (cursor + 1).min(buf.len()),
                    Key::Home => cursor = 0,
                    Key::End => cursor = buf.len(),
                    Key::Delete if cursor < buf.len() => {
                        buf.remove(cursor);
                    }
                    Key::Up if hist > 0 => {
                        if hist == self.history.len() {
                            stashed = buf.clone();
                        }
                        hist -= 1;
                        buf = self.history[hist].chars().collect();
                        cursor = buf.len();
                    }
                    Key::Down if hist < self.history.len() => {
                        hist += 1;
                        buf = if hist == self.history.len() {
                            stashed.clone()
                        } else {
                            self.history[hist].chars().collect()
                        };
                        cursor = buf.len();
                    }
                    Key::Paste(text) => {
                        for c in text.chars().filter(|c| *c != '\r') {
                            buf.insert(cursor, c);
                            cursor += 1;
                        }
                    }
                    _ => {}
                },
                b if b >= 0x20 => {
                    let c = self.utf8(b);
                    buf.insert(cursor, c);
                    cursor += 1;
                }
                _ => {}
            }
            self.show(prompt, &buf, cursor);
        }
    }

    /// The rest of a UTF-8 character starting with `first`.
    fn utf8(&self, first: u8) -> char {
        let len = match first {
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => 1,
        };
        let mut bytes = vec![first];
        while bytes.len() < len {
            match self.keys.recv() {
                Ok(b) => bytes.push(b),
                Err(_) => break,
            }
        }
        String::from_utf8_lossy(&bytes)
            .chars()
            .next()
            .unwrap_or('?')
    }

    /// An escape sequence after ESC.
    fn escape(&self) -> Key {
        let Ok(b) = self.keys.recv() else {
            return Key::Other;
        };
        if b != b'[' && b != b'O' {
            return Key::Other;
        }
        let mut params = String::new();
        loop {
            let Ok(b) = self.keys.recv() else {
                return Key::Other;
            };
            if (0x40..=0x7e).contains(&b) {
                return match (params.as_str(), b) {
                    (_, b'A') => Key::Up,
                    (_, b'B') => Key::Down,
                    (_, b'C') => Key::Right,
                    (_, b'D') => Key::Left,
                    (_, b'H') | ("1" | "7", b'~') => Key::Home,
                    (_, b'F') | ("4" | "8", b'~') => Key::End,
                    ("3", b'~') => Key::Delete,
                    ("200", b'~') => Key::Paste(self.pasted()),
                    _ => Key::Other,
                };
            }
            params.push(b as char);
        }
    }

    /// Bracketed-paste text, up to the closing `ESC [ 201 ~`.
    fn pasted(&self) -> String {
        const END: &[u8] = b"\x1b[201~";
        let mut bytes = Vec::new();
        while let Ok(b) = self.keys.recv() {
            bytes.push(b);
            if bytes.ends_with(END) {
                bytes.truncate(bytes.len() - END.len());
                break;
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn show(&self, prompt: &str, buf: &[char], cursor: usize) {
        let mut screen = self.screen.lock().unwrap_or_else(|e| e.into_inner());
        screen.shown = Some((prompt.to_owned(), buf.to_vec(), cursor));
        let mut out = std::io::stdout().lock();
        draw(&mut out, prompt, buf, cursor);
        let _ = out.flush();
    }

    fn print_above(&self, prompt: &str, buf: &[char], cursor: usize, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\r\x1b[K{text}\n");
        draw(&mut out, prompt, buf, cursor);
        let _ = out.flush();
    }

    fn hide(&self) {
        self.screen.lock().unwrap_or_else(|e| e.into_inner()).shown = None;
    }

    /// Leaves the line as typed (newlines shown as such) and moves below it.
    fn hide_with_newline(&self, prompt: &str, buf: &[char]) {
        let mut screen = self.screen.lock().unwrap_or_else(|e| e.into_inner());
        screen.shown = None;
        let mut out = std::io::stdout().lock();
        let text: String = buf.iter().collect();
        let _ = write!(
            out,
            "\r\x1b[K{prompt}{}\n",
            text.replace('\n', "\n   ...> ")
        );
        let _ = out.flush();
    }
}

impl Drop for Editor {
    fn drop(&mut self) {
        print!("\x1b[?2004l");
        let _ = std::io::stdout().flush();
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSADRAIN, &self.saved);
    }
}

enum Key {
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    Delete,
    Paste(String),
    Other,
}

/// Draws the prompt and the line (a pasted newline shows as `⏎`), cursor in place.
fn draw(out: &mut impl Write, prompt: &str, buf: &[char], cursor: usize) {
    let shown: String = buf
        .iter()
        .map(|c| if *c == '\n' { '⏎' } else { *c })
        .collect();
    let _ = write!(out, "\r\x1b[K{prompt}{shown}");
    let back = buf.len() - cursor;
    if back > 0 {
        let _ = write!(out, "\x1b[{back}D");
    }
}

/// The longest prefix all `names` share.
fn common_prefix(names: &[String]) -> Option<String> {
    let first = names.first()?;
    let mut len = first.len();
    for n in &names[1..] {
        len = first
            .char_indices()
            .zip(n.chars())
            .take_while(|((_, a), b)| a == b)
            .last()
            .map_or(0, |((i, a), _)| i + a.len_utf8())
            .min(len);
    }
    Some(first[..len].to_owned())
}

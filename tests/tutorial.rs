//! `docs/tutorial.md` cannot drift: every transcript and diagram in it is re-made from the
//! scripts in `docs/tutorial/` with the current build and compared.
//!
//! The tutorial marks generated blocks with HTML comments:
//!
//! ```text
//! <!-- transcript: 03-callbacks -->        part 1 of docs/tutorial/03-callbacks.repl
//! <!-- transcript: 03-callbacks 2 -->      part 2 (parts are split by `// ---` lines)
//! <!-- mermaid: 03-callbacks -->           the output of its first `:trace mermaid`
//! <!-- mermaid: 03-callbacks 2 -->         of its second
//! ```
//!
//! each followed by a fenced block (```` ```text ```` or ```` ```mermaid ````) and
//! `<!-- end -->`. A script runs through `netref repl --echo` (the in-process lab), whose
//! output is the transcript: each input after the prompt, then what it shows. `:trace
//! mermaid` inputs and their output go to the diagrams instead, and `// ---` lines split
//! the transcript into parts.
//!
//! `NETREF_BLESS=1 cargo test --test tutorial` rewrites the blocks from the current build
//! instead of comparing.

mod cli_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What one script produced.
#[derive(Debug, Default)]
struct Made {
    parts: Vec<String>,
    diagrams: Vec<String>,
}

/// A generated block of the tutorial.
#[derive(Debug)]
struct Block {
    kind: Kind,
    script: String,
    index: usize,
    /// Byte range of the block's fenced contents (between the fences).
    body: std::ops::Range<usize>,
    line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Transcript,
    Mermaid,
}

const PART_BREAK: &str = "// ---";
const PROMPT: &str = "netref> ";
const CONTINUATION: &str = "   ...> ";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Finds the marked blocks of `doc`.
fn blocks(doc: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = doc[at..].find("<!-- ") {
        let start = at + found;
        let close = start + doc[start..].find("-->").expect("an unclosed comment");
        let words: Vec<&str> = doc[start + 5..close].split_whitespace().collect();
        at = close + 3;
        // Markers start a line: prose may quote one in backticks.
        if start > 0 && !doc[..start].ends_with('\n') {
            continue;
        }
        let kind = match words.first() {
            Some(&"transcript:") => Kind::Transcript,
            Some(&"mermaid:") => Kind::Mermaid,
            _ => continue,
        };
        let line = doc[..start].lines().count() + 1;
        let script = words
            .get(1)
            .unwrap_or_else(|| panic!("line {line}: a marker without a script name"))
            .to_string();
        let index = words
            .get(2)
            .map_or(1, |n| n.parse().expect("a part number"));
        let fence = if kind == Kind::Transcript {
            "```text\n"
        } else {
            "```mermaid\n"
        };
        let rest = &doc[at..];
        let open = rest
            .find(fence)
            .unwrap_or_else(|| panic!("line {line}: no {fence:?} after the marker"));
        assert!(
            rest[..open].trim().is_empty(),
            "line {line}: the fence must follow the marker"
        );
        let body_start = at + open + fence.len();
        let body_end = body_start
            + doc[body_start..]
                .find("```\n")
                .unwrap_or_else(|| panic!("line {line}: an unclosed fence"));
        let after = &doc[body_end + 4..];
        assert!(
            after.trim_start().starts_with("<!-- end -->"),
            "line {line}: `<!-- end -->` must follow the block"
        );
        at = body_end;
        out.push(Block {
            kind,
            script,
            index,
            body: body_start..body_end,
            line,
        });
    }
    out
}

/// Runs `docs/tutorial/NAME.repl` and splits its transcript.
fn make(name: &str) -> Made {
    let path = root().join("docs/tutorial").join(format!("{name}.repl"));
    let script = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let out = cli_support::run(&["repl", "--echo"], &script);
    assert!(
        matches!(out.code(), Some(0 | 1)),
        "{name}: netref repl failed: {out:?}"
    );
    assert_eq!(out.stderr, "", "{name}: netref repl wrote to stderr");
    split(&out.stdout)
}

/// Splits an `--echo` transcript into parts and diagrams.
fn split(transcript: &str) -> Made {
    // Each input: its echoed lines, then its output lines.
    let mut inputs: Vec<(Vec<&str>, Vec<&str>)> = Vec::new();
    for line in transcript.lines() {
        if line.starts_with(PROMPT) {
            inputs.push((vec![line], Vec::new()));
        } else if line.starts_with(CONTINUATION) && inputs.last().is_some_and(|i| i.1.is_empty()) {
            inputs.last_mut().unwrap().0.push(line);
        } else {
            let input = inputs.last_mut().expect("output before the first input");
            input.1.push(line);
        }
    }
    let mut made = Made::default();
    let mut part = String::new();
    for (echo, output) in inputs {
        let input = echo[0][PROMPT.len()..].trim();
        if input == PART_BREAK {
            made.parts.push(std::mem::take(&mut part));
        } else if input == ":trace mermaid" {
            made.diagrams.push(lines(&output));
        } else {
            part.push_str(&lines(&echo));
            part.push_str(&lines(&output));
        }
    }
    made.parts.push(part);
    made
}

fn lines(ls: &[&str]) -> String {
    ls.iter().map(|l| format!("{l}\n")).collect()
}

/// A line diff of `want` and `got` (longest common subsequence), with three lines of
/// context around each change, for failure messages.
fn diff(want: &str, got: &str) -> String {
    let a: Vec<&str> = want.lines().collect();
    let b: Vec<&str> = got.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut ops) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push(("   ", a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push((" - ", a[i]));
            i += 1;
        } else {
            ops.push((" + ", b[j]));
            j += 1;
        }
    }
    const CONTEXT: usize = 3;
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != "   ").collect();
    let near = |k: usize| changed.iter().any(|&c| c.abs_diff(k) <= CONTEXT);
    let mut out = String::new();
    let mut skipped = false;
    for (k, (mark, line)) in ops.iter().enumerate() {
        if near(k) {
            out.push_str(&format!("{mark}{line}\n"));
            skipped = false;
        } else if !skipped {
            out.push_str("   ...\n");
            skipped = true;
        }
    }
    out
}

fn scripts_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("docs/tutorial")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "repl"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn the_tutorial_matches_the_current_build() {
    let doc_path = root().join("docs/tutorial.md");
    let doc = std::fs::read_to_string(&doc_path).expect("docs/tutorial.md");
    let blocks = blocks(&doc);
    let used: BTreeSet<String> = blocks.iter().map(|b| b.script.clone()).collect();
    let all = scripts_in(&root().join("docs/tutorial"));
    let unused: Vec<&String> = all.difference(&used).collect();
    assert!(unused.is_empty(), "scripts no block shows: {unused:?}");

    // One run per script, all at once.
    let made: BTreeMap<String, Made> = std::thread::scope(|s| {
        let runs: Vec<_> = used
            .iter()
            .map(|name| (name.clone(), s.spawn(move || make(name))))
            .collect();
        runs.into_iter()
            .map(|(name, run)| (name, run.join().expect("a script run")))
            .collect()
    });

    let mut new_doc = String::with_capacity(doc.len());
    let mut at = 0;
    let mut failures = Vec::new();
    let mut shown: BTreeMap<(String, &str), BTreeSet<usize>> = BTreeMap::new();
    for b in &blocks {
        let m = &made[&b.script];
        let (what, list) = match b.kind {
            Kind::Transcript => ("part", &m.parts),
            Kind::Mermaid => ("diagram", &m.diagrams),
        };
        let fresh = list.get(b.index - 1).unwrap_or_else(|| {
            panic!(
                "line {}: {} has {} {what}(s), not {}",
                b.line,
                b.script,
                list.len(),
                b.index
            )
        });
        shown
            .entry((b.script.clone(), what))
            .or_default()
            .insert(b.index);
        let old = &doc[b.body.clone()];
        if old != fresh {
            failures.push(format!(
                "docs/tutorial.md line {}: {what} {} of {} differs (- in the tutorial, + now):\n{}",
                b.line,
                b.index,
                b.script,
                diff(old, fresh)
            ));
        }
        new_doc.push_str(&doc[at..b.body.start]);
        new_doc.push_str(fresh);
        at = b.body.end;
    }
    new_doc.push_str(&doc[at..]);
    // Every part and diagram a script makes is shown somewhere.
    for (name, m) in &made {
        for (what, n) in [("part", m.parts.len()), ("diagram", m.diagrams.len())] {
            let have = shown
                .get(&(name.clone(), what))
                .cloned()
                .unwrap_or_default();
            let missing: Vec<usize> = (1..=n).filter(|i| !have.contains(i)).collect();
            assert!(
                missing.is_empty(),
                "{name}: no block shows {what}(s) {missing:?}"
            );
        }
    }

    if std::env::var_os("NETREF_BLESS").is_some_and(|v| v == "1") {
        if new_doc != doc {
            std::fs::write(&doc_path, new_doc).expect("write docs/tutorial.md");
        }
        return;
    }
    assert!(
        failures.is_empty(),
        "{}\n{} block(s) differ; if the change is intended, regenerate them with\n  \
         NETREF_BLESS=1 cargo test --test tutorial",
        failures.join("\n"),
        failures.len()
    );
}

#[test]
fn transcripts_split_into_parts_and_diagrams() {
    let made = split(
        "netref> :trace on\nnetref> f(1,\n   ...>   2)\n  -> Call 1 root.f(1, 2)\n3\n\
         netref> :trace mermaid\nsequenceDiagram\n    A->>B: x\nnetref> // ---\nnetref> g\n4\n",
    );
    assert_eq!(
        made.parts,
        [
            "netref> :trace on\nnetref> f(1,\n   ...>   2)\n  -> Call 1 root.f(1, 2)\n3\n",
            "netref> g\n4\n"
        ]
    );
    assert_eq!(made.diagrams, ["sequenceDiagram\n    A->>B: x\n"]);
    assert_eq!(diff("a\nb\nc\n", "a\nx\nc\n"), "   a\n - b\n + x\n   c\n");
    let long: String = (0..20).map(|i| format!("{i}\n")).collect();
    assert_eq!(
        diff(&long, &long.replace("10\n", "ten\n")),
        "   ...\n   7\n   8\n   9\n - 10\n + ten\n   11\n   12\n   13\n   ...\n"
    );
    let doc = "x\n<!-- transcript: 01-a 2 -->\n```text\nold\n```\n<!-- end -->\n\
               <!-- other --> `<!-- mermaid: quoted -->`\n<!-- mermaid: 01-a -->\n```mermaid\nm\n```\n<!-- end -->\n";
    let bs = blocks(doc);
    assert_eq!(bs.len(), 2);
    assert_eq!(
        (bs[0].kind, bs[0].script.as_str(), bs[0].index),
        (Kind::Transcript, "01-a", 2)
    );
    assert_eq!(&doc[bs[0].body.clone()], "old\n");
    assert_eq!(
        (bs[1].kind, &doc[bs[1].body.clone()]),
        (Kind::Mermaid, "m\n")
    );
}

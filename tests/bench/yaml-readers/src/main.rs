//! The YAML reader evaluation: serde_yaml_ng against serde-saphyr, saphyr-parser, granit-parser
//! and yaml-rust2 for speed, equality and hostile input. See README.md for the commands.
//!
//! It includes the project's input generator and its flow-nesting guard by path, and copies
//! `lint.rs`'s `documents()` split, so every reader sees what `lint::load` hands serde_yaml_ng.

mod build;
#[path = "../../../../benches/support/gen.rs"]
mod gen;
#[path = "../../../../src/yaml_guard.rs"]
mod yaml_guard;

use build::{tag_kind, Builder, Style};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub type Reader = fn(&str) -> Result<Value, String>;

fn ng(text: &str) -> Result<Value, String> {
    serde_yaml_ng::from_str::<Value>(text).map_err(|e| e.to_string())
}

fn saphyr_options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    o.strict_booleans = true;
    o.leading_zero_numbers_as_strings = true;
    o.underscored_numbers_as_strings = true;
    o.merge_keys = serde_saphyr::MergeKeyPolicy::AsOrdinary;
    o.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
    let mut b = serde_saphyr::Budget::default();
    b.max_depth = 128;
    o.budget = Some(b);
    o
}

fn serde_saphyr_compat(text: &str) -> Result<Value, String> {
    thread_local!(static OPTS: serde_saphyr::Options = saphyr_options());
    OPTS.with(|o| serde_saphyr::from_str_with_options::<Value>(text, o.clone()))
        .map_err(|e| e.to_string())
}

fn serde_saphyr_default(text: &str) -> Result<Value, String> {
    serde_saphyr::from_str::<Value>(text).map_err(|e| e.to_string())
}

fn saphyr_events(text: &str) -> Result<Value, String> {
    use saphyr_parser::{Event, Parser, ScalarStyle};
    let mut b = Builder::default();
    let mut p = Parser::new_from_str(text);
    while let Some(ev) = p.next_event() {
        let (ev, span) = ev.map_err(|e| e.to_string())?;
        let at = |e: String| {
            format!(
                "{e} at line {} column {}",
                span.start.line(),
                span.start.col() + 1
            )
        };
        let r = match ev {
            Event::DocumentStart(_) => b.document_start(),
            Event::Scalar(v, style, anchor, tag) => {
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                    _ => Style::Block,
                };
                b.scalar(
                    v.into(),
                    style,
                    anchor,
                    tag.as_ref().map(|t| tag_kind(&t.handle, &t.suffix)),
                )
            }
            Event::SequenceStart(anchor, tag) => {
                b.seq_start(anchor, tag.as_ref().map(|t| tag_kind(&t.handle, &t.suffix)))
            }
            Event::MappingStart(anchor, tag) => {
                b.map_start(anchor, tag.as_ref().map(|t| tag_kind(&t.handle, &t.suffix)))
            }
            Event::SequenceEnd | Event::MappingEnd => b.end(),
            Event::Alias(id) => b.alias(id),
            _ => Ok(()),
        };
        r.map_err(at)?;
    }
    Ok(b.finish())
}

fn granit_options() -> granit_parser::Options {
    let mut o = granit_parser::Options::default();
    o.block_nesting_limit = 130;
    o
}

fn granit_events(text: &str) -> Result<Value, String> {
    use granit_parser::{Event, Parser, ScalarStyle};
    let mut b = Builder::default();
    let mut p = Parser::new_from_str_with_options(text, granit_options());
    while let Some(ev) = p.next_event() {
        let (ev, span) = ev.map_err(|e| e.to_string())?;
        let at = |e: String| {
            format!(
                "{e} at line {} column {}",
                span.start.line(),
                span.start.col() + 1
            )
        };
        let r = match ev {
            Event::DocumentStart(..) => b.document_start(),
            Event::Scalar(v, style, anchor, tag) => {
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                    _ => Style::Block,
                };
                b.scalar(
                    v.into(),
                    style,
                    anchor,
                    tag.as_ref().map(|t| tag_kind(t.handle(), t.suffix())),
                )
            }
            Event::SequenceStart(_, anchor, tag) => b.seq_start(
                anchor,
                tag.as_ref().map(|t| tag_kind(t.handle(), t.suffix())),
            ),
            Event::MappingStart(_, anchor, tag) => b.map_start(
                anchor,
                tag.as_ref().map(|t| tag_kind(t.handle(), t.suffix())),
            ),
            Event::SequenceEnd | Event::MappingEnd => b.end(),
            Event::Alias(id) => b.alias(id),
            _ => Ok(()),
        };
        r.map_err(at)?;
    }
    Ok(b.finish())
}

fn yaml_rust2_events(text: &str) -> Result<Value, String> {
    use yaml_rust2::parser::{Event, Parser};
    use yaml_rust2::scanner::TScalarStyle;
    let mut b = Builder::default();
    let mut p = Parser::new_from_str(text);
    loop {
        let (ev, mark) = p.next_token().map_err(|e| e.to_string())?;
        let at = |e: String| format!("{e} at line {} column {}", mark.line(), mark.col() + 1);
        let r = match ev {
            Event::StreamEnd => break,
            Event::DocumentStart => b.document_start(),
            Event::Scalar(v, style, anchor, tag) => {
                let style = match style {
                    TScalarStyle::Plain => Style::Plain,
                    TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => Style::Quoted,
                    _ => Style::Block,
                };
                b.scalar(
                    v.into(),
                    style,
                    anchor,
                    tag.as_ref().map(|t| tag_kind(&t.handle, &t.suffix)),
                )
            }
            Event::SequenceStart(anchor, tag) => {
                b.seq_start(anchor, tag.as_ref().map(|t| tag_kind(&t.handle, &t.suffix)))
            }
            Event::MappingStart(anchor, tag) => {
                b.map_start(anchor, tag.as_ref().map(|t| tag_kind(&t.handle, &t.suffix)))
            }
            Event::SequenceEnd | Event::MappingEnd => b.end(),
            Event::Alias(id) => b.alias(id),
            _ => Ok(()),
        };
        r.map_err(at)?;
    }
    Ok(b.finish())
}

fn ng_ignored(text: &str) -> Result<Value, String> {
    serde_yaml_ng::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| Value::Null)
        .map_err(|e| e.to_string())
}
fn saphyr_drain(text: &str) -> Result<Value, String> {
    let mut n = 0usize;
    for ev in saphyr_parser::Parser::new_from_str(text) {
        ev.map_err(|e| e.to_string())?;
        n += 1;
    }
    Ok(Value::from(n))
}
fn granit_drain(text: &str) -> Result<Value, String> {
    let mut n = 0usize;
    for ev in granit_parser::Parser::new_from_str_with_options(text, granit_options()) {
        ev.map_err(|e| e.to_string())?;
        n += 1;
    }
    Ok(Value::from(n))
}
fn yaml_rust2_drain(text: &str) -> Result<Value, String> {
    let mut p = yaml_rust2::parser::Parser::new_from_str(text);
    let mut n = 0usize;
    loop {
        let (ev, _) = p.next_token().map_err(|e| e.to_string())?;
        n += 1;
        if ev == yaml_rust2::parser::Event::StreamEnd {
            break;
        }
    }
    Ok(Value::from(n))
}

pub const READERS: &[(&str, Reader)] = &[
    ("serde_yaml_ng", ng),
    ("serde-saphyr(compat)", serde_saphyr_compat),
    ("serde-saphyr(default)", serde_saphyr_default),
    ("saphyr-parser+builder", saphyr_events),
    ("granit-parser+builder", granit_events),
    ("yaml-rust2+builder", yaml_rust2_events),
    ("ng->IgnoredAny", ng_ignored),
    ("saphyr-parser(events only)", saphyr_drain),
    ("granit-parser(events only)", granit_drain),
    ("yaml-rust2(events only)", yaml_rust2_drain),
];

fn reader(name: &str) -> Reader {
    match READERS.iter().find(|(n, _)| *n == name) {
        Some(r) => r.1,
        None => {
            let names: Vec<&str> = READERS.iter().map(|r| r.0).collect();
            fail(format!(
                "no reader {name:?}; the readers: {}",
                names.join(", ")
            ))
        }
    }
}

/// lint.rs's document split, verbatim in behaviour.
pub fn documents<'a>(text: &'a str) -> Vec<&'a str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    let push = |from: usize, to: usize, docs: &mut Vec<&'a str>| {
        let chunk = &text[from..to];
        let has_content = chunk
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && l.trim() != "...");
        if has_content {
            docs.push(chunk);
        }
    };
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end();
        if bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t") {
            push(start, offset, &mut docs);
            start = offset + line.len();
        }
        offset += line.len();
    }
    push(start, text.len(), &mut docs);
    docs
}

/// Stops with a message (exit 2): a missing or unreadable input, a bad argument.
fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("yaml-readers: {msg}");
    std::process::exit(2)
}

/// The repository this crate sits in (`tests/bench/yaml-readers` → `../../..`).
fn repo() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    dir.canonicalize().unwrap_or(dir)
}

/// `path` relative to the repository when it is inside it, for labels.
fn label(path: &Path) -> String {
    path.strip_prefix(repo())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every file below `dir`, sorted by path, as (name, text); non-UTF-8 files are skipped.
fn files(dir: &Path, out: &mut Vec<(String, String)>) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| fail(format!("cannot read the folder {}: {e}", dir.display())));
    let mut paths = Vec::new();
    for e in entries {
        match e {
            Ok(e) => paths.push(e.path()),
            Err(e) => fail(format!("cannot list the folder {}: {e}", dir.display())),
        }
    }
    paths.sort();
    for p in paths {
        if p.is_dir() {
            files(&p, out);
            continue;
        }
        let bytes =
            std::fs::read(&p).unwrap_or_else(|e| fail(format!("cannot read {}: {e}", p.display())));
        let name = label(&p);
        match String::from_utf8(bytes) {
            Ok(t) => out.push((name, t)),
            Err(_) => eprintln!("skip non-UTF-8 {name}"),
        }
    }
}

/// Options taken out of the arguments before the command's own.
struct Opts {
    /// Apps to generate (5 objects each): `--apps N`, default 2000.
    apps: usize,
    /// A live-form state folder to read instead of generating one: `--state DIR`.
    state: Option<PathBuf>,
    /// Further folders of YAML for `equal`: `--dir DIR`, repeatable.
    dirs: Vec<PathBuf>,
}

/// A generated state tree (`gen::write_tree`, one file per app) in a temp dir, removed on drop.
struct TempState(PathBuf);

impl TempState {
    fn new(apps: usize, form: gen::Form) -> TempState {
        let form_name = match form {
            gen::Form::Live => "live",
            gen::Form::Manifest => "manifest",
        };
        let dir =
            std::env::temp_dir().join(format!("yaml-readers-{}-{form_name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = gen::write_tree(&dir, apps, form) {
            let _ = std::fs::remove_dir_all(&dir);
            fail(format!(
                "cannot write the generated state under {}: {e}",
                dir.display()
            ));
        }
        TempState(dir)
    }
}

impl Drop for TempState {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The live-form state files: `--state DIR`, or generated for `--apps` apps.
fn live_state(opts: &Opts) -> (String, Vec<(String, String)>) {
    let mut out = Vec::new();
    match &opts.state {
        Some(dir) => {
            files(dir, &mut out);
            (format!("live-form state {}", dir.display()), out)
        }
        None => {
            let tmp = TempState::new(opts.apps, gen::Form::Live);
            files(&tmp.0, &mut out);
            (
                format!("live-form state (generated, {} apps)", opts.apps),
                out,
            )
        }
    }
}

fn guard(text: &str) -> Option<usize> {
    // The project's guard, by path.
    yaml_guard::too_deep(text, yaml_guard::MAX_FLOW_DEPTH)
}

fn bench(runs: usize, which: &[String], opts: &Opts) {
    let stream = gen::yaml_stream(opts.apps, gen::Form::Manifest);
    let git_docs = documents(&stream);
    let (_, live) = live_state(opts);
    let live_text: String = live
        .iter()
        .map(|(_, t)| t.as_str())
        .collect::<Vec<_>>()
        .join("\n---\n");
    let live_docs = documents(&live_text);
    let sets = [
        ("git-form stream", stream.len(), git_docs),
        ("live-form files", live_text.len(), live_docs),
    ];
    for (label, bytes, docs) in &sets {
        if docs.is_empty() {
            continue;
        }
        println!(
            "## {label}: {} docs, {:.2} MiB",
            docs.len(),
            *bytes as f64 / 1048576.0
        );
        let names: Vec<&str> = if which.is_empty() {
            READERS.iter().map(|r| r.0).collect()
        } else {
            which.iter().map(String::as_str).collect()
        };
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
        for _ in 0..runs {
            // interleaved so load changes hit every reader alike
            for (i, n) in names.iter().enumerate() {
                let r = reader(n);
                let t = Instant::now();
                let mut ok = 0usize;
                for d in docs {
                    if guard(d).is_none() && r(d).is_ok() {
                        ok += 1;
                    }
                }
                times[i].push(t.elapsed().as_secs_f64());
                assert_eq!(ok, docs.len(), "{n} failed some docs");
            }
        }
        let base = median(times[0].clone());
        for (i, n) in names.iter().enumerate() {
            let m = median(times[i].clone());
            let raw: Vec<String> = times[i].iter().map(|t| format!("{:.3}", t)).collect();
            println!(
                "| {n} | {:.1} MiB/s | {:.0} docs/s | x{:.2} vs {} | median {:.3}s runs [{}]",
                *bytes as f64 / 1048576.0 / m,
                docs.len() as f64 / m,
                base / m,
                names[0],
                m,
                raw.join(" ")
            );
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn equal(which: &[String], opts: &Opts) {
    let mut sets: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let stream = gen::yaml_stream(opts.apps, gen::Form::Manifest);
    sets.push(("git-form stream".into(), vec![("stream".into(), stream)]));
    sets.push(live_state(opts));
    {
        let tmp = TempState::new(opts.apps, gen::Form::Manifest);
        let mut f = Vec::new();
        files(&tmp.0, &mut f);
        sets.push((
            format!("manifest-form state (generated, {} apps)", opts.apps),
            f,
        ));
    }
    let repo = repo();
    let mut dirs: Vec<PathBuf> = ["fuzz/corpus/lint_yaml", "tests/fixtures", "manifests"]
        .iter()
        .map(|d| repo.join(d))
        .collect();
    dirs.extend(opts.dirs.iter().cloned());
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("cases"));
    for d in dirs {
        let mut f = Vec::new();
        if d.exists() {
            files(&d, &mut f);
        } else {
            eprintln!("skip missing {}", d.display());
        }
        sets.push((label(&d), f));
    }
    // By default the readers that build a Value (not the baseline, not the events-only floors).
    let names: Vec<&str> = if which.is_empty() {
        READERS[1..6].iter().map(|r| r.0).collect()
    } else {
        which.iter().map(String::as_str).collect()
    };
    for n in names {
        let r = reader(n);
        println!("## {n}");
        for (label, fs) in &sets {
            let (mut total, mut same, mut both_err) = (0, 0, 0);
            let mut diffs = Vec::new();
            for (file, text) in fs {
                for (i, d) in documents(text).iter().enumerate() {
                    if guard(d).is_some() {
                        continue;
                    }
                    total += 1;
                    let a = ng(d);
                    let b =
                        std::panic::catch_unwind(|| r(d)).unwrap_or_else(|_| Err("PANIC".into()));
                    match (&a, &b) {
                        (Ok(x), Ok(y)) if x == y => same += 1,
                        (Err(_), Err(_)) => {
                            same += 1;
                            both_err += 1
                        }
                        _ => diffs.push(format!(
                            "  {file} doc {}: ng={} other={}\n    text={:?}",
                            i + 1,
                            short(&a),
                            short(&b),
                            &d[..d.len().min(300)]
                        )),
                    }
                }
            }
            println!("{label}: equal {same}/{total} ({both_err} both errors)");
            for d in diffs.iter().take(40) {
                println!("{d}");
            }
        }
    }
}

fn short(r: &Result<Value, String>) -> String {
    let s = match r {
        Ok(v) => format!("Ok({v})"),
        Err(e) => format!("Err({e})"),
    };
    s.chars().take(400).collect()
}

fn hostile(name: &str, case: &str, guarded: bool) {
    let text = match case {
        "flow-deep" => "[".repeat(100_000),
        "flow-map-deep" => format!("a: {}", "{a: ".repeat(100_000)),
        "flow-key-deep" => format!("[{}", "a: [".repeat(100_000)),
        "block-seq-deep" => "- ".repeat(100_000),
        "block-map-deep" => (0..1000)
            .map(|i| format!("{}a:\n", " ".repeat(i)))
            .collect(),
        "block-seq-deep-1m" => "- ".repeat(1_000_000),
        "laughs" => {
            let mut l = String::from(
                "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
            );
            for (prev, n) in ["a", "b", "c", "d", "e", "f", "g", "h"]
                .iter()
                .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
            {
                l.push_str(&format!(
                    "{n}: &{n} [{}]\n",
                    vec![format!("*{prev}"); 9].join(",")
                ));
            }
            l.push_str("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n");
            l
        }
        "huge-scalar" => format!("a: {}\n", "x".repeat(200 << 20)),
        "huge-quoted" => format!("a: \"{}\"\n", "x\\n".repeat(50 << 20)),
        "huge-key" => format!("{}: 1\n", "k".repeat(10 << 20)),
        "many-keys" => (0..2_000_000).map(|i| format!("k{i}: {i}\n")).collect(),
        "invalid-utf8" => {
            // lint reads files as UTF-8 strings; invalid bytes never reach the parser. Lossy form:
            String::from_utf8_lossy(b"a: \xff\xfe\nb: \xc3\x28\n").into_owned()
        }
        "unterminated-quote" => "a: \"never closed\nb: 1\n".repeat(1000),
        "unterminated-flow" => "a: [1, 2, {b: 3\n".to_string(),
        "unterminated-block-scalar" => "a: |\n  text\n  more".to_string(),
        "tabs-indent" => "a:\n\tb: 1\n".to_string(),
        "nul-bytes" => "a: \u{0}\u{0}\n".to_string(),
        "many-anchors" => (0..200_000).map(|i| format!("k{i}: &a{i} v\n")).collect(),
        "alias-many" => format!(
            "a: &a [1,2,3,4,5,6,7,8,9,10]\nb: [{}]\n",
            vec!["*a"; 100_000].join(",")
        ),
        "long-simple-key" => format!("{}: x\n", "a ".repeat(100_000)),
        "many-docs" => "a: 1\n...\n".repeat(100_000),
        "flow-wide" => format!("[{}]", "[1],".repeat(2_000_000)),
        _ => fail(format!("no hostile case {case:?} (hostile.sh lists them)")),
    };
    let r = reader(name);
    let t = Instant::now();
    // On a 2 MiB thread, like lint's parse workers (std::thread::scope default).
    let res = std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn_scoped(s, || {
                if guarded && guard(&text).is_some() {
                    Err("refused by yaml_guard".to_string())
                } else {
                    r(&text)
                }
            })
            .expect("spawn the parse thread")
            .join()
            .unwrap_or_else(|_| Err("PANIC".into()))
    });
    let took = t.elapsed();
    let s = match &res {
        Ok(v) => format!(
            "OK ({} bytes of JSON)",
            serde_json::to_string(v).map(|s| s.len()).unwrap_or(0)
        ),
        Err(e) => format!(
            "ERR {}",
            e.chars().take(160).collect::<String>().replace('\n', " ")
        ),
    };
    println!(
        "{name}\t{case}\tguard={guarded}\t{:.3}s\t{s}",
        took.as_secs_f64()
    );
}

const USAGE: &str = "usage: yaml-readers [--apps N] [--state DIR] [--dir DIR]... COMMAND
  bench RUNS [READER...]     single thread, runs interleaved across readers
  par RUNS [READER...]       2 threads, contiguous chunks
  equal [READER...]          Value equality with serde_yaml_ng, document by document
  jsonref RUNS               serde_json::from_str on the same documents as JSON
  hostile READER CASE [guard|noguard]
  one READER FILE
--apps N: apps generated (5 objects each, default 2000); --state DIR: a live-form state to read
instead of generating one; --dir DIR: more YAML folders for equal";

fn runs(arg: Option<&String>) -> usize {
    match arg.map(|a| a.parse::<usize>()) {
        Some(Ok(n)) if n > 0 => n,
        _ => fail(format!("RUNS must be a positive number\n{USAGE}")),
    }
}

fn main() {
    let mut opts = Opts {
        apps: 2000,
        state: None,
        dirs: Vec::new(),
    };
    let mut args: Vec<String> = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .unwrap_or_else(|| fail(format!("{flag} needs a value\n{USAGE}")))
        };
        match a.as_str() {
            "--apps" => {
                opts.apps = value("--apps")
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| fail("--apps must be a positive number"))
            }
            "--state" => opts.state = Some(PathBuf::from(value("--state"))),
            "--dir" => opts.dirs.push(PathBuf::from(value("--dir"))),
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            _ => args.push(a),
        }
    }
    let arg = |i: usize| {
        args.get(i)
            .map(String::as_str)
            .unwrap_or_else(|| fail(USAGE))
    };
    match arg(0) {
        "bench" => bench(runs(args.get(1)), &args[2..], &opts),
        "equal" => equal(&args[1..], &opts),
        "hostile" => hostile(arg(1), arg(2), args.get(3).is_some_and(|g| g == "guard")),
        "jsonref" => {
            // Floor for building serde_json::Value: the same documents as JSON text, read by serde_json.
            let stream = gen::yaml_stream(opts.apps, gen::Form::Manifest);
            let docs = documents(&stream);
            let json: Vec<String> = docs.iter().map(|d| ng(d).unwrap().to_string()).collect();
            for _ in 0..runs(args.get(1)) {
                let t = Instant::now();
                for j in &json {
                    let _v: Value = serde_json::from_str(j).unwrap();
                }
                let yaml_t = Instant::now();
                for d in &docs {
                    ng(d).unwrap();
                }
                println!(
                    "serde_json::from_str on the JSON form: {:.3}s; serde_yaml_ng same docs {:.3}s",
                    (yaml_t - t).as_secs_f64(),
                    yaml_t.elapsed().as_secs_f64()
                );
            }
        }
        "par" => {
            // Both cores, contiguous chunks, like parallel::map_ordered in lint::items.
            let stream = gen::yaml_stream(opts.apps, gen::Form::Manifest);
            let docs = documents(&stream);
            let runs = runs(args.get(1));
            let names: Vec<&str> = if args.len() > 2 {
                args[2..].iter().map(String::as_str).collect()
            } else {
                READERS.iter().map(|r| r.0).collect()
            };
            let mut times = vec![Vec::new(); names.len()];
            for _ in 0..runs {
                for (i, n) in names.iter().enumerate() {
                    let r = reader(n);
                    let t = Instant::now();
                    std::thread::scope(|s| {
                        for part in docs.chunks(docs.len().div_ceil(2)) {
                            s.spawn(move || {
                                for d in part {
                                    assert!(guard(d).is_none() && r(d).is_ok());
                                }
                            });
                        }
                    });
                    times[i].push(t.elapsed().as_secs_f64());
                }
            }
            let base = median(times[0].clone());
            for (i, n) in names.iter().enumerate() {
                let m = median(times[i].clone());
                println!(
                    "| {n} | 2 threads | {:.1} MiB/s | {:.0} docs/s | x{:.2} | runs {:?}",
                    stream.len() as f64 / 1048576.0 / m,
                    docs.len() as f64 / m,
                    base / m,
                    times[i]
                        .iter()
                        .map(|t| (t * 1000.0).round() / 1000.0)
                        .collect::<Vec<_>>()
                );
            }
        }
        "one" => {
            let (name, file) = (arg(1), arg(2));
            let text = std::fs::read_to_string(file)
                .unwrap_or_else(|e| fail(format!("cannot read {file}: {e}")));
            println!("{:?}", reader(name)(&text));
        }
        other => fail(format!("unknown command {other:?}\n{USAGE}")),
    }
}

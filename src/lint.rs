//! `rollout-guard lint`: the rules over YAML files, folders or stdin, for CI before a sync.
//! Every object in the input is checked on its own; Rollouts are also checked against the other
//! objects of the input (at the catalogue severity: deny where the referenced object is there).

use crate::index::Index;
use crate::model::{Object, ObjectKey};
use crate::rules::{self, Finding, RuleId, Severity};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One input file (or stdin) and its text.
pub struct Input {
    pub name: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LintFinding {
    pub file: String,
    pub document: usize,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub rule: RuleId,
    pub severity: Severity,
    pub path: String,
    pub message: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub deny: usize,
    pub warn: usize,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub findings: Vec<LintFinding>,
    pub summary: Summary,
    /// Documents read; objects of our kinds among them.
    #[serde(skip)]
    pub documents: usize,
    #[serde(skip)]
    pub objects: usize,
    /// Where the objects were listed from when they are not documents (`audit`: the cluster).
    #[serde(skip)]
    pub listed_from: Option<String>,
}

impl LintFinding {
    /// An `invalid-object` finding: input that could not be read as an object.
    pub fn invalid(file: &str, document: usize, message: String) -> Self {
        LintFinding {
            file: file.to_string(),
            document,
            kind: String::new(),
            namespace: String::new(),
            name: String::new(),
            rule: RuleId::InvalidObject,
            severity: Severity::Deny,
            path: String::new(),
            message,
        }
    }
}

impl Report {
    pub fn exit_code(&self) -> i32 {
        i32::from(self.summary.deny > 0)
    }

    pub fn push(&mut self, f: LintFinding) {
        match f.severity {
            Severity::Deny => self.summary.deny += 1,
            Severity::Warn => self.summary.warn += 1,
        }
        self.findings.push(f);
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let object = if f.kind.is_empty() {
                String::new()
            } else {
                format!(" {} {}/{}", f.kind, f.namespace, f.name)
            };
            let path = if f.path.is_empty() {
                String::new()
            } else {
                format!(" {}:", f.path)
            };
            let document = match f.document {
                0 => String::new(),
                n => format!(":{n}"),
            };
            out.push_str(&format!(
                "{}{document}:{object}: {} [{}]{path} {}\n",
                f.file,
                f.severity.as_str(),
                f.rule,
                f.message
            ));
        }
        let read = match &self.listed_from {
            Some(from) => format!("from {from}"),
            None => format!("in {} documents", self.documents),
        };
        out.push_str(&format!(
            "{} objects {read}: {} deny, {} warn\n",
            self.objects, self.summary.deny, self.summary.warn
        ));
        out
    }
}

/// A YAML document cut out of a file, with the line it starts on.
struct Document<'a> {
    number: usize,
    first_line: usize,
    text: &'a str,
}

/// Splits a multi-document YAML stream at `---` lines. Numbering counts documents with content.
fn documents<'a>(text: &'a str) -> Vec<Document<'a>> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    let push = |from: usize, to: usize, line: usize, docs: &mut Vec<Document<'a>>| {
        let chunk = &text[from..to];
        let has_content = chunk
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && l.trim() != "...");
        if has_content {
            docs.push(Document {
                number: docs.len() + 1,
                first_line: line,
                text: chunk,
            });
        }
    };
    for (line_no, line) in (1..).zip(text.split_inclusive('\n')) {
        let bare = line.trim_end();
        let is_separator = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        if is_separator {
            push(start, offset, start_line, &mut docs);
            start = offset + line.len();
            start_line = line_no + 1;
        }
        offset += line.len();
    }
    push(start, text.len(), start_line, &mut docs);
    docs
}

fn parse_yaml(doc: &Document<'_>) -> Result<Value, String> {
    // Before the parser, whose scanner is quadratic in flow nesting depth (see yaml_guard).
    if let Some(line) = crate::yaml_guard::too_deep(doc.text, crate::yaml_guard::MAX_FLOW_DEPTH) {
        return Err(format!(
            "expected YAML nested at most {} levels deep, found [ or {{ nested deeper by line {}",
            crate::yaml_guard::MAX_FLOW_DEPTH,
            doc.first_line + line - 1
        ));
    }
    serde_yaml_ng::from_str::<Value>(doc.text).map_err(|e| match e.location() {
        Some(loc) => format!(
            "expected YAML, found a syntax error at line {}: {}",
            doc.first_line + loc.line() - 1,
            strip_location(&e.to_string())
        ),
        None => format!("expected YAML, found: {e}"),
    })
}

fn strip_location(msg: &str) -> &str {
    msg.split(" at line ").next().unwrap_or(msg)
}

struct Source {
    file: String,
    document: usize,
}

/// One object of our kinds read from an input, with the (1-based) document it came from.
pub struct LoadedObject {
    pub document: usize,
    pub object: Object,
    /// Keys its schema does not know (see `schema`); filled by `lint` only, not by [`load`].
    pub unknown_fields: Vec<crate::schema::UnknownField>,
}

/// What one input holds: the objects of our kinds in document order, and a deny finding
/// (`invalid-object`) for each document or list item that could not be read.
#[derive(Default)]
pub struct Loaded {
    /// Documents with content.
    pub documents: usize,
    pub objects: Vec<LoadedObject>,
    pub invalid: Vec<LintFinding>,
}

/// Splits one input into documents (`---`), reads each as YAML (a `kind: List` is expanded) and
/// parses the objects of our kinds. Shared by `lint` and the files source of `serve`.
pub fn load(input: &Input) -> Loaded {
    read(input, false)
}

/// [`load`], and with `check_fields` each object's unknown fields too.
fn read(input: &Input, check_fields: bool) -> Loaded {
    let mut loaded = Loaded::default();
    let (documents, items) = items(input);
    loaded.documents = documents;
    // Reading objects is, after YAML, most of the time: on every core, in document order.
    let parsed = crate::parallel::map_ordered(&items, |(document, item)| {
        item.as_ref()
            .ok()
            .map(|item| parse_item(&input.name, *document, item, check_fields))
    });
    for ((document, item), parsed) in items.into_iter().zip(parsed) {
        match (item, parsed) {
            (Err(message), _) => {
                loaded
                    .invalid
                    .push(LintFinding::invalid(&input.name, document, message));
            }
            (Ok(_), Some(Ok(Some(object)))) => loaded.objects.push(object),
            (Ok(_), Some(Ok(None)) | None) => {}
            (Ok(_), Some(Err(f))) => loaded.invalid.push(*f),
        }
    }
    loaded
}

/// A document number and what is in it: a JSON item, or why the document cannot be read.
pub type Item = (usize, Result<Value, String>);

/// The items of one input as JSON, with the (1-based) document each is in: every document, or
/// the elements of a `kind: List`; a document that is not YAML is the reason why. Also the number
/// of documents with content.
pub fn items(input: &Input) -> (usize, Vec<Item>) {
    let docs = documents(&input.text);
    let count = docs.len();
    // YAML parsing is the slowest step of loading: the documents go on every core.
    let values = crate::parallel::map_ordered(&docs, parse_yaml);
    let mut out = Vec::with_capacity(values.len());
    for (doc, value) in docs.iter().zip(values) {
        let value = match value {
            Ok(v) => v,
            Err(message) => {
                out.push((doc.number, Err(message)));
                continue;
            }
        };
        match value {
            Value::Object(mut map)
                if map.get("kind").and_then(Value::as_str) == Some("List")
                    && map.get("items").is_some_and(Value::is_array) =>
            {
                if let Some(Value::Array(items)) = map.remove("items") {
                    out.extend(items.into_iter().map(|i| (doc.number, Ok(i))));
                }
            }
            other => out.push((doc.number, Ok(other))),
        }
    }
    (count, out)
}

/// One item (a document, or an element of a `kind: List`) as an object of our kinds (`None`: some
/// other kind), or the `invalid-object` finding saying why it cannot be read. With
/// `check_fields`, the object's unknown fields too.
pub fn parse_item(
    file: &str,
    document: usize,
    item: &Value,
    check_fields: bool,
) -> Result<Option<LoadedObject>, Box<LintFinding>> {
    match Object::parse(item, "default") {
        Ok(Some(object)) => Ok(Some(LoadedObject {
            document,
            unknown_fields: match check_fields {
                true => crate::schema::unknown_fields(object.kind(), item),
                false => Vec::new(),
            },
            object,
        })),
        Ok(None) => Ok(None),
        Err(err) => {
            let mut f =
                LintFinding::invalid(file, document, format!("{}: {}", describe_doc(item), err));
            f.path = err.path.clone();
            if let Some(kind) = item.get("kind").and_then(Value::as_str) {
                f.kind = kind.to_string();
                f.name = item
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                f.namespace = item
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_string();
            }
            f.message = err.message;
            Err(Box::new(f))
        }
    }
}

/// Lints inputs that were already read.
pub fn lint(inputs: &[Input]) -> Report {
    let mut report = Report::default();
    let mut objects = Vec::new();
    for input in inputs {
        let loaded = read(input, true);
        report.documents += loaded.documents;
        for f in loaded.invalid {
            report.push(f);
        }
        for object in loaded.objects {
            objects.push((input.name.clone(), object));
        }
    }
    check(&mut report, objects);
    report
}

/// The rules over objects that were read, each with the file (or other origin) it came from:
/// every object on its own (and its unknown fields), then every Rollout against the others.
/// What `lint` and `audit` share.
pub fn check(report: &mut Report, objects: Vec<(String, LoadedObject)>) {
    let mut index = Index::new();
    let mut origin: HashMap<ObjectKey, Source> = HashMap::new();
    let mut self_findings: Vec<(Source, Finding)> = Vec::new();
    for (
        file,
        LoadedObject {
            document,
            object,
            unknown_fields,
        },
    ) in objects
    {
        report.objects += 1;
        let key = object.key();
        let source = || Source {
            file: file.clone(),
            document,
        };
        for f in rules::check_self(&object) {
            self_findings.push((source(), f));
        }
        for u in unknown_fields {
            let f = Finding::new(RuleId::UnknownField, &key, u.path, u.message);
            self_findings.push((source(), f));
        }
        if let Some(previous) = origin.insert(key.clone(), source()) {
            self_findings.push((
                    source(),
                    Finding::new(
 RuleId::DuplicateObject,
                        &key,
                        "metadata.name",
                        format!(
                            "{key} is defined again; this document replaces the one in {} document {} for the \
                             cross-object checks",
                            previous.file, previous.document
                        ),
                    ),
                ));
        }
        index.upsert(object);
    }
    for (source, f) in self_findings {
        report.push(to_lint(&source, f));
    }
    let mut rollouts = index.keys(crate::model::Kind::Rollout);
    rollouts.sort();
    for key in rollouts {
        let Some(crate::model::Object::Rollout(r)) = crate::index::Lookup::object(&index, &key)
        else {
            continue;
        };
        let Some(source) = origin.get(&key) else {
            continue;
        };
        for f in rules::check_references(&r, &index) {
            report.push(to_lint(source, f));
        }
    }
}

fn describe_doc(v: &Value) -> String {
    v.get("kind")
        .and_then(Value::as_str)
        .unwrap_or("document")
        .to_string()
}

fn to_lint(source: &Source, f: Finding) -> LintFinding {
    LintFinding {
        file: source.file.clone(),
        document: source.document,
        kind: f.object.kind.to_string(),
        namespace: f.object.namespace.to_string(),
        name: f.object.name.to_string(),
        rule: f.rule,
        severity: f.severity,
        path: f.path,
        message: f.message,
    }
}

/// Expands the command-line arguments into inputs: files, folders (recursively, `*.yaml` and
/// `*.yml`, sorted) and `-` for stdin. Paths that cannot be read are returned as errors.
pub fn read_inputs(args: &[String], stdin: &mut dyn std::io::Read) -> (Vec<Input>, Vec<String>) {
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for arg in args {
        if arg == "-" {
            let mut text = String::new();
            match stdin.read_to_string(&mut text) {
                Ok(_) => inputs.push(Input {
                    name: "-".into(),
                    text,
                }),
                Err(e) => errors.push(format!("-: cannot read stdin: {e}")),
            }
            continue;
        }
        let path = Path::new(arg);
        let files = if path.is_dir() {
            let mut found = Vec::new();
            if let Err(e) = walk(path, &mut found) {
                errors.push(format!("{arg}: cannot list folder: {e}"));
            }
            found.sort();
            found
        } else {
            vec![path.to_path_buf()]
        };
        for file in files {
            match std::fs::read(&file) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => inputs.push(Input {
                        name: file.display().to_string(),
                        text,
                    }),
                    Err(_) => errors.push(format!(
                        "{}: expected UTF-8 text, found binary data",
                        file.display()
                    )),
                },
                Err(e) => errors.push(format!("{}: cannot read: {e}", file.display())),
            }
        }
    }
    (inputs, errors)
}

/// The `*.yaml` and `*.yml` files under `dir`, recursively, sorted.
pub fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    walk(dir, &mut found)?;
    found.sort();
    Ok(found)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        // `..data` and `..2026_…` are the internals of a mounted ConfigMap or Secret: the
        // visible files are symlinks into them, so reading both would load everything twice.
        if entry.file_name().to_string_lossy().starts_with("..") {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// The whole command: returns the exit code (0 clean or warnings, 1 deny findings, 2 nothing read).
pub fn run(
    paths: &[String],
    output: Output,
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> i32 {
    let paths: Vec<String> = if paths.is_empty() {
        vec!["-".to_string()]
    } else {
        paths.to_vec()
    };
    let (inputs, errors) = read_inputs(&paths, &mut std::io::stdin());
    for e in &errors {
        let _ = writeln!(stderr, "rollout-guard lint: {e}");
    }
    if inputs.is_empty() {
        let _ = writeln!(stderr, "rollout-guard lint: nothing could be read");
        return 2;
    }
    let mut report = lint(&inputs);
    for e in errors {
        let (file, message) = e.split_once(": ").unwrap_or(("", e.as_str()));
        report.push(LintFinding::invalid(file, 0, message.to_string()));
    }
    write_report(&report, output, "lint", stdout, stderr)
}

/// Prints a report in `output` format; the exit code: 0 no deny finding, 1 at least one, 2 when
/// it cannot be written. `command` names the subcommand in the error.
pub fn write_report(
    report: &Report,
    output: Output,
    command: &str,
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> i32 {
    let written = match output {
        Output::Text => stdout.write_all(report.to_text().as_bytes()),
        Output::Json => serde_json::to_writer_pretty(&mut *stdout, report)
            .map_err(std::io::Error::other)
            .and_then(|_| stdout.write_all(b"\n")),
    };
    if let Err(e) = written {
        let _ = writeln!(
            stderr,
            "rollout-guard {command}: cannot write the report: {e}"
        );
        return 2;
    }
    report.exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint_text(text: &str) -> Report {
        lint(&[Input {
            name: "t.yaml".into(),
            text: text.into(),
        }])
    }

    #[test]
    fn splits_documents_and_counts_only_content() {
        let docs = documents("# header\n---\na: 1\n---\n\n---\nb: 2\n...\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].number, 1);
        assert_eq!(docs[0].first_line, 3);
        assert_eq!(docs[1].text.trim(), "b: 2\n...");
    }

    #[test]
    fn bad_yaml_is_a_finding_with_its_line() {
        let r = lint_text(
            "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: [\n",
        );
        assert_eq!(r.summary.deny, 1);
        let f = &r.findings[0];
        assert_eq!((f.rule, f.document), (RuleId::InvalidObject, 2));
        assert!(
            f.message.contains("line 6") || f.message.contains("line 7"),
            "{}",
            f.message
        );
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn missing_kind_and_wrong_types_are_findings() {
        let r = lint_text("apiVersion: v1\nmetadata: {name: a}\n");
        assert_eq!(r.findings[0].rule, RuleId::InvalidObject);
        assert!(r.findings[0].message.contains("kind is missing"));
        let r = lint_text(
            "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: r}\nspec:\n  strategy:\n    canary:\n      steps: [{setWeight: ten}]\n",
        );
        assert_eq!(
            r.findings[0].path,
            "spec.strategy.canary.steps[0].setWeight"
        );
        assert_eq!(
            (r.findings[0].kind.as_str(), r.findings[0].name.as_str()),
            ("Rollout", "r")
        );
    }

    #[test]
    fn other_kinds_are_ignored_and_duplicates_warned() {
        let r = lint_text(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: default}\n",
        );
        assert_eq!(r.objects, 2);
        assert_eq!(r.findings.len(), 1);
        assert_eq!(
            (r.findings[0].rule, r.findings[0].document),
            (RuleId::DuplicateObject, 3)
        );
        assert_eq!(r.exit_code(), 0);
    }

    #[test]
    fn unknown_fields_are_warnings_with_the_nearest_name() {
        let r = lint_text(
            "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: r, namespace: shop}\nspec:\n  strategy:\n    canary:\n      canaryservice: c\n      stableService: s\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {whatever: 1}\n",
        );
        let unknown: Vec<&LintFinding> = r
            .findings
            .iter()
            .filter(|f| f.rule == RuleId::UnknownField)
            .collect();
        assert_eq!(unknown.len(), 1, "{}", r.to_text());
        let f = unknown[0];
        assert_eq!(f.severity, Severity::Warn);
        assert_eq!((f.file.as_str(), f.document), ("t.yaml", 1));
        assert_eq!(
            (f.kind.as_str(), f.namespace.as_str(), f.name.as_str()),
            ("Rollout", "shop", "r")
        );
        assert_eq!(f.path, "spec.strategy.canary.canaryservice");
        assert_eq!(
            f.message,
            "unknown field \"canaryservice\" at spec.strategy.canary; did you mean \"canaryService\"?"
        );
        // `load` (the files source of `serve`) does not look for them.
        let loaded = load(&Input {
            name: "t.yaml".into(),
            text: "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {selectr: {}}\n"
                .into(),
        });
        assert!(loaded.objects[0].unknown_fields.is_empty());
    }

    #[test]
    fn json_shape() {
        let r = lint_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\nkind: x\n");
        let v = serde_json::to_value(&r).unwrap();
        let f = &v["findings"][0];
        for key in [
            "file",
            "document",
            "kind",
            "namespace",
            "name",
            "rule",
            "severity",
            "path",
            "message",
        ] {
            assert!(f.get(key).is_some(), "missing {key} in {f}");
        }
        assert_eq!(f["severity"], "deny");
        assert_eq!(v["summary"]["deny"], 1);
        assert_eq!(v["summary"]["warn"], 0);
    }
}

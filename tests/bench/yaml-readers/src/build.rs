//! A serde_json::Value builder fed by YAML events, resolving plain scalars like serde_yaml_ng 0.10
//! does when deserializing into serde_json::Value (YAML 1.2 core schema, serde_yaml's rules).

use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::collections::HashMap;

pub const MAX_DEPTH: usize = 128;

pub enum Style {
    Plain,
    Quoted,
    Block,
}

/// A core tag (`!!x` / `tag:yaml.org,2002:x`) by suffix, or another tag.
pub enum TagKind<'a> {
    Core(&'a str),
    Other(String),
}

pub fn tag_kind<'a>(handle: &'a str, suffix: &'a str) -> TagKind<'a> {
    if handle == "!!" || handle == "tag:yaml.org,2002:" {
        TagKind::Core(suffix)
    } else if let Some(s) = suffix.strip_prefix("tag:yaml.org,2002:") {
        TagKind::Core(s)
    } else {
        TagKind::Other(format!("{handle}{suffix}"))
    }
}

enum Frame {
    Seq(Vec<Value>, usize, usize),
    Map(Map<String, Value>, Option<String>, usize, usize),
}

pub struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Value, usize)>,
    pub root: Option<Value>,
    pub documents: usize,
    nodes: usize,
    expanded: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            stack: Vec::new(),
            anchors: HashMap::new(),
            root: None,
            documents: 0,
            nodes: 0,
            expanded: 0,
        }
    }
}

fn parse_null(v: &str) -> bool {
    matches!(v, "null" | "Null" | "NULL" | "~")
}
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}
fn digits_but_not_number(scalar: &str) -> bool {
    let scalar = scalar.strip_prefix(['-', '+']).unwrap_or(scalar);
    scalar.len() > 1 && scalar.starts_with('0') && scalar[1..].bytes().all(|b| b.is_ascii_digit())
}
fn radix_prefixed<T>(
    s: &str,
    f: fn(&str, u32) -> Result<T, std::num::ParseIntError>,
) -> Option<Option<T>> {
    for (p, r) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(rest) = s.strip_prefix(p) {
            if rest.starts_with(['+', '-']) {
                return Some(None);
            }
            if let Ok(i) = f(rest, r) {
                return Some(Some(i));
            }
        }
    }
    None
}
fn parse_unsigned<T>(
    scalar: &str,
    f: fn(&str, u32) -> Result<T, std::num::ParseIntError>,
) -> Option<T> {
    let unpositive = scalar.strip_prefix('+').unwrap_or(scalar);
    if let Some(r) = radix_prefixed(unpositive, f) {
        return r;
    }
    if unpositive.starts_with(['+', '-']) || digits_but_not_number(scalar) {
        return None;
    }
    f(unpositive, 10).ok()
}
fn parse_negative<T>(
    scalar: &str,
    f: fn(&str, u32) -> Result<T, std::num::ParseIntError>,
) -> Option<T> {
    for (p, r) in [("-0x", 16), ("-0o", 8), ("-0b", 2)] {
        if let Some(rest) = scalar.strip_prefix(p) {
            if let Ok(i) = f(&format!("-{rest}"), r) {
                return Some(i);
            }
        }
    }
    if digits_but_not_number(scalar) {
        return None;
    }
    f(scalar, 10).ok()
}
fn parse_f64(scalar: &str) -> Option<f64> {
    let unpositive = match scalar.strip_prefix('+') {
        Some(u) if u.starts_with(['+', '-']) => return None,
        Some(u) => u,
        None => scalar,
    };
    if let ".inf" | ".Inf" | ".INF" = unpositive {
        return Some(f64::INFINITY);
    }
    if let "-.inf" | "-.Inf" | "-.INF" = scalar {
        return Some(f64::NEG_INFINITY);
    }
    if let ".nan" | ".NaN" | ".NAN" = scalar {
        return Some(f64::NAN);
    }
    match unpositive.parse::<f64>() {
        Ok(f) if f.is_finite() => Some(f),
        _ => None,
    }
}
fn int(v: &str) -> Option<Result<Value, String>> {
    // Only strings that may be numbers go through the parsers.
    let first = *v.as_bytes().first()?;
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        return None;
    }
    if let Some(i) = parse_unsigned(v, u64::from_str_radix) {
        return Some(Ok(Value::from(i)));
    }
    if let Some(i) = parse_negative(v, i64::from_str_radix) {
        return Some(Ok(Value::from(i)));
    }
    if parse_unsigned(v, u128::from_str_radix).is_some()
        || parse_negative(v, i128::from_str_radix).is_some()
    {
        return Some(Err(format!("number out of range: {v}")));
    }
    if !digits_but_not_number(v) {
        if let Some(f) = parse_f64(v) {
            return Some(Ok(Number::from_f64(f).map_or(Value::Null, Value::Number)));
        }
    }
    None
}

pub fn resolve_plain(v: &str) -> Result<Value, String> {
    if v.is_empty() || parse_null(v) {
        return Ok(Value::Null);
    }
    if let Some(b) = parse_bool(v) {
        return Ok(Value::Bool(b));
    }
    if let Some(r) = int(v) {
        return r;
    }
    Ok(Value::String(String::new()))
}

fn resolve_tagged(v: &str, core: &str) -> Result<Value, String> {
    match core {
        "bool" => parse_bool(v)
            .map(Value::Bool)
            .ok_or_else(|| format!("invalid value: string {v:?}, expected a boolean")),
        "int" => {
            if let Some(i) = parse_unsigned(v, u64::from_str_radix) {
                return Ok(Value::from(i));
            }
            if let Some(i) = parse_negative(v, i64::from_str_radix) {
                return Ok(Value::from(i));
            }
            Err(format!("invalid value: string {v:?}, expected an integer"))
        }
        "float" => parse_f64(v)
            .map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number))
            .ok_or_else(|| format!("invalid value: string {v:?}, expected a float")),
        "null" => {
            if parse_null(v) {
                Ok(Value::Null)
            } else {
                Err(format!("invalid value: string {v:?}, expected null"))
            }
        }
        _ => Ok(Value::String(v.to_string())),
    }
}

fn count(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(count).sum::<usize>(),
        Value::Object(m) => 1 + m.values().map(count).sum::<usize>(),
        _ => 1,
    }
}

impl Builder {
    pub fn document_start(&mut self) -> Result<(), String> {
        self.documents += 1;
        if self.documents > 1 {
            return Err(
                "deserializing from YAML containing more than one document is not supported".into(),
            );
        }
        Ok(())
    }

    fn check_tag(tag: Option<TagKind<'_>>) -> Result<Option<&str>, String> {
        match tag {
            None => Ok(None),
            Some(TagKind::Core(s)) => Ok(Some(s)),
            Some(TagKind::Other(t)) => Err(format!(
                "invalid type: tag {t} is not supported, expected any valid JSON value"
            )),
        }
    }

    pub fn scalar(
        &mut self,
        v: Cow<'_, str>,
        style: Style,
        anchor: usize,
        tag: Option<TagKind<'_>>,
    ) -> Result<(), String> {
        // A mapping key: the text as it is.
        if let Some(Frame::Map(_, key @ None, _, _)) = self.stack.last_mut() {
            if let Some(TagKind::Other(t)) = &tag {
                return Err(format!("invalid type: tag {t} on a key is not supported"));
            }
            if anchor != 0 {
                self.anchors
                    .insert(anchor, (Value::String(v.to_string()), 1));
            }
            *key = Some(v.into_owned());
            return Ok(());
        }
        let core = match tag {
            None => None,
            Some(t) => Self::check_tag(Some(t))?,
        };
        let value = match (core, style) {
            (Some(c), _) => resolve_tagged(&v, c)?,
            (None, Style::Plain) => match resolve_plain(&v)? {
                Value::String(_) => Value::String(v.into_owned()),
                other => other,
            },
            (None, _) => Value::String(v.into_owned()),
        };
        if anchor != 0 {
            self.anchors.insert(anchor, (value.clone(), 1));
        }
        self.push(value)
    }

    pub fn alias(&mut self, id: usize) -> Result<(), String> {
        let Some((value, nodes)) = self.anchors.get(&id) else {
            return Err("unknown anchor".into());
        };
        self.expanded += nodes;
        if self.expanded > 100 * self.nodes.max(1000) {
            return Err("repetition limit exceeded".into());
        }
        let value = value.clone();
        if let Some(Frame::Map(_, key @ None, _, _)) = self.stack.last_mut() {
            match value {
                Value::String(s) => *key = Some(s),
                _ => return Err("invalid type: expected a string key".into()),
            }
            return Ok(());
        }
        self.push(value)
    }

    fn open(&mut self) -> Result<(), String> {
        if let Some(Frame::Map(_, None, _, _)) = self.stack.last() {
            return Err("invalid type: map or sequence as a key, expected a string key".into());
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err("recursion limit exceeded".into());
        }
        Ok(())
    }

    pub fn seq_start(&mut self, anchor: usize, tag: Option<TagKind<'_>>) -> Result<(), String> {
        Self::check_tag(tag)?;
        self.open()?;
        self.stack.push(Frame::Seq(Vec::new(), anchor, self.nodes));
        Ok(())
    }

    pub fn map_start(&mut self, anchor: usize, tag: Option<TagKind<'_>>) -> Result<(), String> {
        Self::check_tag(tag)?;
        self.open()?;
        self.stack
            .push(Frame::Map(Map::new(), None, anchor, self.nodes));
        Ok(())
    }

    pub fn end(&mut self) -> Result<(), String> {
        let (value, anchor, start) = match self.stack.pop() {
            Some(Frame::Seq(v, a, s)) => (Value::Array(v), a, s),
            Some(Frame::Map(m, _, a, s)) => (Value::Object(m), a, s),
            None => return Err("unbalanced end".into()),
        };
        if anchor != 0 {
            let _ = start;
            let n = count(&value);
            self.anchors.insert(anchor, (value.clone(), n));
        }
        self.push(value)
    }

    fn push(&mut self, value: Value) -> Result<(), String> {
        self.nodes += 1;
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq(v, _, _)) => v.push(value),
            Some(Frame::Map(m, key, _, _)) => {
                let k = key.take().expect("key");
                m.insert(k, value);
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Value {
        self.root.unwrap_or(Value::Null)
    }
}

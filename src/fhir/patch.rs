//! PATCH bodies (FHIR R4 http.html#patch): JSON Patch (RFC 6902) and FHIRPath Patch (fhirpatch.html), applied to a resource as a serde_json::Value.
//!
//! Both appliers are all-or-nothing: the whole patch document is validated first (so a malformed operation is
//! reported as [`PatchError::Malformed`] even when an earlier operation would not apply), then applied to a clone
//! that only replaces the resource once every operation succeeded.
//!
//! FHIRPath Patch works without StructureDefinitions, so cardinality and types are inferred from the instance:
//! - `add` pushes onto the member when it already holds an array, fails with `NotApplicable` ("already has a value")
//!   when it holds anything else, and sets a single (non-array) value when the member is absent. Callers that know a
//!   repeating element is absent should use `insert` at index 0, which always creates an array.
//! - `add` uses `name` verbatim, so a choice element must be named in full (e.g. `deceasedBoolean`).
//! - `replace` on a choice element selected by its base name (`Observation.value`) renames the JSON member after the
//!   type of the new value (`valueQuantity` -> `valueString`) when the value came from a typed `value[x]`.
//! - Part-based (anonymous) values become a JSON object; a sub-part name that occurs more than once becomes an array,
//!   a name that occurs once stays a single value.
//! - `delete` of the last item of an array removes the now-empty member, since FHIR JSON forbids empty arrays.
//! - `where()` comparisons are true when any item of the left-hand collection equals the literal.
//! - Choice navigation (`Observation.value`) matches members named base + an R4 choice type (`valueQuantity`,
//!   `effectiveDateTime`), and is only tried when no member has the exact name.
//! - Primitive extensions (`_given`) are neither navigated nor kept aligned.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document itself is malformed (not an array of operations, unknown op, missing member, bad JSON Pointer, bad FHIRPath path syntax). `location` says where in the PATCH body, e.g. "/2/path" for JSON Patch or "Parameters.parameter[1].part[2]" for FHIRPath Patch.
    #[error("{message}")]
    Malformed { message: String, location: String },
    /// The patch is well-formed but cannot be applied to this resource (path not found, `test` op failed, index out of range, delete of multiple matches...). `location` as above.
    #[error("{message}")]
    NotApplicable { message: String, location: String },
}

impl PatchError {
    fn malformed(message: impl Into<String>, location: impl Into<String>) -> Self {
        PatchError::Malformed { message: message.into(), location: location.into() }
    }

    fn not_applicable(message: impl Into<String>, location: impl Into<String>) -> Self {
        PatchError::NotApplicable { message: message.into(), location: location.into() }
    }
}

/// JSON equality with numbers compared by value (`1` == `1.0`) and objects compared regardless of member order.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(i), Some(j)) = (x.as_i64(), y.as_i64()) {
                i == j
            } else if let (Some(i), Some(j)) = (x.as_u64(), y.as_u64()) {
                i == j
            } else {
                matches!((x.as_f64(), y.as_f64()), (Some(i), Some(j)) if i == j)
            }
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(v, w)| json_eq(v, w)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// JSON Patch (RFC 6902)
// ---------------------------------------------------------------------------------------------------------------

/// Applies an RFC 6902 JSON Patch document (a JSON array) to `resource`, all or nothing: on error `resource` is unchanged.
pub fn apply_json_patch(resource: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| PatchError::malformed("a JSON Patch document must be a JSON array of operations", ""))?;
    let parsed = ops.iter().enumerate().map(|(i, op)| JsonPatchOp::parse(i, op)).collect::<Result<Vec<_>, _>>()?;
    let mut work = resource.clone();
    for op in &parsed {
        op.apply(&mut work)?;
    }
    *resource = work;
    Ok(())
}

enum JsonOpKind<'a> {
    Add(&'a Value),
    Remove,
    Replace(&'a Value),
    Move(Vec<String>),
    Copy(Vec<String>),
    Test(&'a Value),
}

struct JsonPatchOp<'a> {
    index: usize,
    path: Vec<String>,
    kind: JsonOpKind<'a>,
}

impl<'a> JsonPatchOp<'a> {
    fn parse(index: usize, op: &'a Value) -> Result<Self, PatchError> {
        let at = |member: &str| format!("/{index}/{member}");
        let obj = op.as_object().ok_or_else(|| {
            PatchError::malformed(format!("operation {index} is not a JSON object"), format!("/{index}"))
        })?;
        let required = |member: &str| {
            obj.get(member)
                .ok_or_else(|| PatchError::malformed(format!("operation {index} has no '{member}' member"), at(member)))
        };
        let pointer = |member: &str| -> Result<Vec<String>, PatchError> {
            let text = required(member)?
                .as_str()
                .ok_or_else(|| PatchError::malformed(format!("'{member}' must be a string"), at(member)))?;
            parse_pointer(text).map_err(|m| PatchError::malformed(m, at(member)))
        };
        let name = required("op")?.as_str().ok_or_else(|| PatchError::malformed("'op' must be a string", at("op")))?;
        let path = pointer("path")?;
        let kind = match name {
            "add" => JsonOpKind::Add(required("value")?),
            "remove" => JsonOpKind::Remove,
            "replace" => JsonOpKind::Replace(required("value")?),
            "move" => {
                let from = pointer("from")?;
                // RFC 6902 4.4: a location cannot be moved into one of its own children.
                if from.len() < path.len() && path.starts_with(&from) {
                    return Err(PatchError::malformed(
                        format!(
                            "cannot move '{}' into its own child '{}'",
                            render_pointer(&from),
                            render_pointer(&path)
                        ),
                        at("from"),
                    ));
                }
                JsonOpKind::Move(from)
            }
            "copy" => JsonOpKind::Copy(pointer("from")?),
            "test" => JsonOpKind::Test(required("value")?),
            other => {
                return Err(PatchError::malformed(format!("unknown JSON Patch op '{other}'"), at("op")));
            }
        };
        Ok(JsonPatchOp { index, path, kind })
    }

    fn apply(&self, doc: &mut Value) -> Result<(), PatchError> {
        let index = self.index;
        let at = move |member: &'static str| {
            move |message: String| PatchError::not_applicable(message, format!("/{index}/{member}"))
        };
        match &self.kind {
            JsonOpKind::Add(value) => pointer_add(doc, &self.path, (*value).clone()).map_err(at("path")),
            JsonOpKind::Remove => pointer_remove(doc, &self.path).map(drop).map_err(at("path")),
            JsonOpKind::Replace(value) => {
                *pointer_get_mut(doc, &self.path).map_err(at("path"))? = (*value).clone();
                Ok(())
            }
            JsonOpKind::Move(from) => {
                if *from == self.path {
                    return pointer_get(doc, from).map(drop).map_err(at("from"));
                }
                let value = pointer_remove(doc, from).map_err(at("from"))?;
                pointer_add(doc, &self.path, value).map_err(at("path"))
            }
            JsonOpKind::Copy(from) => {
                let value = pointer_get(doc, from).map_err(at("from"))?.clone();
                pointer_add(doc, &self.path, value).map_err(at("path"))
            }
            JsonOpKind::Test(expected) => {
                let actual = pointer_get(doc, &self.path).map_err(at("path"))?;
                if json_eq(actual, expected) {
                    Ok(())
                } else {
                    Err(PatchError::not_applicable(
                        format!(
                            "test failed: the value at '{}' differs from the expected value",
                            render_pointer(&self.path)
                        ),
                        format!("/{}", self.index),
                    ))
                }
            }
        }
    }
}

fn parse_pointer(text: &str) -> Result<Vec<String>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = text.strip_prefix('/') else {
        return Err(format!("JSON Pointer '{text}' must be empty or start with '/'"));
    };
    rest.split('/')
        .map(|token| {
            let mut out = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                let decoded = match c {
                    '~' => match chars.next() {
                        Some('0') => '~',
                        Some('1') => '/',
                        _ => return Err(format!("JSON Pointer '{text}' has a '~' not followed by '0' or '1'")),
                    },
                    other => other,
                };
                out.push(decoded);
            }
            Ok(out)
        })
        .collect()
}

fn render_pointer(tokens: &[String]) -> String {
    tokens.iter().map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1"))).collect()
}

/// Parses an array index token; `len` is the array length and `append` allows `-` and `len` itself (add targets).
fn array_index(tokens: &[String], token: &str, len: usize, append: bool) -> Result<usize, String> {
    let limit = if append { len } else { len.saturating_sub(1) };
    let index = if token == "-" {
        if !append {
            return Err(format!("'{}' refers to the nonexistent element after the array end", render_pointer(tokens)));
        }
        len
    } else {
        let well_formed =
            !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) && (token == "0" || !token.starts_with('0'));
        if !well_formed {
            return Err(format!("'{}': '{token}' is not a valid array index", render_pointer(tokens)));
        }
        token.parse::<usize>().map_err(|_| format!("'{}': array index too large", render_pointer(tokens)))?
    };
    if index > limit || (!append && len == 0) {
        return Err(format!("'{}': index {index} is out of bounds (array length {len})", render_pointer(tokens)));
    }
    Ok(index)
}

fn pointer_get<'v>(doc: &'v Value, tokens: &[String]) -> Result<&'v Value, String> {
    let mut current = doc;
    for (depth, token) in tokens.iter().enumerate() {
        let here = &tokens[..=depth];
        current = match current {
            Value::Object(map) => map.get(token).ok_or_else(|| format!("'{}' does not exist", render_pointer(here)))?,
            Value::Array(items) => {
                let i = array_index(here, token, items.len(), false)?;
                items.get(i).ok_or_else(|| format!("'{}' does not exist", render_pointer(here)))?
            }
            _ => {
                return Err(format!("'{}' does not exist: its parent is not an object or array", render_pointer(here)));
            }
        };
    }
    Ok(current)
}

fn pointer_get_mut<'v>(doc: &'v mut Value, tokens: &[String]) -> Result<&'v mut Value, String> {
    let mut current = doc;
    for (depth, token) in tokens.iter().enumerate() {
        let here = &tokens[..=depth];
        current = match current {
            Value::Object(map) => {
                map.get_mut(token).ok_or_else(|| format!("'{}' does not exist", render_pointer(here)))?
            }
            Value::Array(items) => {
                let i = array_index(here, token, items.len(), false)?;
                items.get_mut(i).ok_or_else(|| format!("'{}' does not exist", render_pointer(here)))?
            }
            _ => {
                return Err(format!("'{}' does not exist: its parent is not an object or array", render_pointer(here)));
            }
        };
    }
    Ok(current)
}

fn pointer_add(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), String> {
    let Some((last, parent_tokens)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match pointer_get_mut(doc, parent_tokens)? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            let i = array_index(tokens, last, items.len(), true)?;
            items.insert(i, value);
            Ok(())
        }
        _ => Err(format!("cannot add '{}': its parent is not an object or array", render_pointer(tokens))),
    }
}

fn pointer_remove(doc: &mut Value, tokens: &[String]) -> Result<Value, String> {
    let Some((last, parent_tokens)) = tokens.split_last() else {
        return Err("cannot remove the whole document".to_string());
    };
    match pointer_get_mut(doc, parent_tokens)? {
        // shift_remove keeps the remaining members in their original order.
        Value::Object(map) => {
            map.shift_remove(last).ok_or_else(|| format!("'{}' does not exist", render_pointer(tokens)))
        }
        Value::Array(items) => {
            let i = array_index(tokens, last, items.len(), false)?;
            Ok(items.remove(i))
        }
        _ => Err(format!("'{}' does not exist: its parent is not an object or array", render_pointer(tokens))),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// FHIRPath subset: lexing, parsing, evaluation to editable locations
// ---------------------------------------------------------------------------------------------------------------

/// R4 type names that may follow a choice element's base name (`value[x]` -> `valueQuantity`), space separated.
const CHOICE_TYPES: &str = "Base64Binary Boolean Canonical Code Date DateTime Decimal Id Instant Integer Markdown Oid \
    PositiveInt String Time UnsignedInt Uri Url Uuid Address Age Annotation Attachment CodeableConcept Coding \
    ContactPoint Count Distance Duration HumanName Identifier Money Period Quantity Range Ratio Reference SampledData \
    Signature Timing ContactDetail Contributor DataRequirement Expression ParameterDefinition RelatedArtifact \
    TriggerDefinition UsageContext Dosage Meta";

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Dot,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Eq,
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, String> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&(pos, c)) = chars.get(i) {
        let single = match c {
            '.' => Some(Tok::Dot),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '=' => Some(Tok::Eq),
            _ => None,
        };
        if let Some(tok) = single {
            out.push((tok, pos));
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            let mut ident = String::from(c);
            i += 1;
            while let Some(c) = at(i).filter(|c| c.is_ascii_alphanumeric() || *c == '_') {
                ident.push(c);
                i += 1;
            }
            out.push((Tok::Ident(ident), pos));
        } else if c.is_ascii_digit() {
            let mut num = String::new();
            while let Some(c) = at(i).filter(char::is_ascii_digit) {
                num.push(c);
                i += 1;
            }
            // A '.' after digits is a decimal point only when a digit follows; otherwise it is navigation.
            if at(i) == Some('.') && at(i + 1).is_some_and(|c| c.is_ascii_digit()) {
                num.push('.');
                i += 1;
                while let Some(c) = at(i).filter(char::is_ascii_digit) {
                    num.push(c);
                    i += 1;
                }
            }
            out.push((Tok::Num(num), pos));
        } else if c == '\'' || c == '`' {
            let (text, next) = lex_quoted(&chars, i, pos, c)?;
            out.push((if c == '`' { Tok::Ident(text) } else { Tok::Str(text) }, pos));
            i = next;
        } else {
            return Err(format!("unexpected character '{c}' at offset {pos}"));
        }
    }
    Ok(out)
}

/// Reads a literal whose opening `quote` is at char index `open` (byte offset `start`); returns its text and the
/// char index after the closing quote.
fn lex_quoted(chars: &[(usize, char)], open: usize, start: usize, quote: char) -> Result<(String, usize), String> {
    let unterminated = || format!("unterminated literal starting at offset {start}");
    let mut text = String::new();
    let mut i = open + 1;
    loop {
        let &(_, c) = chars.get(i).ok_or_else(unterminated)?;
        i += 1;
        if c == quote {
            return Ok((text, i));
        }
        if c != '\\' {
            text.push(c);
            continue;
        }
        let &(_, e) = chars.get(i).ok_or_else(unterminated)?;
        i += 1;
        let escaped = match e {
            '\'' | '"' | '`' | '\\' | '/' => e,
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let hex: String = chars.iter().skip(i).take(4).map(|&(_, h)| h).collect();
                i += 4;
                u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("invalid \\u escape in literal starting at offset {start}"))?
            }
            _ => return Err(format!("invalid escape '\\{e}' in literal starting at offset {start}")),
        };
        text.push(escaped);
    }
}

#[derive(Debug, Clone, PartialEq)]
enum PathStep {
    Member(String),
    Index(usize),
    First,
    Last,
    Where(Vec<Criterion>),
}

/// `a.b = 'literal'`; an empty `members` list is `$this`.
#[derive(Debug, Clone, PartialEq)]
struct Criterion {
    members: Vec<String>,
    literal: Value,
}

#[derive(Debug, Clone, PartialEq)]
struct FhirPath {
    source: String,
    root_type: Option<String>,
    steps: Vec<PathStep>,
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn offset(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(_, p)| *p)
    }

    fn next(&mut self) -> Option<Tok> {
        let tok = self.toks.get(self.pos).map(|(t, _)| t.clone());
        self.pos += 1;
        tok
    }

    fn expect(&mut self, want: &Tok, what: &str) -> Result<(), String> {
        let at = self.offset();
        match self.next() {
            Some(ref t) if t == want => Ok(()),
            _ => Err(format!("expected {what} at offset {at}")),
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        let at = self.offset();
        match self.next() {
            Some(Tok::Ident(name)) => Ok(name),
            _ => Err(format!("expected a name at offset {at}")),
        }
    }

    fn path(&mut self, source: &str) -> Result<FhirPath, String> {
        let first = self.ident()?;
        let mut path = FhirPath { source: source.to_string(), root_type: None, steps: Vec::new() };
        if first.starts_with(|c: char| c.is_ascii_uppercase()) {
            path.root_type = Some(first);
        } else if first.starts_with('$') {
            return Err(format!("unsupported variable '{first}' at offset 0"));
        } else {
            path.steps.push(PathStep::Member(first));
        }
        while let Some(tok) = self.peek() {
            match tok {
                Tok::Dot => {
                    self.next();
                    let at = self.offset();
                    let name = self.ident()?;
                    if self.peek() != Some(&Tok::LParen) {
                        path.steps.push(PathStep::Member(name));
                        continue;
                    }
                    self.next();
                    let step = match name.as_str() {
                        "first" => PathStep::First,
                        "last" => PathStep::Last,
                        "where" => PathStep::Where(self.criteria()?),
                        other => return Err(format!("unsupported function '{other}()' at offset {at}")),
                    };
                    self.expect(&Tok::RParen, "')'")?;
                    path.steps.push(step);
                }
                Tok::LBracket => {
                    self.next();
                    let at = self.offset();
                    let index = match self.next() {
                        Some(Tok::Num(n)) => n.parse::<usize>().map_err(|_| format!("invalid index at offset {at}"))?,
                        _ => return Err(format!("expected an integer index at offset {at}")),
                    };
                    self.expect(&Tok::RBracket, "']'")?;
                    path.steps.push(PathStep::Index(index));
                }
                _ => return Err(format!("unexpected token at offset {}", self.offset())),
            }
        }
        Ok(path)
    }

    fn criteria(&mut self) -> Result<Vec<Criterion>, String> {
        let mut all = vec![self.comparison()?];
        while self.peek() == Some(&Tok::Ident("and".to_string())) {
            self.next();
            all.push(self.comparison()?);
        }
        Ok(all)
    }

    fn comparison(&mut self) -> Result<Criterion, String> {
        if let Some(literal) = self.literal()? {
            self.expect(&Tok::Eq, "'='")?;
            let members = self.member_path()?;
            return Ok(Criterion { members, literal });
        }
        let members = self.member_path()?;
        self.expect(&Tok::Eq, "'='")?;
        let at = self.offset();
        let literal = self.literal()?.ok_or_else(|| format!("expected a literal at offset {at}"))?;
        Ok(Criterion { members, literal })
    }

    fn literal(&mut self) -> Result<Option<Value>, String> {
        let at = self.offset();
        let value = match self.peek() {
            Some(Tok::Str(s)) => Value::String(s.clone()),
            Some(Tok::Ident(b)) if b == "true" || b == "false" => Value::Bool(b == "true"),
            Some(Tok::Num(n)) => {
                let parsed: Option<serde_json::Number> = if n.contains('.') {
                    n.parse::<f64>().ok().and_then(serde_json::Number::from_f64)
                } else {
                    n.parse::<u64>().ok().map(Into::into)
                };
                Value::Number(parsed.ok_or_else(|| format!("invalid number at offset {at}"))?)
            }
            _ => return Ok(None),
        };
        self.next();
        Ok(Some(value))
    }

    fn member_path(&mut self) -> Result<Vec<String>, String> {
        let first = self.ident()?;
        let mut members = if first == "$this" { Vec::new() } else { vec![first] };
        while self.peek() == Some(&Tok::Dot) {
            self.next();
            members.push(self.ident()?);
        }
        Ok(members)
    }
}

fn parse_fhirpath(source: &str) -> Result<FhirPath, String> {
    let toks = lex(source)?;
    if toks.is_empty() {
        return Err("empty path".to_string());
    }
    let mut parser = Parser { toks, pos: 0, end: source.len() };
    parser.path(source)
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// One selected element, addressable for edits.
#[derive(Debug, Clone, PartialEq)]
struct Loc {
    steps: Vec<Step>,
    /// Set when the last member was reached through a choice base name, so `replace` can retype the member.
    choice_base: Option<String>,
}

fn resolve<'v>(doc: &'v Value, steps: &[Step]) -> Option<&'v Value> {
    steps.iter().try_fold(doc, |node, step| match step {
        Step::Key(k) => node.as_object()?.get(k),
        Step::Index(i) => node.as_array()?.get(*i),
    })
}

fn resolve_mut<'v>(doc: &'v mut Value, steps: &[Step]) -> Option<&'v mut Value> {
    steps.iter().try_fold(doc, |node, step| match step {
        Step::Key(k) => node.as_object_mut()?.get_mut(k),
        Step::Index(i) => node.as_array_mut()?.get_mut(*i),
    })
}

/// Members of `map` that FHIRPath `.name` reaches: the exact member, else choice members (`name` + type).
fn member_entries<'v>(map: &'v Map<String, Value>, name: &str) -> Vec<(&'v String, &'v Value, bool)> {
    if let Some((key, value)) = map.get_key_value(name) {
        return vec![(key, value, false)];
    }
    map.iter()
        .filter(|(key, _)| {
            key.strip_prefix(name).is_some_and(|suffix| CHOICE_TYPES.split_ascii_whitespace().any(|t| t == suffix))
        })
        .map(|(key, value)| (key, value, true))
        .collect()
}

/// Values reached by `.name` from `node`, flattening arrays like FHIRPath does.
fn navigate_values<'v>(node: &'v Value, name: &str) -> Vec<&'v Value> {
    let Some(map) = node.as_object() else {
        return Vec::new();
    };
    member_entries(map, name)
        .into_iter()
        .flat_map(|(_, value, _)| match value {
            Value::Array(items) => items.iter().collect(),
            Value::Null => Vec::new(),
            other => vec![other],
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn matches_criteria(node: &Value, criteria: &[Criterion]) -> bool {
    criteria.iter().all(|criterion| {
        let values = criterion
            .members
            .iter()
            .fold(vec![node], |current, name| current.into_iter().flat_map(|v| navigate_values(v, name)).collect());
        values.into_iter().any(|v| json_eq(v, &criterion.literal))
    })
}

fn evaluate(doc: &Value, path: &FhirPath) -> Vec<Loc> {
    let root = Loc { steps: Vec::new(), choice_base: None };
    let mut selection = match &path.root_type {
        Some(ty) if doc.get("resourceType").and_then(Value::as_str) == Some(ty) => vec![root],
        Some(_) => Vec::new(),
        None => vec![root],
    };
    for step in &path.steps {
        selection = match step {
            PathStep::Member(name) => selection.iter().flat_map(|loc| child_locs(doc, loc, name)).collect(),
            PathStep::Index(i) => selection.into_iter().nth(*i).into_iter().collect(),
            PathStep::First => selection.into_iter().take(1).collect(),
            PathStep::Last => selection.pop().into_iter().collect(),
            PathStep::Where(criteria) => selection
                .into_iter()
                .filter(|loc| resolve(doc, &loc.steps).is_some_and(|node| matches_criteria(node, criteria)))
                .collect(),
        };
    }
    selection
}

fn child_locs(doc: &Value, parent: &Loc, name: &str) -> Vec<Loc> {
    let Some(map) = resolve(doc, &parent.steps).and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, value, via_choice) in member_entries(map, name) {
        let mut steps = parent.steps.clone();
        steps.push(Step::Key(key.clone()));
        match value {
            Value::Null => {}
            Value::Array(items) => out.extend(items.iter().enumerate().filter(|(_, v)| !v.is_null()).map(|(i, _)| {
                let mut item = steps.clone();
                item.push(Step::Index(i));
                Loc { steps: item, choice_base: None }
            })),
            _ => out.push(Loc { steps, choice_base: via_choice.then(|| name.to_string()) }),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------------
// FHIRPath Patch
// ---------------------------------------------------------------------------------------------------------------

/// Applies a FHIRPath Patch (a FHIR `Parameters` resource, as JSON) to `resource`, all or nothing.
pub fn apply_fhirpath_patch(resource: &mut Value, parameters: &Value) -> Result<(), PatchError> {
    let ops = parse_parameters(parameters)?;
    let mut work = resource.clone();
    for op in &ops {
        op.apply(&mut work)?;
    }
    *resource = work;
    Ok(())
}

/// A value from the patch body together with where it came from, for error locations.
#[derive(Debug)]
struct Located<T> {
    value: T,
    location: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FpKind {
    Add,
    Insert,
    Delete,
    Replace,
    Move,
}

/// A `value` part: the JSON value plus the FHIR type taken from its `value[x]` suffix, when there was one.
#[derive(Debug)]
struct TypedValue {
    json: Value,
    fhir_type: Option<String>,
}

#[derive(Debug)]
struct FpOp {
    location: String,
    kind: FpKind,
    path: Located<FhirPath>,
    name: Option<Located<String>>,
    value: Option<Located<TypedValue>>,
    index: Option<Located<usize>>,
    source: Option<Located<usize>>,
    destination: Option<Located<usize>>,
}

fn parse_parameters(parameters: &Value) -> Result<Vec<FpOp>, PatchError> {
    let obj = parameters
        .as_object()
        .ok_or_else(|| PatchError::malformed("a FHIRPath Patch body must be a Parameters resource", "Parameters"))?;
    if obj.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(PatchError::malformed(
            "a FHIRPath Patch body must have resourceType 'Parameters'",
            "Parameters.resourceType",
        ));
    }
    match obj.get("parameter") {
        None => Ok(Vec::new()),
        Some(Value::Array(params)) => params.iter().enumerate().map(|(i, p)| parse_operation(i, p)).collect(),
        Some(_) => Err(PatchError::malformed("'parameter' must be an array", "Parameters.parameter")),
    }
}

fn set_once<T>(slot: &mut Option<Located<T>>, value: T, name: &str, location: String) -> Result<(), PatchError> {
    if slot.is_some() {
        return Err(PatchError::malformed(format!("duplicate '{name}' part"), location));
    }
    *slot = Some(Located { value, location });
    Ok(())
}

fn string_part(part: &Map<String, Value>, name: &str, location: &str) -> Result<String, PatchError> {
    ["valueString", "valueCode"]
        .iter()
        .find_map(|key| part.get(*key).and_then(Value::as_str))
        .map(str::to_string)
        .ok_or_else(|| PatchError::malformed(format!("part '{name}' must have a valueString or valueCode"), location))
}

fn integer_part(part: &Map<String, Value>, name: &str, location: &str) -> Result<usize, PatchError> {
    let raw = ["valueInteger", "valueUnsignedInt", "valuePositiveInt"].iter().find_map(|key| part.get(*key));
    raw.and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| PatchError::malformed(format!("part '{name}' must have a non-negative valueInteger"), location))
}

fn is_value_x(key: &str) -> bool {
    key.strip_prefix("value").and_then(|rest| rest.chars().next()).is_some_and(|c| c.is_ascii_uppercase())
}

fn value_part(part: &Map<String, Value>, location: &str) -> Result<TypedValue, PatchError> {
    let mut typed = part.iter().filter(|(key, _)| is_value_x(key));
    if let Some((key, json)) = typed.next() {
        if typed.next().is_some() {
            return Err(PatchError::malformed("part has more than one value[x]", location));
        }
        return Ok(TypedValue { json: json.clone(), fhir_type: Some(key["value".len()..].to_string()) });
    }
    if let Some(resource) = part.get("resource") {
        return Ok(TypedValue { json: resource.clone(), fhir_type: None });
    }
    if let Some(Value::Array(sub_parts)) = part.get("part") {
        return Ok(TypedValue { json: anonymous_value(sub_parts, location)?, fhir_type: None });
    }
    Err(PatchError::malformed("part has no value[x], resource or part", location))
}

/// Builds the JSON object of an anonymous complex value from its named sub-parts.
fn anonymous_value(sub_parts: &[Value], location: &str) -> Result<Value, PatchError> {
    let mut object = Map::new();
    for (k, sub) in sub_parts.iter().enumerate() {
        let at = format!("{location}.part[{k}]");
        let sub = sub.as_object().ok_or_else(|| PatchError::malformed("part must be an object", at.as_str()))?;
        let name = sub
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError::malformed("part has no name", at.as_str()))?;
        let value = value_part(sub, &at)?.json;
        match object.get_mut(name) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => *existing = Value::Array(vec![existing.take(), value]),
            None => {
                object.insert(name.to_string(), value);
            }
        }
    }
    Ok(Value::Object(object))
}

fn parse_operation(i: usize, param: &Value) -> Result<FpOp, PatchError> {
    let location = format!("Parameters.parameter[{i}]");
    let obj =
        param.as_object().ok_or_else(|| PatchError::malformed("parameter must be an object", location.as_str()))?;
    if obj.get("name").and_then(Value::as_str) != Some("operation") {
        return Err(PatchError::malformed("parameter name must be 'operation'", format!("{location}.name")));
    }
    let parts = obj
        .get("part")
        .and_then(Value::as_array)
        .ok_or_else(|| PatchError::malformed("operation has no parts", location.as_str()))?;

    let mut kind: Option<Located<String>> = None;
    let mut path: Option<Located<String>> = None;
    let mut name = None;
    let mut value = None;
    let mut index = None;
    let mut source = None;
    let mut destination = None;
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{location}.part[{j}]");
        let part = part.as_object().ok_or_else(|| PatchError::malformed("part must be an object", at.as_str()))?;
        let part_name = part
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError::malformed("part has no name", at.as_str()))?;
        match part_name {
            "type" => set_once(&mut kind, string_part(part, part_name, &at)?, part_name, at)?,
            "path" => set_once(&mut path, string_part(part, part_name, &at)?, part_name, at)?,
            "name" => set_once(&mut name, string_part(part, part_name, &at)?, part_name, at)?,
            "value" => set_once(&mut value, value_part(part, &at)?, part_name, at)?,
            "index" => set_once(&mut index, integer_part(part, part_name, &at)?, part_name, at)?,
            "source" => set_once(&mut source, integer_part(part, part_name, &at)?, part_name, at)?,
            "destination" => set_once(&mut destination, integer_part(part, part_name, &at)?, part_name, at)?,
            other => return Err(PatchError::malformed(format!("unknown operation part '{other}'"), at)),
        }
    }

    let kind = kind.ok_or_else(|| PatchError::malformed("operation has no 'type' part", location.as_str()))?;
    let kind = match kind.value.as_str() {
        "add" => FpKind::Add,
        "insert" => FpKind::Insert,
        "delete" => FpKind::Delete,
        "replace" => FpKind::Replace,
        "move" => FpKind::Move,
        other => {
            return Err(PatchError::malformed(format!("unknown operation type '{other}'"), kind.location));
        }
    };
    let path = path.ok_or_else(|| PatchError::malformed("operation has no 'path' part", location.as_str()))?;
    let parsed = parse_fhirpath(&path.value).map_err(|e| {
        PatchError::malformed(format!("invalid FHIRPath '{}': {e}", path.value), path.location.as_str())
    })?;
    let op = FpOp {
        location,
        kind,
        path: Located { value: parsed, location: path.location },
        name,
        value,
        index,
        source,
        destination,
    };
    let required: &[(&str, bool)] = match kind {
        FpKind::Add => &[("name", op.name.is_some()), ("value", op.value.is_some())],
        FpKind::Insert => &[("value", op.value.is_some()), ("index", op.index.is_some())],
        FpKind::Delete => &[],
        FpKind::Replace => &[("value", op.value.is_some())],
        FpKind::Move => &[("source", op.source.is_some()), ("destination", op.destination.is_some())],
    };
    if let Some((missing, _)) = required.iter().find(|(_, present)| !present) {
        return Err(PatchError::malformed(format!("operation has no '{missing}' part"), op.location));
    }
    Ok(op)
}

/// Fetches a part that `parse_operation` already checked is present for this operation type.
fn present<'o, T>(part: &'o Option<Located<T>>, op: &FpOp) -> Result<&'o Located<T>, PatchError> {
    part.as_ref().ok_or_else(|| PatchError::malformed("operation is missing a required part", op.location.as_str()))
}

impl FpOp {
    fn path_error(&self, message: String) -> PatchError {
        PatchError::not_applicable(message, self.path.location.as_str())
    }

    fn single(&self, doc: &Value) -> Result<Loc, PatchError> {
        let mut selection = evaluate(doc, &self.path.value);
        match selection.len() {
            1 => selection.pop().ok_or_else(|| self.path_error("path matches nothing".to_string())),
            0 => Err(self.path_error(format!("path '{}' matches nothing", self.path.value.source))),
            n => Err(self.path_error(format!(
                "path '{}' matches {n} elements; exactly one is required",
                self.path.value.source
            ))),
        }
    }

    /// Resolves the path of a list operation to (object holding the list, member name); the list itself may be absent.
    fn collection(&self, doc: &Value) -> Result<(Vec<Step>, String), PatchError> {
        let path = &self.path.value;
        let Some((PathStep::Member(member), prefix)) = path.steps.split_last() else {
            return Err(self.path_error(format!("path '{}' must end with the name of a list element", path.source)));
        };
        let parent_path =
            FhirPath { source: path.source.clone(), root_type: path.root_type.clone(), steps: prefix.to_vec() };
        let mut parents = evaluate(doc, &parent_path);
        let parent = match (parents.pop(), parents.is_empty()) {
            (Some(parent), true) => parent,
            (None, _) => return Err(self.path_error(format!("the element holding '{}' does not exist", path.source))),
            (Some(_), false) => {
                return Err(self.path_error(format!("path '{}' selects more than one list", path.source)));
            }
        };
        if !resolve(doc, &parent.steps).is_some_and(Value::is_object) {
            return Err(self.path_error(format!("path '{}' does not select a list", path.source)));
        }
        Ok((parent.steps, member.clone()))
    }

    fn apply(&self, doc: &mut Value) -> Result<(), PatchError> {
        match self.kind {
            FpKind::Add => self.add(doc),
            FpKind::Insert => self.insert(doc),
            FpKind::Delete => self.delete(doc),
            FpKind::Replace => self.replace(doc),
            FpKind::Move => self.move_item(doc),
        }
    }

    fn add(&self, doc: &mut Value) -> Result<(), PatchError> {
        let name = present(&self.name, self)?;
        let value = present(&self.value, self)?;
        let target = self.single(doc)?;
        let Some(Value::Object(map)) = resolve_mut(doc, &target.steps) else {
            return Err(self
                .path_error(format!("path '{}' does not select an element with properties", self.path.value.source)));
        };
        match map.get_mut(&name.value) {
            Some(Value::Array(items)) => items.push(value.value.json.clone()),
            None | Some(Value::Null) => {
                map.insert(name.value.clone(), value.value.json.clone());
            }
            Some(_) => {
                return Err(PatchError::not_applicable(
                    format!("'{}' already has a value; use replace", name.value),
                    name.location.as_str(),
                ));
            }
        }
        Ok(())
    }

    fn list_mut<'v>(&self, doc: &'v mut Value, create: bool) -> Result<&'v mut Vec<Value>, PatchError> {
        let (parent, member) = self.collection(doc)?;
        let source = &self.path.value.source;
        let map = resolve_mut(doc, &parent)
            .and_then(Value::as_object_mut)
            .ok_or_else(|| self.path_error(format!("path '{source}' does not select a list")))?;
        if create && map.get(&member).is_none_or(Value::is_null) {
            map.insert(member.clone(), Value::Array(Vec::new()));
        }
        match map.get_mut(&member) {
            Some(Value::Array(items)) => Ok(items),
            None | Some(Value::Null) => Err(self.path_error(format!("path '{source}' matches nothing"))),
            Some(_) => Err(self.path_error(format!("path '{source}' selects a single value, not a list"))),
        }
    }

    fn insert(&self, doc: &mut Value) -> Result<(), PatchError> {
        let index = present(&self.index, self)?;
        let value = present(&self.value, self)?;
        let items = self.list_mut(doc, true)?;
        if index.value > items.len() {
            return Err(PatchError::not_applicable(
                format!("index {} is beyond the end of the list (length {})", index.value, items.len()),
                index.location.as_str(),
            ));
        }
        items.insert(index.value, value.value.json.clone());
        Ok(())
    }

    fn move_item(&self, doc: &mut Value) -> Result<(), PatchError> {
        let source = present(&self.source, self)?;
        let destination = present(&self.destination, self)?;
        let items = self.list_mut(doc, false)?;
        let len = items.len();
        for bound in [source, destination] {
            if bound.value >= len {
                return Err(PatchError::not_applicable(
                    format!("index {} is out of range for a list of length {len}", bound.value),
                    bound.location.as_str(),
                ));
            }
        }
        let item = items.remove(source.value);
        items.insert(destination.value, item);
        Ok(())
    }

    fn delete(&self, doc: &mut Value) -> Result<(), PatchError> {
        let selection = evaluate(doc, &self.path.value);
        let target = match selection.as_slice() {
            // fhirpatch.html: delete removes the element "if found"; nothing found is success.
            [] => return Ok(()),
            [one] => one,
            many => {
                return Err(self.path_error(format!(
                    "path '{}' matches {} elements; delete removes at most one",
                    self.path.value.source,
                    many.len()
                )));
            }
        };
        let Some((last, parent)) = target.steps.split_last() else {
            return Err(self.path_error("cannot delete the resource itself".to_string()));
        };
        let missing = || self.path_error(format!("path '{}' no longer resolves", self.path.value.source));
        match (last, resolve_mut(doc, parent).ok_or_else(missing)?) {
            (Step::Key(key), Value::Object(map)) => {
                map.shift_remove(key);
            }
            (Step::Index(i), Value::Array(items)) if *i < items.len() => {
                items.remove(*i);
                if items.is_empty()
                    && let Some((Step::Key(member), grand)) = parent.split_last()
                    && let Some(Value::Object(map)) = resolve_mut(doc, grand)
                {
                    map.shift_remove(member);
                }
            }
            _ => return Err(missing()),
        }
        Ok(())
    }

    fn replace(&self, doc: &mut Value) -> Result<(), PatchError> {
        let value = present(&self.value, self)?;
        let target = self.single(doc)?;
        let Some((last, parent)) = target.steps.split_last() else {
            return Err(self.path_error("cannot replace the resource itself".to_string()));
        };
        let missing = || self.path_error(format!("path '{}' no longer resolves", self.path.value.source));
        let new = value.value.json.clone();
        match (last, resolve_mut(doc, parent).ok_or_else(missing)?) {
            (Step::Key(key), Value::Object(map)) => {
                let retyped =
                    target.choice_base.as_ref().zip(value.value.fhir_type.as_ref()).map(|(b, t)| b.clone() + t);
                match retyped.filter(|k| k != key) {
                    Some(new_key) => rename_member(map, key, new_key, new),
                    None => {
                        map.insert(key.clone(), new);
                    }
                }
            }
            (Step::Index(i), Value::Array(items)) => *items.get_mut(*i).ok_or_else(missing)? = new,
            _ => return Err(missing()),
        }
        Ok(())
    }
}

/// Replaces member `old` by `new_key: value` at the same position, keeping the resource's member order stable.
fn rename_member(map: &mut Map<String, Value>, old: &str, new_key: String, value: Value) {
    let mut value = Some(value);
    for (key, existing) in std::mem::take(map) {
        if key == old {
            if let Some(value) = value.take() {
                map.insert(new_key.clone(), value);
            }
        } else if key != new_key {
            // A stale sibling with the new name would make the choice element hold two values.
            map.insert(key, existing);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn malformed_at(err: PatchError) -> String {
        match err {
            PatchError::Malformed { location, .. } => location,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    fn not_applicable_at(err: PatchError) -> String {
        match err {
            PatchError::NotApplicable { location, .. } => location,
            other => panic!("expected NotApplicable, got {other:?}"),
        }
    }

    fn json_patch(mut doc: Value, patch: Value) -> Result<Value, PatchError> {
        apply_json_patch(&mut doc, &patch).map(|()| doc)
    }

    /// Asserts the patch fails and leaves the document untouched; returns the error.
    fn json_patch_err(doc: Value, patch: Value) -> PatchError {
        let mut patched = doc.clone();
        let err = apply_json_patch(&mut patched, &patch).expect_err("patch should fail");
        assert_eq!(patched, doc, "a failed patch must leave the document unchanged");
        err
    }

    // ---- JSON Patch ------------------------------------------------------------------------------------------

    #[test]
    fn json_add_member_and_overwrite() {
        let out = json_patch(
            json!({"a": 1}),
            json!([{"op": "add", "path": "/b", "value": [1]}, {"op": "add", "path": "/a", "value": 2}]),
        );
        assert_eq!(out, Ok(json!({"a": 2, "b": [1]})));
    }

    #[test]
    fn json_add_array_index_and_append() {
        let out = json_patch(
            json!({"a": [1, 3]}),
            json!([
                {"op": "add", "path": "/a/1", "value": 2},
                {"op": "add", "path": "/a/-", "value": 4},
                {"op": "add", "path": "/a/4", "value": 5}
            ]),
        );
        assert_eq!(out, Ok(json!({"a": [1, 2, 3, 4, 5]})));
    }

    #[test]
    fn json_add_root_replaces_document() {
        assert_eq!(
            json_patch(json!({"a": 1}), json!([{"op": "add", "path": "", "value": {"b": 2}}])),
            Ok(json!({"b": 2}))
        );
    }

    #[test]
    fn json_add_null_value_is_present() {
        assert_eq!(json_patch(json!({}), json!([{"op": "add", "path": "/a", "value": null}])), Ok(json!({"a": null})));
    }

    #[test]
    fn json_add_errors() {
        let doc = json!({"a": [1], "s": "x"});
        let cases = [
            json!([{"op": "add", "path": "/missing/child", "value": 1}]),
            json!([{"op": "add", "path": "/a/2", "value": 1}]),
            json!([{"op": "add", "path": "/a/01", "value": 1}]),
            json!([{"op": "add", "path": "/a/x", "value": 1}]),
            json!([{"op": "add", "path": "/s/k", "value": 1}]),
        ];
        for patch in cases {
            assert_eq!(not_applicable_at(json_patch_err(doc.clone(), patch)), "/0/path");
        }
    }

    #[test]
    fn json_remove() {
        let out = json_patch(
            json!({"a": 1, "b": [1, 2, 3], "c": 3}),
            json!([{"op": "remove", "path": "/a"}, {"op": "remove", "path": "/b/1"}]),
        );
        assert_eq!(out, Ok(json!({"b": [1, 3], "c": 3})));
        // Member order of the survivors is kept.
        let keys: Vec<String> =
            out.unwrap_or_default().as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        assert_eq!(keys, ["b", "c"]);
    }

    #[test]
    fn json_remove_errors() {
        let doc = json!({"a": [1]});
        for path in ["/b", "/a/1", "/a/-"] {
            let err = json_patch_err(doc.clone(), json!([{"op": "remove", "path": path}]));
            assert_eq!(not_applicable_at(err), "/0/path", "{path}");
        }
        assert_eq!(not_applicable_at(json_patch_err(doc, json!([{"op": "remove", "path": ""}]))), "/0/path");
    }

    #[test]
    fn json_replace() {
        let out = json_patch(
            json!({"a": 1, "b": [1, 2]}),
            json!([{"op": "replace", "path": "/a", "value": "x"}, {"op": "replace", "path": "/b/0", "value": 9}]),
        );
        assert_eq!(out, Ok(json!({"a": "x", "b": [9, 2]})));
        assert_eq!(json_patch(json!({"a": 1}), json!([{"op": "replace", "path": "", "value": [1]}])), Ok(json!([1])));
        let err = json_patch_err(json!({"a": 1}), json!([{"op": "replace", "path": "/b", "value": 1}]));
        assert_eq!(not_applicable_at(err), "/0/path");
    }

    #[test]
    fn json_move() {
        let out = json_patch(json!({"a": {"x": 1}, "b": {}}), json!([{"op": "move", "from": "/a/x", "path": "/b/y"}]));
        assert_eq!(out, Ok(json!({"a": {}, "b": {"y": 1}})));
        let out = json_patch(json!({"l": [1, 2, 3, 4]}), json!([{"op": "move", "from": "/l/1", "path": "/l/3"}]));
        assert_eq!(out, Ok(json!({"l": [1, 3, 4, 2]})));
        assert_eq!(
            json_patch(json!({"a": 1}), json!([{"op": "move", "from": "/a", "path": "/a"}])),
            Ok(json!({"a": 1}))
        );
    }

    #[test]
    fn json_move_errors() {
        let err = json_patch_err(json!({"a": {"b": 1}}), json!([{"op": "move", "from": "/a", "path": "/a/b/c"}]));
        assert_eq!(malformed_at(err), "/0/from");
        let err = json_patch_err(json!({"a": 1}), json!([{"op": "move", "from": "/nope", "path": "/b"}]));
        assert_eq!(not_applicable_at(err), "/0/from");
        let err = json_patch_err(json!({"a": 1}), json!([{"op": "move", "from": "/a", "path": "/x/y"}]));
        assert_eq!(not_applicable_at(err), "/0/path");
    }

    #[test]
    fn json_copy() {
        let out = json_patch(
            json!({"a": {"x": [1]}, "l": [0]}),
            json!([{"op": "copy", "from": "/a/x", "path": "/l/-"}, {"op": "copy", "from": "/a", "path": "/b"}]),
        );
        assert_eq!(out, Ok(json!({"a": {"x": [1]}, "l": [0, [1]], "b": {"x": [1]}})));
        let err = json_patch_err(json!({}), json!([{"op": "copy", "from": "/a", "path": "/b"}]));
        assert_eq!(not_applicable_at(err), "/0/from");
    }

    #[test]
    fn json_test_op() {
        let doc = json!({"n": 1, "f": 2.5, "o": {"a": 1, "b": [true, null]}, "s": "x"});
        let ok = json!([
            {"op": "test", "path": "/n", "value": 1.0},
            {"op": "test", "path": "/f", "value": 2.5},
            {"op": "test", "path": "/o", "value": {"b": [true, null], "a": 1.0}},
            {"op": "test", "path": "/s", "value": "x"},
            {"op": "test", "path": "", "value": doc.clone()}
        ]);
        assert_eq!(json_patch(doc.clone(), ok), Ok(doc.clone()));
        let err = json_patch_err(doc.clone(), json!([{"op": "test", "path": "/n", "value": "1"}]));
        assert_eq!(not_applicable_at(err), "/0");
        let err = json_patch_err(doc.clone(), json!([{"op": "test", "path": "/o", "value": {"a": 1}}]));
        assert_eq!(not_applicable_at(err), "/0");
        let err = json_patch_err(doc, json!([{"op": "test", "path": "/zz", "value": 1}]));
        assert_eq!(not_applicable_at(err), "/0/path");
    }

    #[test]
    fn json_failed_patch_is_atomic() {
        let doc = json!({"resourceType": "Patient", "active": true, "name": [{"family": "A"}]});
        let patch = json!([
            {"op": "replace", "path": "/active", "value": false},
            {"op": "add", "path": "/name/0/given", "value": ["B"]},
            {"op": "test", "path": "/active", "value": true}
        ]);
        assert_eq!(not_applicable_at(json_patch_err(doc, patch)), "/2");
    }

    #[test]
    fn json_pointer_escapes() {
        let doc = json!({"a/b": 1, "m~n": 2, "": 3, " ": 4});
        let patch = json!([
            {"op": "replace", "path": "/a~1b", "value": 10},
            {"op": "replace", "path": "/m~0n", "value": 20},
            {"op": "replace", "path": "/", "value": 30},
            {"op": "add", "path": "/~01", "value": 5}
        ]);
        assert_eq!(json_patch(doc, patch), Ok(json!({"a/b": 10, "m~n": 20, "": 30, " ": 4, "~1": 5})));
        assert_eq!(parse_pointer("/a~1b/~0~1"), Ok(vec!["a/b".to_string(), "~/".to_string()]));
        assert_eq!(render_pointer(&["a/b".to_string(), "~".to_string()]), "/a~1b/~0");
    }

    #[test]
    fn json_malformed_documents() {
        let doc = json!({"a": 1});
        assert_eq!(malformed_at(json_patch_err(doc.clone(), json!({"op": "add"}))), "");
        let cases = [
            (json!([{"op": "test", "path": "/a", "value": 1}, "nope"]), "/1"),
            (json!([{"op": "frobnicate", "path": "/a"}]), "/0/op"),
            (json!([{"op": 1, "path": "/a"}]), "/0/op"),
            (json!([{"path": "/a"}]), "/0/op"),
            (json!([{"op": "remove"}]), "/0/path"),
            (json!([{"op": "remove", "path": 3}]), "/0/path"),
            (json!([{"op": "remove", "path": "a"}]), "/0/path"),
            (json!([{"op": "remove", "path": "/a~2"}]), "/0/path"),
            (json!([{"op": "remove", "path": "/a~"}]), "/0/path"),
            (json!([{"op": "add", "path": "/b"}]), "/0/value"),
            (json!([{"op": "replace", "path": "/a"}]), "/0/value"),
            (json!([{"op": "test", "path": "/a"}]), "/0/value"),
            (json!([{"op": "move", "path": "/b"}]), "/0/from"),
            (json!([{"op": "copy", "path": "/b", "from": "x"}]), "/0/from"),
        ];
        for (patch, location) in cases {
            assert_eq!(malformed_at(json_patch_err(doc.clone(), patch.clone())), location, "{patch}");
        }
    }

    #[test]
    fn json_malformed_reported_before_any_op_runs() {
        // Op 0 alone would be NotApplicable; the malformed op 1 must win so the client gets a 400.
        let patch = json!([{"op": "remove", "path": "/missing"}, {"op": "bogus", "path": "/a"}]);
        assert_eq!(malformed_at(json_patch_err(json!({}), patch)), "/1/op");
    }

    #[test]
    fn json_empty_patch_is_noop() {
        assert_eq!(json_patch(json!({"a": 1}), json!([])), Ok(json!({"a": 1})));
    }

    #[test]
    fn json_eq_numbers() {
        assert!(json_eq(&json!(1), &json!(1.0)));
        assert!(json_eq(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(!json_eq(&json!(-1), &json!(u64::MAX)));
        assert!(!json_eq(&json!(1), &json!(true)));
        assert!(!json_eq(&json!([1, 2]), &json!([2, 1])));
    }

    // ---- FHIRPath Patch ------------------------------------------------------------------------------------

    fn params(operations: Vec<Vec<Value>>) -> Value {
        let parameter: Vec<Value> =
            operations.into_iter().map(|part| json!({"name": "operation", "part": part})).collect();
        json!({"resourceType": "Parameters", "parameter": parameter})
    }

    fn kind(t: &str) -> Value {
        json!({"name": "type", "valueCode": t})
    }

    fn path(p: &str) -> Value {
        json!({"name": "path", "valueString": p})
    }

    fn name(n: &str) -> Value {
        json!({"name": "name", "valueString": n})
    }

    fn int(part: &str, i: i64) -> Value {
        json!({"name": part, "valueInteger": i})
    }

    fn value(key: &str, v: Value) -> Value {
        let mut part = Map::new();
        part.insert("name".into(), json!("value"));
        part.insert(key.into(), v);
        Value::Object(part)
    }

    fn fp_patch(mut doc: Value, parameters: Value) -> Result<Value, PatchError> {
        apply_fhirpath_patch(&mut doc, &parameters).map(|()| doc)
    }

    fn fp_patch_err(doc: Value, parameters: Value) -> PatchError {
        let mut patched = doc.clone();
        let err = apply_fhirpath_patch(&mut patched, &parameters).expect_err("patch should fail");
        assert_eq!(patched, doc, "a failed patch must leave the resource unchanged");
        err
    }

    fn patient() -> Value {
        json!({
            "resourceType": "Patient",
            "id": "example",
            "identifier": [
                {"system": "http://a", "value": "1"},
                {"system": "http://b", "value": "2", "type": {"coding": [{"code": "MR"}]}}
            ],
            "active": true,
            "name": [
                {"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
                {"use": "usual", "given": ["Jim"]}
            ],
            "telecom": [
                {"system": "phone", "value": "555-1"},
                {"system": "email", "value": "p@example.org"}
            ],
            "gender": "male"
        })
    }

    fn select(doc: &Value, src: &str) -> Vec<Value> {
        let parsed = parse_fhirpath(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        evaluate(doc, &parsed).iter().filter_map(|loc| resolve(doc, &loc.steps).cloned()).collect()
    }

    #[test]
    fn fhirpath_navigation_flattens_and_filters() {
        let p = patient();
        assert_eq!(select(&p, "Patient.name.given"), [json!("Peter"), json!("James"), json!("Jim")]);
        assert_eq!(select(&p, "Patient.name.given[2]"), [json!("Jim")]);
        assert_eq!(select(&p, "Patient.name[0].given.last()"), [json!("James")]);
        assert_eq!(select(&p, "Patient.name.first().family"), [json!("Chalmers")]);
        assert_eq!(select(&p, "name.where(use = 'usual').given"), [json!("Jim")]);
        assert_eq!(select(&p, "Patient.telecom.where(system='phone').value"), [json!("555-1")]);
        assert_eq!(select(&p, "Patient.identifier.where(type.coding.code = 'MR').value"), [json!("2")]);
        assert_eq!(select(&p, "Patient.identifier.where('http://a' = system).value"), [json!("1")]);
        assert_eq!(select(&p, "Patient.identifier.where(system = 'http://b' and value = '2').value"), [json!("2")]);
        assert_eq!(select(&p, "Patient.name.given.where($this = 'James')"), [json!("James")]);
        assert_eq!(select(&p, "Patient.active.where($this = true)"), [json!(true)]);
        assert_eq!(select(&p, "Patient.`gender`"), [json!("male")]);
        assert!(select(&p, "Patient.name[5]").is_empty());
        assert!(select(&p, "Observation.status").is_empty());
        assert!(select(&p, "Patient.gender.given").is_empty());
    }

    #[test]
    fn fhirpath_choice_elements() {
        let obs = json!({
            "resourceType": "Observation",
            "valueQuantity": {"value": 5.0},
            "effectiveDateTime": "2020",
            "valueSet": "x"
        });
        assert_eq!(select(&obs, "Observation.value"), [json!({"value": 5.0})]);
        assert_eq!(select(&obs, "Observation.value.value"), [json!(5.0)]);
        assert_eq!(select(&obs, "Observation.effective"), [json!("2020")]);
        assert_eq!(select(&obs, "Observation.valueQuantity.value.where($this = 5)"), [json!(5.0)]);
    }

    #[test]
    fn fhirpath_parse_errors() {
        for bad in [
            "",
            "Patient.",
            "Patient.name[",
            "Patient.name[x]",
            "Patient.name.exists()",
            "Patient.name.where(use = )",
            "Patient.name.where(use = 'x'",
            "Patient.name.where(use 'x')",
            "Patient.name.where(use = 'x",
            "Patient.name.where(use = 'bad\\q')",
            "Patient..name",
            "Patient.name#",
            "$this.name",
        ] {
            assert!(parse_fhirpath(bad).is_err(), "{bad:?} should not parse");
        }
        let parsed = parse_fhirpath("Patient.name.where(family = 'O\\'Brien \\u00e9')");
        let literal = parsed.ok().and_then(|p| match p.steps.get(1) {
            Some(PathStep::Where(c)) => c.first().map(|c| c.literal.clone()),
            _ => None,
        });
        assert_eq!(literal, Some(json!("O'Brien é")));
    }

    #[test]
    fn fhirpath_add_birth_date_spec_example() {
        let out = fp_patch(
            patient(),
            params(vec![vec![
                kind("add"),
                path("Patient"),
                name("birthDate"),
                value("valueDate", json!("1930-01-01")),
            ]]),
        );
        assert_eq!(out.ok().and_then(|p| p.get("birthDate").cloned()), Some(json!("1930-01-01")));
    }

    #[test]
    fn fhirpath_add_appends_to_existing_list() {
        let identifier = json!({"system": "http://c", "value": "3"});
        let out = fp_patch(
            patient(),
            params(vec![vec![
                kind("add"),
                path("Patient"),
                name("identifier"),
                value("valueIdentifier", identifier.clone()),
            ]]),
        )
        .unwrap_or_default();
        assert_eq!(out["identifier"].as_array().map(Vec::len), Some(3));
        assert_eq!(out["identifier"][2], identifier);
        let out = fp_patch(
            patient(),
            params(vec![vec![
                kind("add"),
                path("Patient.name.where(use = 'usual')"),
                name("given"),
                value("valueString", json!("Jimmy")),
            ]]),
        );
        assert_eq!(out.ok().map(|p| p["name"][1]["given"].clone()), Some(json!(["Jim", "Jimmy"])));
    }

    #[test]
    fn fhirpath_add_errors() {
        let err = fp_patch_err(
            patient(),
            params(vec![vec![kind("add"), path("Patient"), name("gender"), value("valueCode", json!("female"))]]),
        );
        assert_eq!(not_applicable_at(err), "Parameters.parameter[0].part[2]");
        let err = fp_patch_err(
            patient(),
            params(vec![vec![kind("add"), path("Patient.name"), name("text"), value("valueString", json!("x"))]]),
        );
        assert_eq!(not_applicable_at(err), "Parameters.parameter[0].part[1]");
        let err = fp_patch_err(
            patient(),
            params(vec![vec![kind("add"), path("Patient.contact"), name("text"), value("valueString", json!("x"))]]),
        );
        assert_eq!(not_applicable_at(err), "Parameters.parameter[0].part[1]");
        let err = fp_patch_err(
            patient(),
            params(vec![vec![kind("add"), path("Patient.gender"), name("text"), value("valueString", json!("x"))]]),
        );
        assert_eq!(not_applicable_at(err), "Parameters.parameter[0].part[1]");
    }

    #[test]
    fn fhirpath_replace_gender() {
        let out = fp_patch(
            patient(),
            params(vec![vec![kind("replace"), path("Patient.gender"), value("valueCode", json!("female"))]]),
        );
        assert_eq!(out.ok().map(|p| p["gender"].clone()), Some(json!("female")));
    }

    #[test]
    fn fhirpath_replace_array_item_and_nested() {
        let out = fp_patch(
            patient(),
            params(vec![
                vec![kind("replace"), path("Patient.name[0].given[1]"), value("valueString", json!("Jacob"))],
                vec![
                    kind("replace"),
                    path("Patient.telecom.where(system='phone').value"),
                    value("valueString", json!("555-9")),
                ],
            ]),
        )
        .unwrap_or_default();
        assert_eq!(out["name"][0]["given"], json!(["Peter", "Jacob"]));
        assert_eq!(out["telecom"][0], json!({"system": "phone", "value": "555-9"}));
    }

    #[test]
    fn fhirpath_replace_with_complex_values() {
        let obs = json!({
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "1"}]}
        });
        let coding = json!({"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"});
        let concept = json!({"coding": [coding.clone()], "text": "Weight"});
        let out = fp_patch(
            obs.clone(),
            params(vec![vec![
                kind("replace"),
                path("Observation.code.coding[0]"),
                value("valueCoding", coding.clone()),
            ]]),
        );
        assert_eq!(out.ok().map(|o| o["code"]["coding"].clone()), Some(json!([coding])));
        let out = fp_patch(
            obs,
            params(vec![vec![
                kind("replace"),
                path("Observation.code"),
                value("valueCodeableConcept", concept.clone()),
            ]]),
        );
        assert_eq!(out.ok().map(|o| o["code"].clone()), Some(concept));
    }

    #[test]
    fn fhirpath_replace_choice_retypes_member() {
        let obs = json!({"resourceType": "Observation", "status": "final", "valueQuantity": {"value": 5}, "note": []});
        let out = fp_patch(
            obs.clone(),
            params(vec![vec![kind("replace"), path("Observation.value"), value("valueString", json!("five"))]]),
        )
        .unwrap_or_default();
        assert_eq!(out, json!({"resourceType": "Observation", "status": "final", "valueString": "five", "note": []}));
        let keys: Vec<&String> = out.as_object().map(|m| m.keys().collect()).unwrap_or_default();
        assert_eq!(keys, ["resourceType", "status", "valueString", "note"]);
        // Addressed by its full name, the member keeps that name.
        let out = fp_patch(
            obs,
            params(vec![vec![
                kind("replace"),
                path("Observation.valueQuantity.value"),
                value("valueDecimal", json!(6)),
            ]]),
        );
        assert_eq!(out.ok().map(|o| o["valueQuantity"].clone()), Some(json!({"value": 6})));
    }

    #[test]
    fn fhirpath_replace_errors() {
        let err = fp_patch_err(
            patient(),
            params(vec![vec![kind("replace"), path("Patient.birthDate"), value("valueDate", json!("2000"))]]),
        );
        assert_eq!(not_applicable_at(err), "Parameters.parameter[0].part[1]");
        let err = fp_patch_err(
            patient(),
            params(vec![vec![kind("replace"), path("Patient.name.given"), value("valueString", json!("X"))]]),
        );
        assert_eq!(not_applicable_at(err), "Parameters.parameter[0].part[1]");
        let err = fp_patch_err(
            patient(),
            params(vec![vec![kind("replace"), path("Patient"), value("valueString", json!("X"))]]),
        );
        assert_eq!(not_applicable_at(err), "Parameters.parameter[0].part[1]");
    }

    #[test]
    fn fhirpath_delete_identifier_with_where() {
        let out = fp_patch(
            patient(),
            params(vec![vec![kind("delete"), path("Patient.identifier.where(system = 'http://a')")]]),
        )
        .unwrap_or_default();
        assert_eq!(
            out["identifier"],
            json!([{"system": "http://b", "value": "2", "type": {"coding": [{"code": "MR"}]}}])
        );
    }

    #[test]
    fn fhirpath_delete_member_and_last_item() {
        let out = fp_patch(
            patient(),
            params(vec![
                vec![kind("delete"), path("Patient.gender")],
                vec![kind("delete"), path("Patient.name.where(use='usual').given")],
                vec![kind("delete"), path("Patient.active")],
            ]),
        )
        .unwrap_or_default();
        assert!(out.get("gender").is_none() && out.get("active").is_none());
        // Removing the only given name drops the member instead of leaving an empty array.
        assert_eq!(out["name"][1], json!({"use": "usual"}));
    }

    #[test]
    fn fhirpath_delete_nothing_is_noop() {
        let out = fp_patch(
            patient(),
            params(vec![
                vec![kind("delete"), path("Patient.birthDate")],
                vec![kind("delete"), path("Observation.status")],
            ]),
        );
        assert_eq!(out, Ok(patient()));
    }

    #[test]
    fn fhirpath_delete_errors() {
        let err = fp_patch_err(patient(), params(vec![vec![kind("delete"), path("Patient.name.given")]]));
        assert_eq!(not_applicable_at(err), "Parameters.parameter[0].part[1]");
        let err = fp_patch_err(patient(), params(vec![vec![path("Patient"), kind("delete")]]));
        assert_eq!(not_applicable_at(err), "Parameters.parameter[0].part[0]");
    }

    #[test]
    fn fhirpath_insert_given_at_front() {
        let out = fp_patch(
            patient(),
            params(vec![vec![
                kind("insert"),
                path("Patient.name[0].given"),
                value("valueString", json!("Pete")),
                int("index", 0),
            ]]),
        );
        assert_eq!(out.ok().map(|p| p["name"][0]["given"].clone()), Some(json!(["Pete", "Peter", "James"])));
        let out = fp_patch(
            patient(),
            params(vec![vec![
                kind("insert"),
                path("Patient.name[1].given"),
                value("valueString", json!("Z")),
                int("index", 1),
            ]]),
        );
        assert_eq!(out.ok().map(|p| p["name"][1]["given"].clone()), Some(json!(["Jim", "Z"])));
    }

    #[test]
    fn fhirpath_insert_creates_absent_list() {
        let out = fp_patch(
            patient(),
            params(vec![vec![
                kind("insert"),
                path("Patient.name[1].prefix"),
                value("valueString", json!("Mr")),
                int("index", 0),
            ]]),
        );
        assert_eq!(out.ok().map(|p| p["name"][1]["prefix"].clone()), Some(json!(["Mr"])));
    }

    #[test]
    fn fhirpath_insert_errors() {
        let insert = |p: &str, i: i64| {
            params(vec![vec![kind("insert"), path(p), value("valueString", json!("X")), int("index", i)]])
        };
        assert_eq!(
            not_applicable_at(fp_patch_err(patient(), insert("Patient.name[0].given", 3))),
            "Parameters.parameter[0].part[3]"
        );
        assert_eq!(
            not_applicable_at(fp_patch_err(patient(), insert("Patient.gender", 0))),
            "Parameters.parameter[0].part[1]"
        );
        assert_eq!(
            not_applicable_at(fp_patch_err(patient(), insert("Patient.name.given", 0))),
            "Parameters.parameter[0].part[1]"
        );
        assert_eq!(
            not_applicable_at(fp_patch_err(patient(), insert("Patient.name[7].given", 0))),
            "Parameters.parameter[0].part[1]"
        );
        assert_eq!(
            not_applicable_at(fp_patch_err(patient(), insert("Patient.name.first()", 0))),
            "Parameters.parameter[0].part[1]"
        );
        assert_eq!(
            not_applicable_at(fp_patch_err(patient(), insert("Patient.gender.text", 0))),
            "Parameters.parameter[0].part[1]"
        );
    }

    #[test]
    fn fhirpath_move() {
        let moved = |source: i64, destination: i64| {
            fp_patch(
                patient(),
                params(vec![vec![
                    kind("move"),
                    path("Patient.identifier"),
                    int("source", source),
                    int("destination", destination),
                ]]),
            )
            .map(|p| p["identifier"].as_array().map(|ids| ids.iter().map(|i| i["value"].clone()).collect::<Vec<_>>()))
        };
        assert_eq!(moved(1, 0), Ok(Some(vec![json!("2"), json!("1")])));
        assert_eq!(moved(0, 0), Ok(Some(vec![json!("1"), json!("2")])));
        let err = fp_patch_err(
            patient(),
            params(vec![vec![kind("move"), path("Patient.identifier"), int("source", 2), int("destination", 0)]]),
        );
        assert_eq!(not_applicable_at(err), "Parameters.parameter[0].part[2]");
        let err = fp_patch_err(
            patient(),
            params(vec![vec![kind("move"), path("Patient.identifier"), int("source", 0), int("destination", 2)]]),
        );
        assert_eq!(not_applicable_at(err), "Parameters.parameter[0].part[3]");
        let err = fp_patch_err(
            patient(),
            params(vec![vec![kind("move"), path("Patient.contact"), int("source", 0), int("destination", 0)]]),
        );
        assert_eq!(not_applicable_at(err), "Parameters.parameter[0].part[1]");
    }

    #[test]
    fn fhirpath_part_based_value_spec_example() {
        let contact = json!({
            "name": "value",
            "part": [
                {"name": "name", "valueHumanName": {"text": "a name"}},
                {"name": "telecom", "valueContactPoint": {"system": "phone", "value": "1"}},
                {"name": "telecom", "valueContactPoint": {"system": "email", "value": "e"}},
                {"name": "period", "part": [{"name": "start", "valueDateTime": "2020-01-01"}]}
            ]
        });
        let out = fp_patch(patient(), params(vec![vec![kind("add"), path("Patient"), name("contact"), contact]]));
        assert_eq!(
            out.ok().map(|p| p["contact"].clone()),
            Some(json!({
                "name": {"text": "a name"},
                "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "e"}],
                "period": {"start": "2020-01-01"}
            }))
        );
    }

    #[test]
    fn fhirpath_resource_value() {
        let contained = json!({"resourceType": "Organization", "id": "o1"});
        let part = json!({"name": "value", "resource": contained.clone()});
        let out = fp_patch(patient(), params(vec![vec![kind("add"), path("Patient"), name("contained"), part]]));
        assert_eq!(out.ok().map(|p| p["contained"].clone()), Some(contained));
    }

    #[test]
    fn fhirpath_failed_patch_is_atomic() {
        let parameters = params(vec![
            vec![kind("replace"), path("Patient.gender"), value("valueCode", json!("female"))],
            vec![kind("delete"), path("Patient.identifier[0]")],
            vec![kind("replace"), path("Patient.deceasedBoolean"), value("valueBoolean", json!(true))],
        ]);
        assert_eq!(not_applicable_at(fp_patch_err(patient(), parameters)), "Parameters.parameter[2].part[1]");
    }

    #[test]
    fn fhirpath_malformed_parameters() {
        let op = |parts: Vec<Value>| params(vec![parts]);
        let cases = [
            (json!([]), "Parameters"),
            (json!({"resourceType": "Patient"}), "Parameters.resourceType"),
            (json!({"resourceType": "Parameters", "parameter": {}}), "Parameters.parameter"),
            (
                json!({"resourceType": "Parameters", "parameter": [{"name": "op", "part": []}]}),
                "Parameters.parameter[0].name",
            ),
            (json!({"resourceType": "Parameters", "parameter": [{"name": "operation"}]}), "Parameters.parameter[0]"),
            (op(vec![kind("upsert"), path("Patient")]), "Parameters.parameter[0].part[0]"),
            (op(vec![kind("delete")]), "Parameters.parameter[0]"),
            (op(vec![path("Patient.gender")]), "Parameters.parameter[0]"),
            (op(vec![kind("delete"), path("Patient.name.where(")]), "Parameters.parameter[0].part[1]"),
            (op(vec![kind("delete"), path("Patient.name.exists()")]), "Parameters.parameter[0].part[1]"),
            (
                op(vec![kind("delete"), path("Patient"), json!({"name": "colour", "valueString": "x"})]),
                "Parameters.parameter[0].part[2]",
            ),
            (op(vec![kind("delete"), path("Patient"), path("Patient")]), "Parameters.parameter[0].part[2]"),
            (op(vec![kind("delete"), json!({"name": "path", "valueInteger": 1})]), "Parameters.parameter[0].part[1]"),
            (op(vec![kind("delete"), json!({"valueString": "Patient"})]), "Parameters.parameter[0].part[1]"),
            (op(vec![kind("replace"), path("Patient.gender")]), "Parameters.parameter[0]"),
            (op(vec![kind("add"), path("Patient"), value("valueCode", json!("x"))]), "Parameters.parameter[0]"),
            (
                op(vec![kind("insert"), path("Patient.name"), value("valueString", json!("x"))]),
                "Parameters.parameter[0]",
            ),
            (
                op(vec![kind("insert"), path("Patient.name"), value("valueString", json!("x")), int("index", -1)]),
                "Parameters.parameter[0].part[3]",
            ),
            (op(vec![kind("move"), path("Patient.name"), int("source", 0)]), "Parameters.parameter[0]"),
            (
                op(vec![kind("replace"), path("Patient.gender"), json!({"name": "value"})]),
                "Parameters.parameter[0].part[2]",
            ),
            (
                op(vec![
                    kind("replace"),
                    path("Patient.gender"),
                    json!({"name": "value", "valueCode": "a", "valueString": "b"}),
                ]),
                "Parameters.parameter[0].part[2]",
            ),
            (
                op(vec![
                    kind("replace"),
                    path("Patient.gender"),
                    json!({"name": "value", "part": [{"valueString": "b"}]}),
                ]),
                "Parameters.parameter[0].part[2].part[0]",
            ),
        ];
        for (parameters, location) in cases {
            assert_eq!(malformed_at(fp_patch_err(patient(), parameters.clone())), location, "{parameters}");
        }
    }

    #[test]
    fn fhirpath_malformed_reported_before_any_op_runs() {
        let parameters = params(vec![
            vec![kind("replace"), path("Patient.birthDate"), value("valueDate", json!("2000"))],
            vec![kind("explode"), path("Patient")],
        ]);
        assert_eq!(malformed_at(fp_patch_err(patient(), parameters)), "Parameters.parameter[1].part[0]");
    }

    #[test]
    fn fhirpath_empty_parameters_is_noop() {
        assert_eq!(fp_patch(patient(), json!({"resourceType": "Parameters"})), Ok(patient()));
    }

    #[test]
    fn error_display_is_the_message() {
        let err = PatchError::malformed("bad", "/0");
        assert_eq!(err.to_string(), "bad");
    }
}

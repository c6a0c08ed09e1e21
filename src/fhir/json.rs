//! Resource JSON kept losslessly (FHIR R4 json.html): members are held as the client's raw JSON
//! text, so decimals such as `1.50` and member order survive a write and a read unchanged.

use indexmap::IndexMap;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;

use crate::error::{FhirError, Issue, IssueType};

/// A resource as received: `resourceType`, the client's `id` and `meta`, and every other member
/// as raw JSON text in its original order.
#[derive(Debug, Clone)]
pub struct ResourceBody {
    pub resource_type: String,
    pub id: Option<String>,
    meta: Option<Map<String, Value>>,
    members: Vec<(String, Box<RawValue>)>,
}

/// Parses a request body into the typed tree used for validation and the lossless body that is
/// stored. Syntax errors and duplicate member names are refused here.
pub fn parse_resource(bytes: &[u8]) -> Result<(ResourceBody, Value), FhirError> {
    let value = parse_strict(bytes)?;
    resource_from_parsed(bytes, value)
}

/// [`parse_resource`] for bytes already parsed strictly into `value` (e.g. as part of a
/// Bundle): only the raw members are read from `bytes`.
pub fn resource_from_parsed(bytes: &[u8], value: Value) -> Result<(ResourceBody, Value), FhirError> {
    let Value::Object(object) = &value else {
        return Err(FhirError::bad_request(IssueType::Structure, "the body must be a JSON object (a FHIR resource)"));
    };
    let resource_type = match object.get("resourceType") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => {
            return Err(FhirError::BadRequest(vec![
                Issue::error(IssueType::Structure, "resourceType must be a string").at("resourceType"),
            ]));
        }
        None => {
            return Err(FhirError::BadRequest(vec![
                Issue::error(IssueType::Required, "the resource has no resourceType").at("resourceType"),
            ]));
        }
    };
    let raw: IndexMap<String, Box<RawValue>> = serde_json::from_slice(bytes).map_err(|e| syntax_error(&e))?;
    let id = match object.get("id") {
        Some(Value::String(id)) => Some(id.clone()),
        _ => None,
    };
    let meta = match object.get("meta") {
        Some(Value::Object(meta)) => Some(meta.clone()),
        _ => None,
    };
    let members = raw.into_iter().filter(|(k, _)| !matches!(k.as_str(), "resourceType" | "id" | "meta")).collect();
    Ok((ResourceBody { resource_type, id, meta, members }, value))
}

impl ResourceBody {
    /// Builds a body from stored JSON (already validated), e.g. to re-render a subset.
    pub fn from_stored(bytes: &[u8]) -> Result<(ResourceBody, Value), FhirError> {
        parse_resource(bytes).map_err(|_| FhirError::internal("stored resource is not valid JSON"))
    }

    pub fn meta(&self) -> Option<&Map<String, Value>> {
        self.meta.as_ref()
    }

    pub fn set_meta(&mut self, meta: Option<Map<String, Value>>) {
        self.meta = meta;
    }

    pub fn members(&self) -> impl Iterator<Item = (&str, &RawValue)> {
        self.members.iter().map(|(k, v)| (k.as_str(), v.as_ref()))
    }

    /// Sets one member (replacing it in place, or appending it), leaving every other member's
    /// bytes untouched.
    pub fn set_member(&mut self, name: &str, value: &Value) {
        let raw = serde_json::value::to_raw_value(value).expect("a JSON value serialises");
        match self.members.iter_mut().find(|(k, _)| k == name) {
            Some((_, existing)) => *existing = raw,
            None => self.members.push((name.to_string(), raw)),
        }
    }

    /// Replaces every `Reference.reference` (at any depth: extensions and contained resources
    /// included) that `replacements` maps, leaving every other byte as received.
    pub fn rewrite_references(&mut self, replacements: &HashMap<String, String>) {
        for (_, member) in &mut self.members {
            if let Some(rewritten) = rewrite_raw(member, replacements) {
                *member = rewritten;
            }
        }
    }

    /// Takes back `original`'s exact bytes for every member whose value did not change, so a
    /// rewrite from a typed tree (a PATCH) keeps e.g. `1.50` wherever it did not touch it.
    pub fn restore_unchanged(&mut self, original: &ResourceBody, original_value: &Value, value: &Value) {
        for (name, raw) in &mut self.members {
            if original_value.get(name.as_str()) == value.get(name.as_str())
                && let Some((_, original_raw)) = original.members.iter().find(|(k, _)| k == name)
            {
                *raw = original_raw.clone();
            }
        }
    }

    /// Keeps only the members for which `keep` answers true.
    pub fn retain_members(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.members.retain(|(k, _)| keep(k));
    }

    /// The stored form: `resourceType`, then the server's `id` and `meta` (with `versionId` and
    /// `lastUpdated`), then the client's members byte for byte.
    pub fn render(&self, id: &str, version: i64, last_updated: &str) -> Vec<u8> {
        let mut meta = Map::new();
        meta.insert("versionId".into(), Value::String(version.to_string()));
        meta.insert("lastUpdated".into(), Value::String(last_updated.to_string()));
        if let Some(client_meta) = &self.meta {
            for (k, v) in client_meta {
                if k != "versionId" && k != "lastUpdated" {
                    meta.insert(k.clone(), v.clone());
                }
            }
        }
        self.render_with_meta(Some(id), &meta)
    }

    /// Renders with the given `meta` as is (used when re-rendering a stored resource).
    pub fn render_with_meta(&self, id: Option<&str>, meta: &Map<String, Value>) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(256 + self.members.iter().map(|(k, v)| k.len() + v.get().len() + 4).sum::<usize>());
        out.extend_from_slice(b"{\"resourceType\":");
        serde_json::to_writer(&mut out, &self.resource_type).expect("string serialises");
        if let Some(id) = id {
            out.extend_from_slice(b",\"id\":");
            serde_json::to_writer(&mut out, id).expect("string serialises");
        }
        if !meta.is_empty() {
            out.extend_from_slice(b",\"meta\":");
            serde_json::to_writer(&mut out, meta).expect("meta serialises");
        }
        for (key, value) in &self.members {
            out.push(b',');
            serde_json::to_writer(&mut out, key).expect("string serialises");
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        }
        out.push(b'}');
        out
    }
}

/// Every `reference` string in the tree (Reference.reference at any depth).
pub fn references(value: &Value) -> Vec<&str> {
    fn walk<'v>(value: &'v Value, found: &mut Vec<&'v str>) {
        match value {
            Value::Object(object) => {
                for (key, member) in object {
                    match (key.as_str(), member) {
                        ("reference", Value::String(reference)) => found.push(reference),
                        _ => walk(member, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(value, &mut found);
    found
}

/// Hands every `reference` string in the tree (Reference.reference at any depth) to `visit`,
/// which may change it.
pub fn visit_references_mut(value: &mut Value, visit: &mut impl FnMut(&mut String)) {
    match value {
        Value::Object(object) => {
            for (key, member) in object.iter_mut() {
                match member {
                    Value::String(reference) if key == "reference" => visit(reference),
                    other => visit_references_mut(other, visit),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| visit_references_mut(item, visit)),
        _ => {}
    }
}

/// [`ResourceBody::rewrite_references`] on the typed tree.
pub fn rewrite_references(value: &mut Value, replacements: &HashMap<String, String>) {
    visit_references_mut(value, &mut |reference| {
        if let Some(new) = replacements.get(reference.as_str()) {
            *reference = new.clone();
        }
    });
}

/// The raw JSON with mapped references replaced, or `None` when nothing changed. Objects and
/// arrays are taken apart one level at a time as raw text, so numbers and other members keep
/// their exact bytes.
fn rewrite_raw(raw: &RawValue, replacements: &HashMap<String, String>) -> Option<Box<RawValue>> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'{') => {
            let mut object: IndexMap<String, Box<RawValue>> = serde_json::from_str(text).ok()?;
            let mut changed = false;
            for (key, member) in object.iter_mut() {
                let replacement = if key == "reference" {
                    serde_json::from_str::<String>(member.get())
                        .ok()
                        .and_then(|reference| replacements.get(&reference))
                        .map(|new| serde_json::value::to_raw_value(new).expect("a string serialises"))
                } else {
                    rewrite_raw(member, replacements)
                };
                if let Some(new) = replacement {
                    *member = new;
                    changed = true;
                }
            }
            changed.then(|| serde_json::value::to_raw_value(&object).expect("raw members serialise"))
        }
        Some(b'[') => {
            let mut items: Vec<Box<RawValue>> = serde_json::from_str(text).ok()?;
            let mut changed = false;
            for item in items.iter_mut() {
                if let Some(new) = rewrite_raw(item, replacements) {
                    *item = new;
                    changed = true;
                }
            }
            changed.then(|| serde_json::value::to_raw_value(&items).expect("raw items serialise"))
        }
        _ => None,
    }
}

fn syntax_error(err: &serde_json::Error) -> FhirError {
    FhirError::bad_request(
        IssueType::Structure,
        format!("the body is not valid JSON: {err} (line {}, column {})", err.line(), err.column()),
    )
}

/// Parses JSON into a `Value`, refusing duplicate member names anywhere (a plain parse would keep
/// the last one silently and so lose data).
pub fn parse_strict(bytes: &[u8]) -> Result<Value, FhirError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut deserializer).map_err(|e| syntax_error(&e))?;
    deserializer.end().map_err(|e| syntax_error(&e))?;
    Ok(value)
}

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate member \"{key}\"")));
            }
            let value = map.next_value_seed(StrictValue)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_rewritten_at_any_depth_and_nothing_else_moves() {
        let input = br#"{"resourceType":"Observation","subject":{"reference":"urn:uuid:a"},"valueQuantity":{"value":1.50},"extension":[{"url":"x","valueReference":{"reference":"urn:uuid:a"}}],"contained":[{"resourceType":"Provenance","target":[{"reference":"urn:uuid:b"}]}],"note":[{"text":"urn:uuid:a"}]}"#;
        let (mut body, mut value) = parse_resource(input).unwrap();
        assert_eq!(references(&value), vec!["urn:uuid:a", "urn:uuid:a", "urn:uuid:b"]);
        let replacements: HashMap<String, String> =
            [("urn:uuid:a".to_string(), "Patient/1".to_string()), ("urn:uuid:b".into(), "Device/2".into())].into();
        body.rewrite_references(&replacements);
        rewrite_references(&mut value, &replacements);
        let out = String::from_utf8(body.render_with_meta(None, &Map::new())).unwrap();
        assert_eq!(
            out,
            r#"{"resourceType":"Observation","subject":{"reference":"Patient/1"},"valueQuantity":{"value":1.50},"extension":[{"url":"x","valueReference":{"reference":"Patient/1"}}],"contained":[{"resourceType":"Provenance","target":[{"reference":"Device/2"}]}],"note":[{"text":"urn:uuid:a"}]}"#
        );
        assert_eq!(references(&value), vec!["Patient/1", "Patient/1", "Device/2"]);
    }

    #[test]
    fn decimals_and_order_survive_rendering() {
        let input = br#"{"resourceType":"Observation","id":"client","status":"final","valueQuantity":{"value":1.50,"unit":"mg"},"code":{"text":"x"}}"#;
        let (body, _) = parse_resource(input).unwrap();
        let out = String::from_utf8(body.render("abc", 2, "2024-01-01T00:00:00.000000Z")).unwrap();
        assert_eq!(
            out,
            r#"{"resourceType":"Observation","id":"abc","meta":{"versionId":"2","lastUpdated":"2024-01-01T00:00:00.000000Z"},"status":"final","valueQuantity":{"value":1.50,"unit":"mg"},"code":{"text":"x"}}"#
        );
    }

    #[test]
    fn client_meta_is_kept_but_version_replaced() {
        let input = br#"{"resourceType":"Patient","meta":{"versionId":"9","tag":[{"code":"t"}]}}"#;
        let (body, _) = parse_resource(input).unwrap();
        let out: Value = serde_json::from_slice(&body.render("p", 1, "x")).unwrap();
        assert_eq!(out["meta"]["versionId"], "1");
        assert_eq!(out["meta"]["tag"][0]["code"], "t");
    }

    #[test]
    fn setting_a_member_keeps_the_others_exact() {
        let (mut body, _) =
            parse_resource(br#"{"resourceType":"Patient","a":1.50,"identifier":[{"value":"x"}]}"#).unwrap();
        body.set_member("identifier", &serde_json::json!([{"value": "x"}, {"value": "y"}]));
        body.set_member("active", &Value::Bool(true));
        let out = String::from_utf8(body.render_with_meta(Some("p"), &Map::new())).unwrap();
        assert_eq!(
            out,
            r#"{"resourceType":"Patient","id":"p","a":1.50,"identifier":[{"value":"x"},{"value":"y"}],"active":true}"#
        );
    }

    #[test]
    fn duplicate_members_are_refused() {
        let err = parse_resource(br#"{"resourceType":"Patient","gender":"male","gender":"female"}"#).unwrap_err();
        let issues = err.issues();
        assert!(issues[0].diagnostics.contains("duplicate member \"gender\""), "{issues:?}");
    }

    #[test]
    fn syntax_errors_say_where() {
        let err = parse_resource(b"{\"resourceType\":\"Patient\",\n \"x\": }").unwrap_err();
        assert!(matches!(err, FhirError::BadRequest(_)));
        assert!(err.issues()[0].diagnostics.contains("line 2"));
    }

    #[test]
    fn non_objects_and_missing_type_are_refused() {
        assert!(parse_resource(b"[1,2]").is_err());
        assert!(parse_resource(br#"{"id":"x"}"#).is_err());
        assert!(parse_resource(br#"{"resourceType":5}"#).is_err());
    }
}

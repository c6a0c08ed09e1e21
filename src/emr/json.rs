//! Small helpers to read FHIR JSON with precise error paths and to edit it surgically.
//!
//! Every writer here compares before it writes, so writing a value that is already there leaves
//! the JSON untouched (same number spelling, same key order, same sibling elements). That is
//! what lets `to_fhir(from_fhir(r)) == r` hold.

use serde_json::{Map, Value};

use super::error::MappingError;

pub(crate) type Object = Map<String, Value>;

// ---------------------------------------------------------------------------------------------
// Reading, strict: a present element of the wrong JSON type is a MappingError.

pub(crate) fn as_object<'a>(value: &'a Value, at: &str) -> Result<&'a Object, MappingError> {
    value.as_object().ok_or_else(|| MappingError::invalid(at, "expected a JSON object"))
}

pub(crate) fn opt_object<'a>(obj: &'a Object, key: &str, at: &str) -> Result<Option<&'a Object>, MappingError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_object(v, &format!("{at}.{key}")).map(Some),
    }
}

pub(crate) fn opt_string(obj: &Object, key: &str, at: &str) -> Result<Option<String>, MappingError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(MappingError::invalid(format!("{at}.{key}"), "expected a string")),
    }
}

pub(crate) fn opt_bool(obj: &Object, key: &str, at: &str) -> Result<Option<bool>, MappingError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(MappingError::invalid(format!("{at}.{key}"), "expected true or false")),
    }
}

pub(crate) fn opt_f64(obj: &Object, key: &str, at: &str) -> Result<Option<f64>, MappingError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(MappingError::invalid(format!("{at}.{key}"), "expected a number")),
    }
}

pub(crate) fn opt_u32(obj: &Object, key: &str, at: &str) -> Result<Option<u32>, MappingError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| MappingError::invalid(format!("{at}.{key}"), "expected a non-negative integer")),
    }
}

pub(crate) fn list<'a>(obj: &'a Object, key: &str, at: &str) -> Result<&'a [Value], MappingError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(MappingError::invalid(format!("{at}.{key}"), "expected an array")),
    }
}

/// The strings of a string array (`HumanName.given`, `Address.line`); `null` slots are skipped
/// because they only hold a place for a `_given` extension.
pub(crate) fn string_list(obj: &Object, key: &str, at: &str) -> Result<Vec<String>, MappingError> {
    list(obj, key, at)?
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_null())
        .map(|(i, v)| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| MappingError::invalid(format!("{at}.{key}[{i}]"), "expected a string"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Reading, lenient: for selectors and rules, where a malformed element just does not match.

pub(crate) fn str_of<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

pub(crate) fn items<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// The code of the first coding of `concept` in `system`.
pub(crate) fn coding_code<'a>(concept: &'a Value, system: &str) -> Option<&'a str> {
    items(concept, "coding").iter().find(|c| str_of(c, "system") == Some(system)).and_then(|c| str_of(c, "code"))
}

pub(crate) fn has_coding(concept: &Value, system: &str, code: &str) -> bool {
    items(concept, "coding").iter().any(|c| str_of(c, "system") == Some(system) && str_of(c, "code") == Some(code))
}

/// What a person would read for a CodeableConcept: its text, else the first coding's display,
/// else the first coding's code.
pub(crate) fn concept_label(concept: &Value) -> Option<String> {
    if let Some(text) = str_of(concept, "text") {
        return Some(text.to_owned());
    }
    let first = items(concept, "coding").first()?;
    str_of(first, "display").or_else(|| str_of(first, "code")).map(str::to_owned)
}

pub(crate) fn reference_of(value: &Value) -> Option<String> {
    str_of(value, "reference").map(str::to_owned)
}

/// The first extension of `obj` with this URL.
pub(crate) fn extension<'a>(obj: &'a Object, url: &str) -> Option<&'a Value> {
    obj.get("extension").and_then(Value::as_array)?.iter().find(|e| str_of(e, "url") == Some(url))
}

// ---------------------------------------------------------------------------------------------
// Building.

/// A JSON number that keeps integers integral (`72`, not `72.0`).
pub(crate) fn number(x: f64) -> Value {
    const EXACT_INTEGER_LIMIT: f64 = 9.0e15;
    if x.fract() == 0.0 && x.abs() < EXACT_INTEGER_LIMIT {
        Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x).map(Value::Number).unwrap_or(Value::Null)
    }
}

pub(crate) fn coding(system: &str, code: &str, display: Option<&str>) -> Value {
    let mut c = Object::new();
    c.insert("system".into(), system.into());
    c.insert("code".into(), code.into());
    if let Some(display) = display {
        c.insert("display".into(), display.into());
    }
    Value::Object(c)
}

pub(crate) fn coded(system: &str, code: &str, display: Option<&str>) -> Value {
    let mut cc = Object::new();
    cc.insert("coding".into(), Value::Array(vec![coding(system, code, display)]));
    Value::Object(cc)
}

pub(crate) fn coded_with_text(system: &str, code: &str, display: Option<&str>, text: &str) -> Value {
    let mut cc = coded(system, code, display);
    object_mut(&mut cc).insert("text".into(), text.into());
    cc
}

pub(crate) fn text_concept(text: &str) -> Value {
    let mut cc = Object::new();
    cc.insert("text".into(), text.into());
    Value::Object(cc)
}

pub(crate) fn reference(target: &str) -> Value {
    let mut r = Object::new();
    r.insert("reference".into(), target.into());
    Value::Object(r)
}

pub(crate) fn object(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

// ---------------------------------------------------------------------------------------------
// Writing, surgical.

/// Makes `value` an object (replacing anything else) and returns it.
pub(crate) fn object_mut(value: &mut Value) -> &mut Object {
    if !value.is_object() {
        *value = Value::Object(Object::new());
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("just made an object"),
    }
}

/// `obj[key]` as an object, created when absent.
pub(crate) fn child<'a>(obj: &'a mut Object, key: &str) -> &'a mut Object {
    object_mut(obj.entry(key).or_insert_with(|| Value::Object(Object::new())))
}

/// `obj[key]` as an array, created when absent.
pub(crate) fn child_list<'a>(obj: &'a mut Object, key: &str) -> &'a mut Vec<Value> {
    let slot = obj.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    match slot {
        Value::Array(items) => items,
        _ => unreachable!("just made an array"),
    }
}

pub(crate) fn remove(obj: &mut Object, key: &str) {
    obj.shift_remove(key);
}

/// Removes `obj[key]` when it has become empty: FHIR allows no empty objects or arrays.
pub(crate) fn tidy(obj: &mut Object, key: &str) {
    let empty = match obj.get(key) {
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(Value::Null) => true,
        _ => false,
    };
    if empty {
        remove(obj, key);
    }
}

pub(crate) fn put(obj: &mut Object, key: &str, value: Value) {
    if obj.get(key) != Some(&value) {
        obj.insert(key.to_owned(), value);
    }
}

pub(crate) fn put_opt(obj: &mut Object, key: &str, value: Option<Value>) {
    match value {
        Some(v) => put(obj, key, v),
        None => remove(obj, key),
    }
}

pub(crate) fn put_str(obj: &mut Object, key: &str, value: Option<&str>) {
    put_opt(obj, key, value.map(Value::from));
}

pub(crate) fn put_bool(obj: &mut Object, key: &str, value: Option<bool>) {
    put_opt(obj, key, value.map(Value::from));
}

/// Keeps the existing number when it is numerically equal (`7.0` stays `7.0`).
pub(crate) fn put_number(obj: &mut Object, key: &str, value: Option<f64>) {
    match value {
        Some(x) if obj.get(key).and_then(Value::as_f64) == Some(x) => {}
        Some(x) => {
            obj.insert(key.to_owned(), number(x));
        }
        None => remove(obj, key),
    }
}

pub(crate) fn put_u32(obj: &mut Object, key: &str, value: Option<u32>) {
    put_opt(obj, key, value.map(Value::from));
}

/// Sets a string array (`given`, `line`) unless it already reads the same.
pub(crate) fn put_strings(obj: &mut Object, key: &str, values: &[String]) {
    let unchanged = obj
        .get(key)
        .and_then(Value::as_array)
        .is_some_and(|current| current.iter().filter_map(Value::as_str).eq(values.iter().map(String::as_str)));
    if !unchanged {
        if values.is_empty() {
            remove(obj, key);
        } else {
            obj.insert(key.to_owned(), values.iter().cloned().map(Value::from).collect());
        }
    }
}

/// Sets a CodeableConcept to plain text unless it already reads as that text.
pub(crate) fn put_concept_text(obj: &mut Object, key: &str, text: Option<&str>) {
    match text {
        Some(t) if obj.get(key).and_then(concept_label).as_deref() == Some(t) => {}
        Some(t) => {
            obj.insert(key.to_owned(), text_concept(t));
        }
        None => remove(obj, key),
    }
}

/// Sets a Reference unless it already points there (keeping its display and extensions).
pub(crate) fn put_reference(obj: &mut Object, key: &str, target: Option<&str>) {
    match target {
        Some(t) if obj.get(key).and_then(|r| str_of(r, "reference")) == Some(t) => {}
        Some(t) => {
            obj.insert(key.to_owned(), reference(t));
        }
        None => remove(obj, key),
    }
}

/// Sets the value (`value_key` such as `valueCode`) of the first extension with `url`, adding it
/// when absent; `None` removes every extension with that URL.
pub(crate) fn put_extension(obj: &mut Object, url: &str, value: Option<(&str, Value)>) {
    let Some((value_key, value)) = value else {
        if let Some(Value::Array(exts)) = obj.get_mut("extension") {
            exts.retain(|e| str_of(e, "url") != Some(url));
        }
        tidy(obj, "extension");
        return;
    };
    let exts = child_list(obj, "extension");
    match exts.iter_mut().find(|e| str_of(e, "url") == Some(url)) {
        Some(ext) => {
            let ext = object_mut(ext);
            if ext.get(value_key) != Some(&value) {
                ext.retain(|k, _| !k.starts_with("value"));
                ext.insert(value_key.to_owned(), value);
            }
        }
        None => exts.push(object(vec![("url", url.into()), (value_key, value)])),
    }
}

/// Overlays a single model value onto one element of the array `obj[key]`: the first element
/// that `selects` and `prefers`, else the first that `selects`. `None` removes every selected
/// element, so that reading back also finds none.
pub(crate) fn overlay_one<T>(
    obj: &mut Object,
    key: &str,
    selects: impl Fn(&Value) -> bool,
    prefers: impl Fn(&Value) -> bool,
    wanted: Option<&T>,
    write: impl Fn(&mut Value, &T),
    create: impl Fn(&T) -> Value,
) {
    match wanted {
        Some(item) => {
            let elements = child_list(obj, key);
            let pick =
                elements.iter().position(|e| selects(e) && prefers(e)).or_else(|| elements.iter().position(&selects));
            match pick {
                Some(i) => write(&mut elements[i], item),
                None => elements.push(create(item)),
            }
        }
        None => {
            if let Some(Value::Array(elements)) = obj.get_mut(key) {
                elements.retain(|e| !selects(e));
            }
        }
    }
    tidy(obj, key);
}

/// The element `overlay_one` would pick.
pub(crate) fn pick_one(
    elements: &[Value],
    selects: impl Fn(&Value) -> bool,
    prefers: impl Fn(&Value) -> bool,
) -> Option<(usize, &Value)> {
    elements
        .iter()
        .enumerate()
        .find(|(_, e)| selects(e) && prefers(e))
        .or_else(|| elements.iter().enumerate().find(|(_, e)| selects(e)))
}

/// Overlays a model list onto the elements of `obj[key]` that `selects`, index by index:
/// unchanged elements are left alone, changed ones rewritten by `write`, extra model items
/// appended by `create`, surplus selected elements removed. Unselected elements stay put.
pub(crate) fn overlay_list<T>(
    obj: &mut Object,
    key: &str,
    selects: impl Fn(&Value) -> bool,
    wanted: &[T],
    same: impl Fn(&Value, &T) -> bool,
    write: impl Fn(&mut Value, &T),
    create: impl Fn(&T) -> Value,
) {
    let elements = child_list(obj, key);
    let positions: Vec<usize> = elements.iter().enumerate().filter(|(_, e)| selects(e)).map(|(i, _)| i).collect();
    for (&i, item) in positions.iter().zip(wanted) {
        if !same(&elements[i], item) {
            write(&mut elements[i], item);
        }
    }
    for item in wanted.iter().skip(positions.len()) {
        elements.push(create(item));
    }
    for &i in positions.iter().skip(wanted.len()).rev() {
        elements.remove(i);
    }
    tidy(obj, key);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Object {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn number_keeps_integers_integral() {
        assert_eq!(number(72.0), json!(72));
        assert_eq!(number(37.25), json!(37.25));
    }

    #[test]
    fn put_number_keeps_an_equal_spelling() {
        let mut o = obj(json!({"value": 7.0}));
        put_number(&mut o, "value", Some(7.0));
        assert!(o["value"].is_f64());
        put_number(&mut o, "value", Some(8.5));
        assert_eq!(o["value"], json!(8.5));
    }

    #[test]
    fn put_concept_text_keeps_a_coded_concept_that_reads_the_same() {
        let cc = json!({"coding": [{"system": "s", "code": "c", "display": "Asthma"}]});
        let mut o = obj(json!({"code": cc.clone()}));
        put_concept_text(&mut o, "code", Some("Asthma"));
        assert_eq!(o["code"], cc);
        put_concept_text(&mut o, "code", Some("Gout"));
        assert_eq!(o["code"], json!({"text": "Gout"}));
    }

    #[test]
    fn overlay_one_prefers_then_falls_back_and_none_removes_all_selected() {
        let mut o = obj(json!({"telecom": [
            {"system": "email", "value": "a@b.c"},
            {"system": "phone", "value": "1", "use": "work"},
            {"system": "phone", "value": "2", "use": "home"}
        ]}));
        let is_phone = |e: &Value| str_of(e, "system") == Some("phone");
        let home = |e: &Value| str_of(e, "use") == Some("home");
        let write = |e: &mut Value, v: &&str| put_str(object_mut(e), "value", Some(v));
        let create = |v: &&str| json!({"system": "phone", "value": v});
        overlay_one(&mut o, "telecom", is_phone, home, Some(&"3"), write, create);
        assert_eq!(o["telecom"][2], json!({"system": "phone", "value": "3", "use": "home"}));
        overlay_one(&mut o, "telecom", is_phone, home, None, write, create);
        assert_eq!(o["telecom"], json!([{"system": "email", "value": "a@b.c"}]));
    }

    #[test]
    fn overlay_list_rewrites_only_changed_selected_elements() {
        let mut o = obj(json!({"extension": [
            {"url": "x", "valueString": "keep"},
            {"url": "s", "valueString": "a", "id": "1"},
            {"url": "s", "valueString": "b"},
            {"url": "s", "valueString": "c"}
        ]}));
        let sel = |e: &Value| str_of(e, "url") == Some("s");
        let same = |e: &Value, v: &&str| str_of(e, "valueString") == Some(v);
        let write = |e: &mut Value, v: &&str| put_str(object_mut(e), "valueString", Some(v));
        let create = |v: &&str| json!({"url": "s", "valueString": v});
        overlay_list(&mut o, "extension", sel, &["a", "z"], same, write, create);
        assert_eq!(
            Value::Array(o["extension"].as_array().unwrap().clone()),
            json!([
                {"url": "x", "valueString": "keep"},
                {"url": "s", "valueString": "a", "id": "1"},
                {"url": "s", "valueString": "z"}
            ])
        );
        overlay_list(&mut o, "extension", sel, &["a", "z", "n"], same, write, create);
        assert_eq!(o["extension"][3], json!({"url": "s", "valueString": "n"}));
    }

    #[test]
    fn put_extension_replaces_value_and_removes() {
        let mut o = obj(json!({"extension": [{"url": "u", "valueCode": "a"}]}));
        put_extension(&mut o, "u", Some(("valueCode", json!("b"))));
        assert_eq!(o["extension"], json!([{"url": "u", "valueCode": "b"}]));
        put_extension(&mut o, "u", None);
        assert!(!o.contains_key("extension"));
    }

    #[test]
    fn strict_readers_name_the_bad_element() {
        let o = obj(json!({"active": "yes"}));
        let err = opt_bool(&o, "active", "Patient").unwrap_err();
        assert_eq!(err.expression(), Some("Patient.active"));
    }
}

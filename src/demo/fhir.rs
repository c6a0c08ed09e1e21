//! Small builders for the FHIR R4 JSON datatypes the demo generator emits (Coding, CodeableConcept,
//! Reference, Quantity, Period, decimals), so that resources are written the same way everywhere.

use serde_json::{Value, json};

use super::data::SYS_UCUM;

pub(crate) fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"system": system, "code": code, "display": display})
}

/// A CodeableConcept with one coding.
pub(crate) fn concept(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [coding(system, code, display)]})
}

/// A CodeableConcept with one coding and a text.
pub(crate) fn concept_text(system: &str, code: &str, display: &str, text: &str) -> Value {
    json!({"coding": [coding(system, code, display)], "text": text})
}

pub(crate) fn reference(resource_type: &str, id: &str) -> Value {
    json!({"reference": format!("{resource_type}/{id}")})
}

pub(crate) fn reference_display(resource_type: &str, id: &str, display: &str) -> Value {
    json!({"reference": format!("{resource_type}/{id}"), "display": display})
}

/// `x` rounded to `places` decimals, as a JSON number (an integer when `places` is 0).
pub(crate) fn decimal(x: f64, places: u32) -> Value {
    if places == 0 {
        json!(x.round() as i64)
    } else {
        let f = f64::from(10u32.pow(places));
        json!((x * f).round() / f)
    }
}

/// `x` rounded to `places` decimals, as an f64.
pub(crate) fn round_to(x: f64, places: u32) -> f64 {
    let f = f64::from(10u32.pow(places));
    (x * f).round() / f
}

/// A UCUM Quantity.
pub(crate) fn quantity(value: Value, unit: &str, ucum: &str) -> Value {
    json!({"value": value, "unit": unit, "system": SYS_UCUM, "code": ucum})
}

pub(crate) fn period(start: String, end: Option<String>) -> Value {
    match end {
        Some(end) => json!({"start": start, "end": end}),
        None => json!({"start": start}),
    }
}

/// Adds `key: value` to a JSON object.
pub(crate) fn put(object: &mut Value, key: &str, value: Value) {
    if let Value::Object(map) = object {
        map.insert(key.to_owned(), value);
    }
}

/// The `Type/id` of a resource.
pub(crate) fn type_and_id(resource: &Value) -> (&str, &str) {
    (
        resource.get("resourceType").and_then(Value::as_str).unwrap_or(""),
        resource.get("id").and_then(Value::as_str).unwrap_or(""),
    )
}

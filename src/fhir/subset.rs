//! `_summary` and `_elements`: returning part of a resource, marked with the `SUBSETTED` tag
//! (FHIR R4 search.html#summary, search.html#elements).

use serde_json::{Map, Value, json};

use super::json::ResourceBody;
use super::registry::ResourceType;
use crate::error::{FhirError, IssueType};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Summary {
    True,
    Text,
    Data,
    Count,
    False,
}

impl Summary {
    pub fn parse(value: &str) -> Result<Summary, FhirError> {
        Ok(match value {
            "true" => Summary::True,
            "text" => Summary::Text,
            "data" => Summary::Data,
            "count" => Summary::Count,
            "false" => Summary::False,
            other => {
                return Err(FhirError::bad_request(
                    IssueType::Value,
                    format!("_summary must be one of true, text, data, count, false; found '{other}'"),
                ));
            }
        })
    }
}

/// What part of each resource a response carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Subset {
    #[default]
    Full,
    Summary(Summary),
    Elements(Vec<String>),
}

impl Subset {
    pub fn is_full(&self) -> bool {
        matches!(self, Subset::Full | Subset::Summary(Summary::False))
    }

    /// Applies the subset to stored resource JSON; the full form is handed back untouched
    /// (the read hot path: no parse, no copy).
    pub fn apply(&self, definition: &ResourceType, stored: Vec<u8>) -> Result<Vec<u8>, FhirError> {
        if self.is_full() {
            return Ok(stored);
        }
        let (mut body, _) = ResourceBody::from_stored(&stored)?;
        let mandatory = |member: &str| definition.structure.lookup(member).is_some_and(|(e, _)| e.min > 0);
        match self {
            Subset::Summary(Summary::True) | Subset::Summary(Summary::Count) => {
                body.retain_members(|m| definition.is_summary_member(m) || mandatory(m))
            }
            Subset::Summary(Summary::Text) => body.retain_members(|m| m == "text" || mandatory(m)),
            Subset::Summary(Summary::Data) => body.retain_members(|m| m != "text"),
            Subset::Elements(names) => {
                body.retain_members(|m| mandatory(m) || names.iter().any(|n| n == m.trim_start_matches('_')))
            }
            Subset::Full | Subset::Summary(Summary::False) => {}
        }
        let mut meta = body.meta().cloned().unwrap_or_default();
        add_subsetted_tag(&mut meta);
        Ok(body.render_with_meta(stored_id(&stored).as_deref(), &meta))
    }
}

fn stored_id(stored: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<String>,
    }
    serde_json::from_slice::<IdOnly>(stored).ok().and_then(|r| r.id)
}

fn add_subsetted_tag(meta: &mut Map<String, Value>) {
    let tag = json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED", "display": "Resource encoded in summary mode"});
    match meta.get_mut("tag") {
        Some(Value::Array(tags)) => tags.push(tag),
        _ => {
            meta.insert("tag".into(), Value::Array(vec![tag]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::registry::Registry;

    const PATIENT: &[u8] = br#"{"resourceType":"Patient","id":"p","meta":{"versionId":"1","lastUpdated":"2024-01-01T00:00:00Z"},"text":{"status":"generated","div":"<div>x</div>"},"name":[{"family":"Doe"}],"photo":[{"contentType":"image/png"}],"gender":"male"}"#;

    fn apply(subset: Subset) -> Value {
        let patient = Registry::global().resource("Patient").unwrap();
        serde_json::from_slice(&subset.apply(patient, PATIENT.to_vec()).unwrap()).unwrap()
    }

    #[test]
    fn summary_keeps_summary_elements_and_tags() {
        let out = apply(Subset::Summary(Summary::True));
        assert_eq!(out["id"], "p");
        assert!(out.get("name").is_some());
        assert!(out.get("photo").is_none(), "photo is not a summary element");
        assert!(out.get("text").is_none());
        assert_eq!(out["meta"]["tag"][0]["code"], "SUBSETTED");
        assert_eq!(out["meta"]["versionId"], "1");
    }

    #[test]
    fn data_drops_text_and_elements_selects() {
        let out = apply(Subset::Summary(Summary::Data));
        assert!(out.get("text").is_none() && out.get("photo").is_some());
        let out = apply(Subset::Elements(vec!["gender".into()]));
        assert_eq!(out["gender"], "male");
        assert!(out.get("name").is_none());
    }

    #[test]
    fn full_is_untouched() {
        let patient = Registry::global().resource("Patient").unwrap();
        assert_eq!(Subset::Full.apply(patient, PATIENT.to_vec()).unwrap(), PATIENT);
    }
}

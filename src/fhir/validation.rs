//! Structural validation of a resource against its R4 definition (FHIR R4 validation.html,
//! json.html): unknown elements, JSON types, cardinality, primitive formats, required bindings,
//! choice types, contained resources, extensions and reference target types.
//!
//! Problems that make the body unreadable as FHIR (wrong JSON types, unknown elements) are
//! `400 Bad Request`; readable but invalid content (cardinality, formats, codes) is `422`.

use serde_json::{Map, Value};

use super::primitives::{self, PrimitiveError};
use super::registry::{ElementDef, MaxCardinality, Registry, Structure};
use crate::error::{FhirError, Issue, IssueType};

/// Validates `resource` (a JSON object with `resourceType`) and reports every problem found.
pub fn validate(registry: &Registry, resource: &Value) -> Result<(), FhirError> {
    check(registry, resource, false)
}

/// Validates a resource of any R4 type, served or not (e.g. the Bundle of a transaction).
pub fn validate_any_type(registry: &Registry, resource: &Value) -> Result<(), FhirError> {
    check(registry, resource, true)
}

fn check(registry: &Registry, resource: &Value, any_type: bool) -> Result<(), FhirError> {
    let mut walker = Walker { registry, path: Vec::new(), malformed: Vec::new(), invalid: Vec::new(), any_type };
    walker.resource(resource, false);
    if !walker.malformed.is_empty() {
        walker.malformed.extend(walker.invalid);
        Err(FhirError::BadRequest(walker.malformed))
    } else if !walker.invalid.is_empty() {
        Err(FhirError::Unprocessable(walker.invalid))
    } else {
        Ok(())
    }
}

enum Segment<'v> {
    Name(&'v str),
    Index(usize),
}

struct Walker<'v> {
    registry: &'v Registry,
    path: Vec<Segment<'v>>,
    malformed: Vec<Issue>,
    invalid: Vec<Issue>,
    /// The top-level resource may be of any R4 type, not only a served one.
    any_type: bool,
}

/// Issues are capped so that a hostile body cannot make the answer huge.
const MAX_ISSUES: usize = 100;

impl<'v> Walker<'v> {
    fn path_string(&self) -> String {
        let mut out = String::new();
        for segment in &self.path {
            match segment {
                Segment::Name(n) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(n);
                }
                Segment::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }

    fn malformed(&mut self, code: IssueType, message: impl Into<String>) {
        if self.malformed.len() < MAX_ISSUES {
            let issue = Issue::error(code, message).at(self.path_string());
            self.malformed.push(issue);
        }
    }

    fn invalid(&mut self, code: IssueType, message: impl Into<String>) {
        if self.invalid.len() < MAX_ISSUES {
            let issue = Issue::error(code, message).at(self.path_string());
            self.invalid.push(issue);
        }
    }

    fn resource(&mut self, value: &'v Value, contained: bool) {
        let Value::Object(object) = value else {
            self.malformed(IssueType::Structure, "a resource must be a JSON object");
            return;
        };
        let Some(type_name) = object.get("resourceType").and_then(Value::as_str) else {
            self.malformed(IssueType::Required, "the resource has no resourceType");
            return;
        };
        let registry = self.registry;
        let structure = if contained || self.any_type {
            registry.any_resource_structure(type_name)
        } else {
            registry.resource(type_name).map(|r| &r.structure)
        };
        let Some(structure) = structure else {
            let message = if contained {
                format!("'{type_name}' is not an R4 resource type")
            } else {
                format!("resource type {type_name} is not supported by this server")
            };
            self.invalid(IssueType::NotSupported, message);
            return;
        };
        if contained && object.contains_key("contained") {
            self.invalid(IssueType::Invariant, "a contained resource cannot itself contain resources (dom-2)");
        }
        // Inside `contained[0]` the path goes on from there, as FHIRPath writes it.
        if !contained {
            self.path.push(Segment::Name(type_name));
        }
        self.object(object, structure, true);
        if !contained {
            self.path.pop();
        }
    }

    fn object(&mut self, object: &'v Map<String, Value>, structure: &'v Structure, is_resource: bool) {
        let registry = self.registry;
        let mut choices_seen: Vec<&str> = Vec::new();
        for (member, value) in object {
            if is_resource && member == "resourceType" {
                continue;
            }
            self.path.push(Segment::Name(member));
            if let Some(base) = member.strip_prefix('_') {
                match structure.lookup(base) {
                    Some((element, chosen)) if self.is_primitive_element(element, chosen) => {
                        self.primitive_extension(value, element.max == MaxCardinality::Many, object.get(base));
                    }
                    _ => self.malformed(IssueType::Structure, format!("unknown element '{member}'")),
                }
                self.path.pop();
                continue;
            }
            let Some((element, chosen)) = structure.lookup(member) else {
                self.malformed(IssueType::Structure, format!("unknown element '{member}'"));
                self.path.pop();
                continue;
            };
            if element.is_choice() {
                if choices_seen.contains(&element.name.as_str()) {
                    self.invalid(IssueType::Structure, format!("only one type of {} may be given", element.name));
                }
                choices_seen.push(&element.name);
            }
            self.element(value, element, chosen, object, member);
            self.path.pop();
        }
        for element in structure.elements.values() {
            if element.min > 0 && !Self::is_present(object, element, structure) {
                self.path.push(Segment::Name(&element.name));
                self.invalid(
                    IssueType::Required,
                    format!("missing required element '{}' (minimum {})", element.name, element.min),
                );
                self.path.pop();
            }
        }
        let _ = registry;
    }

    fn is_present(object: &Map<String, Value>, element: &ElementDef, structure: &Structure) -> bool {
        if element.is_choice() {
            return object
                .keys()
                .any(|k| structure.lookup(k.trim_start_matches('_')).is_some_and(|(e, _)| std::ptr::eq(e, element)));
        }
        object.contains_key(&element.name) || object.contains_key(&format!("_{}", element.name))
    }

    fn is_primitive_element(&self, element: &ElementDef, chosen: Option<&str>) -> bool {
        let type_code = chosen.or(element.types.first().map(String::as_str));
        type_code.is_some_and(|t| self.registry.is_primitive(t))
    }

    /// `object` and `member` locate the value, for the `_member` sibling that may carry the
    /// extensions of array items whose value is null (looked up only when one is).
    fn element(
        &mut self,
        value: &'v Value,
        element: &'v ElementDef,
        chosen: Option<&'v str>,
        object: &'v Map<String, Value>,
        member: &str,
    ) {
        match (element.max, value) {
            (MaxCardinality::Zero, _) => {
                self.invalid(IssueType::Structure, format!("element '{}' is not allowed here (max 0)", element.name));
            }
            (MaxCardinality::Many, Value::Array(items)) => {
                if items.is_empty() {
                    self.invalid(IssueType::Structure, "arrays must not be empty; omit the element instead");
                }
                for (index, item) in items.iter().enumerate() {
                    self.path.push(Segment::Index(index));
                    let has_extension = item.is_null()
                        && object
                            .get(&format!("_{member}"))
                            .and_then(Value::as_array)
                            .and_then(|e| e.get(index))
                            .is_some_and(|e| !e.is_null());
                    if item.is_null() && has_extension {
                        // the value is absent and only its extension is given: allowed.
                    } else {
                        self.single(item, element, chosen);
                    }
                    self.path.pop();
                }
            }
            (MaxCardinality::Many, _) => {
                self.malformed(
                    IssueType::Structure,
                    format!("element '{}' repeats and must be a JSON array", element.name),
                );
            }
            (MaxCardinality::One, Value::Array(_)) => {
                self.malformed(
                    IssueType::Structure,
                    format!("element '{}' does not repeat and must not be an array", element.name),
                );
            }
            (MaxCardinality::One, item) => self.single(item, element, chosen),
        }
    }

    fn single(&mut self, value: &'v Value, element: &'v ElementDef, chosen: Option<&'v str>) {
        let registry = self.registry;
        if let Some(target) = &element.content_reference {
            match registry.element_at_path(target).and_then(|e| e.children.as_ref()) {
                Some(children) => self.complex(value, children),
                None => self.invalid(IssueType::Exception, format!("definition of {target} not found")),
            }
            return;
        }
        if let Some(children) = &element.children {
            self.complex(value, children);
            return;
        }
        let Some(type_code) = chosen.or(element.types.first().map(String::as_str)) else {
            return;
        };
        if registry.is_primitive(type_code) {
            match primitives::check(type_code, value) {
                Ok(()) => {}
                Err(PrimitiveError::WrongJsonType(expected)) => {
                    self.malformed(
                        IssueType::Structure,
                        format!("{type_code} value must be {expected}, found {}", json_type(value)),
                    );
                    return;
                }
                Err(PrimitiveError::BadFormat(message)) => {
                    self.invalid(IssueType::Value, message);
                    return;
                }
            }
            if type_code == "code"
                && let (Some(codes), Some(code)) = (&element.required_codes, value.as_str())
                && !codes.contains(code)
            {
                let value_set = element.value_set.as_deref().unwrap_or("its required value set");
                self.invalid(IssueType::CodeInvalid, format!("code '{code}' is not in {value_set}"));
            }
            return;
        }
        match type_code {
            "Resource" => self.resource(value, true),
            _ => match registry.datatype(type_code) {
                Some(structure) => {
                    self.complex(value, structure);
                    if type_code == "Reference" {
                        self.reference_target(value, element);
                    }
                    if type_code == "Extension" {
                        self.extension_shape(value);
                    }
                }
                None => self.invalid(IssueType::Exception, format!("no definition for type {type_code}")),
            },
        }
    }

    fn complex(&mut self, value: &'v Value, structure: &'v Structure) {
        match value {
            Value::Object(object) if object.is_empty() => {
                self.invalid(IssueType::Structure, "objects must not be empty; omit the element instead");
            }
            Value::Object(object) => self.object(object, structure, false),
            other => {
                self.malformed(IssueType::Structure, format!("expected a JSON object, found {}", json_type(other)))
            }
        }
    }

    /// `_birthDate: {"extension": [...]}` or, for repeating elements, an array of such or null.
    fn primitive_extension(&mut self, value: &'v Value, repeats: bool, primitive: Option<&Value>) {
        let Some(element_structure) = self.registry.datatype("Element") else { return };
        match (repeats, value) {
            (true, Value::Array(items)) => {
                if let Some(Value::Array(values)) = primitive
                    && values.len() != items.len()
                {
                    self.malformed(IssueType::Structure, "the extension array must be as long as the value array");
                }
                for (index, item) in items.iter().enumerate() {
                    if !item.is_null() {
                        self.path.push(Segment::Index(index));
                        self.complex(item, element_structure);
                        self.path.pop();
                    }
                }
            }
            (false, Value::Object(_)) => self.complex(value, element_structure),
            _ => self.malformed(
                IssueType::Structure,
                "primitive extensions must be an object (or an array for repeating elements)",
            ),
        }
    }

    fn reference_target(&mut self, value: &Value, element: &ElementDef) {
        if element.targets.is_empty() {
            return;
        }
        let Some(reference) = value.get("reference").and_then(Value::as_str) else { return };
        let mut parts = reference.split('/');
        let (Some(type_name), Some(_id), None) = (parts.next(), parts.next(), parts.next()) else { return };
        if self.registry.resource(type_name).is_some() && !element.targets.iter().any(|t| t == type_name) {
            self.invalid(
                IssueType::Value,
                format!("a reference to {type_name} is not allowed here (allowed: {})", element.targets.join(", ")),
            );
        }
    }

    fn extension_shape(&mut self, value: &Value) {
        let Some(object) = value.as_object() else { return };
        let has_value = object.keys().any(|k| k.starts_with("value"));
        if has_value && object.contains_key("extension") {
            self.invalid(IssueType::Invariant, "an extension must have either extensions or a value, not both (ext-1)");
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(value: Value) -> Result<(), FhirError> {
        validate(Registry::global(), &value)
    }

    fn expressions(err: FhirError) -> Vec<String> {
        err.issues().into_iter().flat_map(|i| i.expression).collect()
    }

    #[test]
    fn a_realistic_patient_is_valid() {
        let patient = json!({
            "resourceType": "Patient", "id": "p1",
            "meta": {"profile": ["http://example.org/p"]},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
            "extension": [{"url": "http://example.org/ext", "valueString": "v"}],
            "identifier": [{"system": "urn:oid:1.2.3", "value": "MRN-2024-00001"}],
            "name": [{"family": "Doe", "given": ["Jane", "Q"], "_given": [null, {"extension": [{"url": "http://e", "valueBoolean": true}]}]}],
            "gender": "female", "birthDate": "1980-02-29",
            "deceasedBoolean": false,
            "contact": [{"relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "C"}]}], "name": {"text": "Joe"}}],
            "contained": [{"resourceType": "Organization", "id": "o", "name": "Clinic"}],
            "managingOrganization": {"reference": "#o"}
        });
        check(patient).unwrap();
    }

    #[test]
    fn unknown_elements_and_wrong_json_types_are_malformed() {
        let err = check(json!({"resourceType": "Patient", "foo": 1, "active": "yes"})).unwrap_err();
        assert!(matches!(err, FhirError::BadRequest(_)));
        let paths = expressions(err);
        assert!(paths.contains(&"Patient.foo".to_string()), "{paths:?}");
        assert!(paths.contains(&"Patient.active".to_string()), "{paths:?}");
    }

    #[test]
    fn cardinality_is_checked() {
        let err = check(json!({"resourceType": "Patient", "name": {"family": "x"}})).unwrap_err();
        assert_eq!(expressions(err), vec!["Patient.name"]);
        let err = check(json!({"resourceType": "Patient", "gender": ["male"]})).unwrap_err();
        assert_eq!(expressions(err), vec!["Patient.gender"]);
        let err = check(json!({"resourceType": "Observation", "code": {"text": "x"}})).unwrap_err();
        assert!(matches!(err, FhirError::Unprocessable(_)));
        assert_eq!(expressions(err), vec!["Observation.status"]);
    }

    #[test]
    fn formats_and_required_codes_are_unprocessable() {
        let err = check(json!({"resourceType": "Patient", "birthDate": "1980-02-30", "gender": "m"})).unwrap_err();
        assert!(matches!(err, FhirError::Unprocessable(_)));
        let mut paths = expressions(err);
        paths.sort();
        assert_eq!(paths, vec!["Patient.birthDate", "Patient.gender"]);
    }

    #[test]
    fn choice_types_are_exclusive() {
        let err =
            check(json!({"resourceType": "Patient", "deceasedBoolean": true, "deceasedDateTime": "2020"})).unwrap_err();
        assert!(expressions(err).contains(&"Patient.deceasedDateTime".to_string()));
        assert!(check(json!({"resourceType": "Patient", "deceasedString": "x"})).is_err());
    }

    #[test]
    fn nested_paths_are_reported() {
        let err =
            check(json!({"resourceType": "Patient", "name": [{"given": ["a"]}, {"given": ["b", 3]}]})).unwrap_err();
        assert_eq!(expressions(err), vec!["Patient.name[1].given[1]"]);
        let err =
            check(json!({"resourceType": "Patient", "contained": [{"resourceType": "Organization", "bogus": true}]}))
                .unwrap_err();
        assert_eq!(expressions(err), vec!["Patient.contained[0].bogus"]);
    }

    #[test]
    fn reference_targets_and_extensions() {
        let err =
            check(json!({"resourceType": "Patient", "managingOrganization": {"reference": "Patient/1"}})).unwrap_err();
        assert_eq!(expressions(err), vec!["Patient.managingOrganization"]);
        let err = check(json!({"resourceType": "Patient", "extension": [{"url": "http://e", "valueString": "a", "extension": [{"url": "b", "valueString": "c"}]}]})).unwrap_err();
        assert_eq!(expressions(err), vec!["Patient.extension[0]"]);
        let err = check(json!({"resourceType": "Patient", "extension": [{"valueString": "a"}]})).unwrap_err();
        assert_eq!(expressions(err), vec!["Patient.extension[0].url"]);
    }

    #[test]
    fn contained_resources_of_any_r4_type_are_validated() {
        check(json!({"resourceType": "Medication", "contained": [{"resourceType": "Substance", "id": "s", "code": {"text": "x"}}]})).unwrap();
        let err = check(
            json!({"resourceType": "Medication", "contained": [{"resourceType": "Substance", "id": "s", "cod": {}}]}),
        )
        .unwrap_err();
        assert_eq!(expressions(err), vec!["Medication.contained[0].cod", "Medication.contained[0].code"]);
        let err = check(json!({"resourceType": "Patient", "contained": [{"resourceType": "Starship"}]})).unwrap_err();
        assert_eq!(expressions(err), vec!["Patient.contained[0]"]);
    }

    #[test]
    fn recursive_content_references_validate() {
        let q = json!({"resourceType": "Questionnaire", "status": "active",
            "item": [{"linkId": "1", "type": "group", "item": [{"linkId": "1.1", "type": "string", "unknownThing": 1}]}]});
        let err = check(q).unwrap_err();
        assert_eq!(expressions(err), vec!["Questionnaire.item[0].item[0].unknownThing"]);
    }
}

//! The registry of supported resource types, datatypes and search parameters, loaded at start
//! from the facts distilled into `fhir-profiles/` (FHIR R4 StructureDefinition snapshots and
//! SearchParameter resources). Routing, validation and the CapabilityStatement all read it.

use indexmap::IndexMap;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/profiles.rs"));
}

/// How many times an element may repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxCardinality {
    Zero,
    One,
    Many,
}

#[derive(Debug)]
pub struct ElementDef {
    pub name: String,
    pub min: u32,
    pub max: MaxCardinality,
    pub types: Vec<String>,
    pub targets: Vec<String>,
    pub summary: bool,
    /// Codes of a required binding, when the value set could be expanded.
    pub required_codes: Option<HashSet<String>>,
    pub value_set: Option<String>,
    /// Children of an inline (BackboneElement) element.
    pub children: Option<Structure>,
    /// `Questionnaire.item.item` reuses `Questionnaire.item`: the path it points at.
    pub content_reference: Option<String>,
}

impl ElementDef {
    pub fn is_choice(&self) -> bool {
        self.name.ends_with("[x]")
    }
}

/// The elements of one type or backbone element, and how JSON member names map onto them.
#[derive(Debug, Default)]
pub struct Structure {
    pub elements: IndexMap<String, ElementDef>,
    /// JSON member name -> (element name, chosen type for `[x]` elements).
    json_names: HashMap<String, (String, Option<String>)>,
}

impl Structure {
    /// Resolves a JSON member name (`deceasedBoolean`, `name`) to its element and type.
    pub fn lookup(&self, member: &str) -> Option<(&ElementDef, Option<&str>)> {
        let (element, chosen) = self.json_names.get(member)?;
        Some((&self.elements[element], chosen.as_deref()))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SearchParamDef {
    pub code: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub expression: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub modifiers: Vec<String>,
    #[serde(default)]
    pub comparators: Vec<String>,
    #[serde(default)]
    pub components: Vec<SearchParamComponent>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SearchParamComponent {
    pub definition: Option<String>,
    pub code: Option<String>,
    pub expression: Option<String>,
}

#[derive(Debug)]
pub struct ResourceType {
    pub name: String,
    pub structure: Structure,
    pub search_params: Vec<SearchParamDef>,
}

impl ResourceType {
    /// Top-level elements flagged `isSummary` (for `_summary=true`).
    pub fn is_summary_member(&self, member: &str) -> bool {
        self.structure.lookup(member).is_some_and(|(e, _)| e.summary)
    }
}

#[derive(Debug)]
pub struct Registry {
    /// The resource types this server serves.
    resources: BTreeMap<String, ResourceType>,
    /// Every other R4 resource type: known only to validate resources contained in (or carried
    /// by) a served one.
    other_structures: HashMap<String, Structure>,
    datatypes: HashMap<String, Structure>,
    primitives: HashSet<String>,
    pub common_search_params: Vec<SearchParamDef>,
    /// Patient compartment: resource type -> parameters that link it to the patient.
    pub patient_compartment: BTreeMap<String, Vec<String>>,
}

impl Registry {
    /// The registry built from the profiles compiled into the binary, loaded once.
    pub fn global() -> &'static Registry {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        REGISTRY.get_or_init(|| Registry::load().expect("the embedded fhir-profiles are valid"))
    }

    fn load() -> Result<Registry, serde_json::Error> {
        let datatypes_file: RawDatatypes = serde_json::from_str(embedded::DATATYPES)?;
        let datatypes =
            datatypes_file.complex.into_iter().map(|(name, raw)| (name, build_structure(raw.elements))).collect();
        let mut search: RawSearchParams = serde_json::from_str(embedded::SEARCH_PARAMETERS)?;
        let mut resources = BTreeMap::new();
        for (name, text) in embedded::RESOURCES {
            let raw: RawResource = serde_json::from_str(text)?;
            let search_params = search.by_type.remove(*name).unwrap_or_default();
            resources.insert(
                (*name).to_string(),
                ResourceType { name: (*name).to_string(), structure: build_structure(raw.elements), search_params },
            );
        }
        let mut other_structures = HashMap::new();
        for (name, text) in embedded::STRUCTURES {
            let raw: RawResource = serde_json::from_str(text)?;
            other_structures.insert((*name).to_string(), build_structure(raw.elements));
        }
        Ok(Registry {
            resources,
            other_structures,
            datatypes,
            primitives: datatypes_file.primitives.into_iter().collect(),
            common_search_params: search.common,
            patient_compartment: serde_json::from_str(embedded::PATIENT_COMPARTMENT)?,
        })
    }

    pub fn resource(&self, name: &str) -> Option<&ResourceType> {
        self.resources.get(name)
    }

    /// The structure of any R4 resource type, served or not.
    pub fn any_resource_structure(&self, name: &str) -> Option<&Structure> {
        self.resources.get(name).map(|r| &r.structure).or_else(|| self.other_structures.get(name))
    }

    pub fn resources(&self) -> impl Iterator<Item = &ResourceType> {
        self.resources.values()
    }

    pub fn datatype(&self, name: &str) -> Option<&Structure> {
        self.datatypes.get(name)
    }

    pub fn is_primitive(&self, type_code: &str) -> bool {
        self.primitives.contains(type_code) || type_code == "xhtml"
    }

    /// The element a `contentReference` path (`Questionnaire.item`) points at.
    pub fn element_at_path(&self, path: &str) -> Option<&ElementDef> {
        let mut parts = path.split('.');
        let mut structure = self.any_resource_structure(parts.next()?)?;
        let mut found = None;
        for part in parts {
            let element = structure.elements.get(part)?;
            found = Some(element);
            if let Some(children) = &element.children {
                structure = children;
            }
        }
        found
    }
}

#[derive(Deserialize)]
struct RawResource {
    elements: IndexMap<String, RawElement>,
}

#[derive(Deserialize)]
struct RawDatatypes {
    primitives: Vec<String>,
    complex: HashMap<String, RawComplex>,
}

#[derive(Deserialize)]
struct RawComplex {
    elements: IndexMap<String, RawElement>,
}

#[derive(Deserialize)]
struct RawSearchParams {
    common: Vec<SearchParamDef>,
    #[serde(rename = "byType")]
    by_type: HashMap<String, Vec<SearchParamDef>>,
}

#[derive(Deserialize)]
struct RawElement {
    #[serde(default)]
    min: u32,
    #[serde(default)]
    max: Option<String>,
    #[serde(default)]
    types: Vec<String>,
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    summary: bool,
    #[serde(default)]
    binding: Option<RawBinding>,
    #[serde(default)]
    elements: Option<IndexMap<String, RawElement>>,
    #[serde(default, rename = "contentReference")]
    content_reference: Option<String>,
}

#[derive(Deserialize)]
struct RawBinding {
    strength: String,
    #[serde(rename = "valueSet")]
    value_set: Option<String>,
    codes: Option<Vec<String>>,
}

fn build_structure(raw: IndexMap<String, RawElement>) -> Structure {
    let mut structure = Structure::default();
    for (name, element) in raw {
        let max = match element.max.as_deref() {
            Some("0") => MaxCardinality::Zero,
            Some("1") | None => MaxCardinality::One,
            _ => MaxCardinality::Many,
        };
        let (required_codes, value_set) = match element.binding {
            Some(b) if b.strength == "required" => (b.codes.map(|c| c.into_iter().collect()), b.value_set),
            _ => (None, None),
        };
        if let Some(prefix) = name.strip_suffix("[x]") {
            for t in &element.types {
                let member = format!("{prefix}{}{}", t[..1].to_uppercase(), &t[1..]);
                structure.json_names.insert(member, (name.clone(), Some(t.clone())));
            }
        } else {
            structure.json_names.insert(name.clone(), (name.clone(), None));
        }
        let def = ElementDef {
            name: name.clone(),
            min: element.min,
            max,
            types: element.types,
            targets: element.targets,
            summary: element.summary,
            required_codes,
            value_set,
            children: element.elements.map(build_structure),
            content_reference: element.content_reference,
        };
        structure.elements.insert(name, def);
    }
    structure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_required_types_are_registered() {
        let registry = Registry::global();
        for t in [
            "Patient",
            "Practitioner",
            "PractitionerRole",
            "Organization",
            "Location",
            "Encounter",
            "Observation",
            "Condition",
            "AllergyIntolerance",
            "MedicationRequest",
            "Appointment",
            "Schedule",
            "Slot",
            "Consent",
            "AuditEvent",
            "Provenance",
            "Coverage",
            "Communication",
            "CommunicationRequest",
            "DocumentReference",
            "Binary",
            "Questionnaire",
            "QuestionnaireResponse",
            "Endpoint",
            "Group",
        ] {
            assert!(registry.resource(t).is_some(), "{t} missing");
        }
    }

    #[test]
    fn choice_members_resolve() {
        let patient = Registry::global().resource("Patient").unwrap();
        let (element, chosen) = patient.structure.lookup("deceasedBoolean").unwrap();
        assert_eq!(element.name, "deceased[x]");
        assert_eq!(chosen, Some("boolean"));
        assert!(patient.structure.lookup("deceasedString").is_none());
    }

    #[test]
    fn content_references_resolve() {
        let registry = Registry::global();
        let item = registry.element_at_path("Questionnaire.item").unwrap();
        assert!(item.children.as_ref().unwrap().elements.contains_key("linkId"));
    }
}

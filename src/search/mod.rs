//! FHIR search (FHIR R4 search.html): the index rows a resource contributes, one module per
//! search-parameter type (extraction and SQL condition side by side), and the compilation of a
//! query string into one SQL statement with bound values (never user text in the SQL).

pub mod composite;
pub mod date;
pub mod fhirpath;
pub mod number;
pub mod query;
pub mod reference;
pub mod string;
pub mod token;
pub mod ucum;
pub mod uri;

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::fhir::registry::{Registry, SearchParamDef};
use fhirpath::Expression;

/// One search-index entry of a resource's current version, by parameter type.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexRow {
    String {
        param: String,
        normalized: String,
        exact: String,
    },
    Token {
        param: String,
        system: Option<String>,
        code: Option<String>,
        text: Option<String>,
    },
    Date {
        param: String,
        low: i64,
        high: i64,
    },
    Number {
        param: String,
        value: f64,
    },
    Quantity {
        param: String,
        value: f64,
        system: Option<String>,
        code: Option<String>,
    },
    Reference {
        param: String,
        target_type: Option<String>,
        target_id: Option<String>,
        url: Option<String>,
    },
    Uri {
        param: String,
        value: String,
    },
    /// A pairing of two component rows that one element holds (their `param`s are the
    /// components' codes).
    Composite {
        param: String,
        first: Box<IndexRow>,
        second: Box<IndexRow>,
    },
}

impl IndexRow {
    /// The search parameter the row is an entry of.
    pub fn param(&self) -> &str {
        match self {
            IndexRow::String { param, .. }
            | IndexRow::Token { param, .. }
            | IndexRow::Date { param, .. }
            | IndexRow::Number { param, .. }
            | IndexRow::Quantity { param, .. }
            | IndexRow::Reference { param, .. }
            | IndexRow::Uri { param, .. }
            | IndexRow::Composite { param, .. } => param,
        }
    }
}

/// A bound SQL value.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlArg {
    Text(String),
    Int(i64),
    Real(f64),
}

/// A parsed search parameter definition with its compiled expression.
pub struct IndexedParam {
    pub def: SearchParamDef,
    pub expression: Expression,
    /// The types a reference parameter can point to: the definition's targets, narrowed by the
    /// expression (R4's `patient` parameters list Group too, but select only Patients).
    pub targets: Vec<String>,
    /// A composite parameter's two components (empty for the other types).
    pub components: Vec<composite::Component>,
}

/// The search parameters of every served type, their expressions parsed once.
pub struct SearchRegistry {
    by_type: HashMap<String, Vec<IndexedParam>>,
}

impl SearchRegistry {
    pub fn global() -> &'static SearchRegistry {
        static SEARCH: OnceLock<SearchRegistry> = OnceLock::new();
        SEARCH.get_or_init(|| SearchRegistry::build(Registry::global()))
    }

    fn build(registry: &Registry) -> SearchRegistry {
        let mut by_type = HashMap::new();
        for resource in registry.resources() {
            let params = resource
                .search_params
                .iter()
                .chain(
                    registry.common_search_params.iter().filter(|p| !matches!(p.code.as_str(), "_id" | "_lastUpdated")),
                )
                .filter(|p| is_indexed_type(&p.kind))
                .filter_map(|p| {
                    let expression = Expression::parse(p.expression.as_deref()?)?;
                    let targets = match expression.resolves_only_to() {
                        Some(only) => vec![only.to_string()],
                        None => p.targets.clone(),
                    };
                    let components = if p.kind == "composite" {
                        composite::components(&resource.name, p, &resource.search_params)?
                    } else {
                        Vec::new()
                    };
                    Some(IndexedParam { def: p.clone(), expression, targets, components })
                })
                .collect();
            by_type.insert(resource.name.clone(), params);
        }
        SearchRegistry { by_type }
    }

    pub fn params(&self, resource_type: &str) -> &[IndexedParam] {
        self.by_type.get(resource_type).map(Vec::as_slice).unwrap_or_default()
    }

    pub fn param(&self, resource_type: &str, code: &str) -> Option<&IndexedParam> {
        self.params(resource_type).iter().find(|p| p.def.code == code)
    }
}

/// Parameter types Kiln indexes. The `special` ones (`_text`, `_content`, `_filter`, `_query`,
/// Location's `near`) are refused by name as not supported yet.
pub fn is_indexed_type(kind: &str) -> bool {
    matches!(kind, "string" | "token" | "date" | "number" | "quantity" | "reference" | "uri" | "composite")
}

/// Every index row of a resource, from the search parameters of its type.
pub fn index_resource(registry: &Registry, resource_type: &str, resource: &Value) -> Vec<IndexRow> {
    let mut rows = Vec::new();
    for param in SearchRegistry::global().params(resource_type) {
        let code = &param.def.code;
        if !param.components.is_empty() {
            let component_expressions: Vec<_> = param.components.iter().map(|c| &c.expression).collect();
            let elements = param.expression.evaluate_within(registry, resource, &component_expressions);
            composite::extract(code, elements, &param.components, &mut rows);
            continue;
        }
        let found = param.expression.evaluate(registry, resource);
        if param.expression.is_exists_test() {
            let present = found.iter().any(|f| f.value != &Value::Bool(false));
            rows.push(IndexRow::Token {
                param: code.clone(),
                system: None,
                code: Some(present.to_string()),
                text: None,
            });
            continue;
        }
        for item in &found {
            match param.def.kind.as_str() {
                "string" => string::extract(code, item, &mut rows),
                "token" => token::extract(code, item, &mut rows),
                "date" => date::extract(code, item, &mut rows),
                "number" => number::extract_number(code, item, &mut rows),
                "quantity" => number::extract_quantity(code, item, &mut rows),
                "reference" => reference::extract(code, item, &mut rows),
                "uri" => uri::extract(code, item, &mut rows),
                _ => {}
            }
        }
    }
    rows.dedup();
    rows
}

/// Lower case without accents: how string parameters compare (search.html#string).
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        for lower in c.to_lowercase() {
            out.push(fold_accent(lower));
        }
    }
    out
}

fn fold_accent(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' => 'a',
        'ç' | 'ć' | 'č' => 'c',
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'ī' => 'i',
        'ñ' | 'ń' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' => 'o',
        'ù' | 'ú' | 'û' | 'ü' | 'ū' => 'u',
        'ý' | 'ÿ' => 'y',
        'š' | 'ś' => 's',
        'ž' | 'ź' | 'ż' => 'z',
        'ł' => 'l',
        other => other,
    }
}

/// `value` split at each `separator` not escaped by a backslash (`\,` is a literal comma in a
/// list of alternatives, `\$` a literal dollar in a composite value).
pub fn split_unescaped(value: &str, separator: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        let part = parts.last_mut().expect("never empty");
        match c {
            '\\' if chars.peek() == Some(&separator) => {
                part.push(separator);
                chars.next();
            }
            c if c == separator => parts.push(String::new()),
            c => part.push(c),
        }
    }
    parts
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalisation_folds_case_and_accents() {
        assert_eq!(normalize("Zoë Müller-ÉTIENNE"), "zoe muller-etienne");
        assert_eq!(like_escape("50%_a\\b"), "50\\%\\_a\\\\b");
    }

    #[test]
    fn a_patient_is_indexed_by_its_parameters() {
        let patient = json!({"resourceType": "Patient", "id": "p",
            "name": [{"family": "Müller", "given": ["Zoë"]}],
            "identifier": [{"system": "urn:mrn", "value": "42"}],
            "birthDate": "1980-02", "gender": "female", "generalPractitioner": [{"reference": "Practitioner/d1"}],
            "telecom": [{"system": "email", "value": "z@example.org"}], "deceasedBoolean": false});
        let rows = index_resource(Registry::global(), "Patient", &patient);
        let has = |row: &IndexRow| rows.contains(row);
        assert!(has(&IndexRow::String {
            param: "family".into(), normalized: "muller".into(), exact: "Müller".into()
        }));
        assert!(has(&IndexRow::String { param: "name".into(), normalized: "zoe".into(), exact: "Zoë".into() }));
        assert!(has(&IndexRow::Token {
            param: "identifier".into(),
            system: Some("urn:mrn".into()),
            code: Some("42".into()),
            text: None
        }));
        assert!(has(&IndexRow::Token {
            param: "gender".into(),
            system: None,
            code: Some("female".into()),
            text: None
        }));
        assert!(has(&IndexRow::Token {
            param: "deceased".into(),
            system: None,
            code: Some("false".into()),
            text: None
        }));
        assert!(has(&IndexRow::Token {
            param: "email".into(),
            system: Some("email".into()),
            code: Some("z@example.org".into()),
            text: None
        }));
        assert!(has(&IndexRow::Reference {
            param: "general-practitioner".into(),
            target_type: Some("Practitioner".into()),
            target_id: Some("d1".into()),
            url: None
        }));
        assert!(rows.iter().any(|r| matches!(r, IndexRow::Date { param, .. } if param == "birthdate")));
    }
}

//! The subset of FHIRPath that the R4 search parameter expressions use (FHIR R4
//! searchparameter-registry, fhirpath.html): paths, `|` unions, `as` / `ofType` casts,
//! `where(resolve() is Type)`, `where(field = 'literal')` and `exists()`. Evaluation walks the
//! registry's type definitions alongside the JSON, so every value found carries its FHIR type.

use serde_json::Value;

use crate::fhir::registry::{Registry, Structure};

/// A parsed expression: the union of its paths.
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    paths: Vec<Path>,
    /// `X.exists() and X != false`: the value is whether X is present and not `false`.
    exists_test: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Path {
    resource_type: String,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    /// `as Quantity`, `ofType(Quantity)`: keep values of that type.
    Cast(String),
    /// `where(resolve() is Patient)`: keep references to that type.
    ResolvesTo(String),
    /// `where(system='email')`: keep values whose field equals the literal.
    FieldEquals(String, String),
}

/// A value found by an expression, with its FHIR type (`HumanName`, `dateTime`, `Reference`…).
#[derive(Debug, Clone, PartialEq)]
pub struct Found<'a> {
    pub value: &'a Value,
    pub type_code: String,
}

impl Expression {
    /// Parses an expression; `None` when it uses FHIRPath beyond this subset.
    pub fn parse(text: &str) -> Option<Expression> {
        if let Some((left, _)) = text.split_once(".exists() and ") {
            let mut expression = Expression::parse(left)?;
            expression.exists_test = true;
            return Some(expression);
        }
        let paths = split_top_level(text, '|').into_iter().map(|p| parse_path(p.trim())).collect::<Option<Vec<_>>>()?;
        Some(Expression { paths, exists_test: false })
    }

    /// The one type every path's `where(resolve() is T)` restricts references to, if there is one.
    pub fn resolves_only_to(&self) -> Option<&str> {
        let mut target = None;
        for path in &self.paths {
            let last = path.steps.iter().rev().find_map(|s| match s {
                Step::ResolvesTo(t) => Some(t.as_str()),
                _ => None,
            })?;
            if target.is_some_and(|t| t != last) {
                return None;
            }
            target = Some(last);
        }
        target
    }

    pub fn is_exists_test(&self) -> bool {
        self.exists_test
    }

    /// Parses an expression relative to an element (a composite parameter's component, e.g.
    /// `value.as(Quantity) | value.as(Range)`): each path starts at the element itself.
    pub fn parse_relative(text: &str) -> Option<Expression> {
        let paths = split_top_level(text, '|')
            .into_iter()
            .map(|p| parse_path(&format!("{THIS}.{}", strip_parens(p.trim()))))
            .collect::<Option<Vec<_>>>()?;
        Some(Expression { paths, exists_test: false })
    }

    /// Every value the expression selects in `resource`.
    pub fn evaluate<'a>(&self, registry: &Registry, resource: &'a Value) -> Vec<Found<'a>> {
        self.nodes(registry, resource).into_iter().map(|n| Found { value: n.value, type_code: n.type_code }).collect()
    }

    /// For each element the expression selects in `resource`, the values each of the `relative`
    /// expressions selects within that element (a composite parameter's components, which must
    /// come from one element: search.html#composite).
    pub fn evaluate_within<'a>(
        &self,
        registry: &Registry,
        resource: &'a Value,
        relative: &[&Expression],
    ) -> Vec<Vec<Vec<Found<'a>>>> {
        self.nodes(registry, resource)
            .iter()
            .map(|element| {
                relative
                    .iter()
                    .map(|expression| {
                        expression
                            .paths
                            .iter()
                            .filter(|path| path.resource_type == THIS)
                            .flat_map(|path| path.walk(registry, element.clone()))
                            .map(|n| Found { value: n.value, type_code: n.type_code })
                            .collect()
                    })
                    .collect()
            })
            .collect()
    }

    fn nodes<'a, 'r>(&self, registry: &'r Registry, resource: &'a Value) -> Vec<Node<'a, 'r>> {
        let resource_type = resource.get("resourceType").and_then(Value::as_str).unwrap_or_default();
        let mut out = Vec::new();
        for path in &self.paths {
            if path.resource_type != resource_type
                && path.resource_type != "Resource"
                && path.resource_type != "DomainResource"
            {
                continue;
            }
            let Some(root) = registry.any_resource_structure(resource_type) else { continue };
            out.extend(
                path.walk(
                    registry,
                    Node { value: resource, structure: Some(root), type_code: resource_type.to_string() },
                ),
            );
        }
        out
    }
}

/// The root of a relative path: the element it is evaluated on.
const THIS: &str = "$this";

impl Path {
    fn walk<'a, 'r>(&self, registry: &'r Registry, start: Node<'a, 'r>) -> Vec<Node<'a, 'r>> {
        let mut current = vec![start];
        for step in &self.steps {
            current = apply(registry, current, step);
        }
        current
    }
}

#[derive(Clone)]
struct Node<'a, 'r> {
    value: &'a Value,
    /// The children definitions of the value (its datatype, backbone element or resource).
    structure: Option<&'r Structure>,
    type_code: String,
}

fn apply<'a, 'r>(registry: &'r Registry, nodes: Vec<Node<'a, 'r>>, step: &Step) -> Vec<Node<'a, 'r>> {
    match step {
        Step::Field(name) => nodes.iter().flat_map(|n| field(registry, n, name)).collect(),
        // Case-insensitive: R4's code-value-date casts to `DateTime` for the type `dateTime`.
        Step::Cast(type_code) => nodes.into_iter().filter(|n| n.type_code.eq_ignore_ascii_case(type_code)).collect(),
        Step::ResolvesTo(target) => nodes
            .into_iter()
            .filter(|n| {
                let reference = n.value.get("reference").and_then(Value::as_str).unwrap_or_default();
                reference_type(reference).is_some_and(|t| t == target)
                    || n.value.get("type").and_then(Value::as_str) == Some(target.as_str())
            })
            .collect(),
        Step::FieldEquals(field_name, literal) => nodes
            .into_iter()
            .filter(|n| n.value.get(field_name).and_then(Value::as_str) == Some(literal.as_str()))
            .collect(),
    }
}

/// The resource type a reference string names: `Patient/1`, `http://x/fhir/Patient/1/_history/2`.
pub fn reference_type(reference: &str) -> Option<&str> {
    let path = reference.split("/_history/").next().unwrap_or(reference);
    let mut parts = path.rsplit('/');
    let _id = parts.next()?;
    let type_name = parts.next()?;
    type_name.chars().next().is_some_and(|c| c.is_ascii_uppercase()).then_some(type_name)
}

fn field<'a, 'r>(registry: &'r Registry, node: &Node<'a, 'r>, name: &str) -> Vec<Node<'a, 'r>> {
    let (Some(object), Some(structure)) = (node.value.as_object(), node.structure) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let choice = format!("{name}[x]");
    let element = structure.elements.get(name).or_else(|| structure.elements.get(&choice));
    let Some(element) = element else { return out };
    let candidates: Vec<(&String, &Value, String)> = if element.is_choice() {
        object
            .iter()
            .filter_map(|(key, value)| {
                let (def, chosen) = structure.lookup(key)?;
                (std::ptr::eq(def, element)).then(|| (key, value, chosen.unwrap_or_default().to_string()))
            })
            .collect()
    } else {
        object
            .get_key_value(name)
            .map(|(k, v)| (k, v, element.types.first().cloned().unwrap_or_default()))
            .into_iter()
            .collect()
    };
    for (_, value, type_code) in candidates {
        let children = match (&element.children, &element.content_reference) {
            (Some(children), _) => Some(children),
            (None, Some(target)) => registry.element_at_path(target).and_then(|e| e.children.as_ref()),
            (None, None) => registry.datatype(&type_code),
        };
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        for item in items {
            out.push(Node { value: item, structure: children, type_code: type_code.clone() });
        }
    }
    out
}

fn parse_path(text: &str) -> Option<Path> {
    let text = strip_parens(text);
    // `(Observation.value as Quantity)` / `Observation.value as Quantity`
    if let Some((path, cast)) = text.rsplit_once(" as ") {
        let mut parsed = parse_path(path)?;
        parsed.steps.push(Step::Cast(cast.trim().to_string()));
        return Some(parsed);
    }
    let mut segments = split_top_level(text, '.').into_iter();
    let resource_type = segments.next()?.to_string();
    let mut steps = Vec::new();
    for segment in segments {
        if let Some(inner) = segment.strip_prefix("where(").and_then(|s| s.strip_suffix(')')) {
            if let Some(target) = inner.strip_prefix("resolve() is ") {
                steps.push(Step::ResolvesTo(target.trim().to_string()));
            } else if let Some((field, literal)) = inner.split_once('=') {
                steps.push(Step::FieldEquals(field.trim().to_string(), literal.trim().trim_matches('\'').to_string()));
            } else {
                return None;
            }
        } else if let Some(inner) =
            segment.strip_prefix("ofType(").or_else(|| segment.strip_prefix("as(")).and_then(|s| s.strip_suffix(')'))
        {
            steps.push(Step::Cast(inner.to_string()));
        } else if segment.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !segment.is_empty() {
            steps.push(Step::Field(segment.to_string()));
        } else {
            return None;
        }
    }
    Some(Path { resource_type, steps })
}

fn strip_parens(mut text: &str) -> &str {
    while text.starts_with('(') && text.ends_with(')') && split_top_level(&text[1..text.len() - 1], '|').len() == 1 {
        text = text[1..text.len() - 1].trim();
    }
    text
}

/// Splits at `separator` outside parentheses and quotes.
fn split_top_level(text: &str, separator: char) -> Vec<&str> {
    let (mut depth, mut quoted, mut start, mut parts) = (0i32, false, 0, Vec::new());
    for (i, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            c if c == separator && depth == 0 && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(expression: &str, resource: &Value) -> Vec<(Value, String)> {
        Expression::parse(expression)
            .unwrap()
            .evaluate(Registry::global(), resource)
            .into_iter()
            .map(|f| (f.value.clone(), f.type_code))
            .collect()
    }

    #[test]
    fn paths_types_and_unions() {
        let patient =
            json!({"resourceType": "Patient", "name": [{"family": "Doe"}, {"family": "Roe"}], "birthDate": "1980"});
        let names = eval("Patient.name", &patient);
        assert_eq!(names.len(), 2);
        assert_eq!(names[0].1, "HumanName");
        assert_eq!(eval("Patient.name.family | Patient.birthDate", &patient).len(), 3);
        assert_eq!(eval("Patient.birthDate", &patient)[0].1, "date");
    }

    #[test]
    fn choices_and_casts() {
        let obs =
            json!({"resourceType": "Observation", "valueQuantity": {"value": 5}, "effectivePeriod": {"start": "2020"}});
        assert_eq!(eval("(Observation.value as Quantity)", &obs)[0].1, "Quantity");
        assert!(eval("(Observation.value as CodeableConcept)", &obs).is_empty());
        assert_eq!(eval("Observation.effective", &obs)[0].1, "Period");
        let component = json!({"resourceType": "Observation", "component": [{"code": {"text": "x"}, "valueQuantity": {"value": 1}}]});
        assert_eq!(eval("Observation.component.value.ofType(Quantity)", &component).len(), 1);
        let condition = json!({"resourceType": "Condition", "onsetDateTime": "2020-01-01"});
        assert_eq!(eval("Condition.onset.as(dateTime) | Condition.onset.as(Period)", &condition).len(), 1);
    }

    #[test]
    fn where_filters() {
        let obs = json!({"resourceType": "Observation", "subject": {"reference": "Patient/1"}});
        assert_eq!(eval("Observation.subject.where(resolve() is Patient)", &obs).len(), 1);
        assert!(eval("Observation.subject.where(resolve() is Group)", &obs).is_empty());
        let patient = json!({"resourceType": "Patient", "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "a@b"}]});
        let emails = eval("Patient.telecom.where(system='email')", &patient);
        assert_eq!(emails.len(), 1);
        assert_eq!(emails[0].0["value"], "a@b");
    }

    #[test]
    fn every_registered_expression_parses() {
        let registry = Registry::global();
        let mut unparsed = Vec::new();
        for t in registry.resources() {
            for p in t.search_params.iter().chain(&registry.common_search_params) {
                if let Some(e) = &p.expression
                    && Expression::parse(e).is_none()
                {
                    unparsed.push(format!("{}.{}: {e}", t.name, p.code));
                }
            }
        }
        assert!(unparsed.is_empty(), "{unparsed:#?}");
    }

    #[test]
    fn reference_types() {
        assert_eq!(reference_type("Patient/1"), Some("Patient"));
        assert_eq!(reference_type("http://x/fhir/Patient/1/_history/2"), Some("Patient"));
        assert_eq!(reference_type("#contained"), None);
    }
}

//! Composite search parameters (FHIR R4 search.html#composite): `code-value-quantity=
//! http://loinc.org|8480-6$gt100` matches when one element (the Observation itself, or one of its
//! components) has both a code and a value that match. Each element the parameter's expression
//! selects contributes one `search_composite` row per pair of its two components' index values, in
//! columns `c1_…` and `c2_…` named as in the components' own tables, so the components' conditions
//! are the ones of their types, applied to one row.

use super::fhirpath::{Expression, Found};
use super::{IndexRow, SqlArg, date, number, reference, string, token};
use crate::fhir::registry::SearchParamDef;

/// One part of a composite parameter: its own parameter type and where it is in the element.
#[derive(Debug, Clone)]
pub struct Component {
    pub code: String,
    pub kind: String,
    pub expression: Expression,
    /// For a reference component: the one type it can point to, if there is one.
    pub single_target: Option<String>,
}

/// The columns a component's values take, by their names in the component's own table: both sides
/// of a row have every one, and leave the ones of other types NULL.
pub const COMPONENT_COLUMNS: [&str; 11] =
    ["system", "code", "text", "value", "low", "high", "normalized", "exact", "target_type", "target_id", "url"];

/// The columns of a `search_composite` row: the parameter, then [`COMPONENT_COLUMNS`] for each
/// side.
pub const ROW_COLUMNS: [&str; 23] = [
    "param",
    "c1_system",
    "c1_code",
    "c1_text",
    "c1_value",
    "c1_low",
    "c1_high",
    "c1_normalized",
    "c1_exact",
    "c1_target_type",
    "c1_target_id",
    "c1_url",
    "c2_system",
    "c2_code",
    "c2_text",
    "c2_value",
    "c2_low",
    "c2_high",
    "c2_normalized",
    "c2_exact",
    "c2_target_type",
    "c2_target_id",
    "c2_url",
];

/// The values of a composite row in the order of [`ROW_COLUMNS`].
pub fn row_values(param: &str, first: &IndexRow, second: &IndexRow) -> Vec<Option<SqlArg>> {
    let mut values = vec![Some(SqlArg::Text(param.to_string()))];
    values.extend(component_values(first));
    values.extend(component_values(second));
    values
}

/// The published R4 definitions that do not describe what they mean, with the correction:
/// DocumentReference `relationship` gives its reference component the expression `code` and its
/// token component `target`, the wrong way round.
fn corrected_expression<'a>(resource_type: &str, composite: &str, component: &str, expression: &'a str) -> &'a str {
    match (resource_type, composite, component) {
        ("DocumentReference", "relationship", "relatesto") => "target",
        ("DocumentReference", "relationship", "relation") => "code",
        _ => expression,
    }
}

/// The two components of a composite definition, each resolved to the parameter it names among
/// `siblings` (the parameters of the same type); `None` when they cannot be indexed.
pub fn components(resource_type: &str, def: &SearchParamDef, siblings: &[SearchParamDef]) -> Option<Vec<Component>> {
    let resolved: Option<Vec<Component>> = def
        .components
        .iter()
        .map(|component| {
            let target = siblings.iter().find(|p| p.url.is_some() && p.url == component.definition)?;
            if !matches!(target.kind.as_str(), "string" | "token" | "date" | "number" | "quantity" | "reference") {
                return None;
            }
            let code = component.code.clone().unwrap_or_else(|| target.code.clone());
            let expression = corrected_expression(resource_type, &def.code, &code, component.expression.as_deref()?);
            Some(Component {
                single_target: (target.targets.len() == 1).then(|| target.targets[0].clone()),
                kind: target.kind.clone(),
                expression: Expression::parse_relative(expression)?,
                code,
            })
        })
        .collect();
    resolved.filter(|c| c.len() == 2)
}

/// The rows of one composite parameter: for each selected element, every pairing of its first
/// component's index values with its second's.
pub fn extract(param: &str, elements: Vec<Vec<Vec<Found<'_>>>>, components: &[Component], rows: &mut Vec<IndexRow>) {
    for element in elements {
        let [first, second] = [0, 1].map(|i| component_rows(&components[i], &element[i]));
        for a in &first {
            for b in &second {
                rows.push(IndexRow::Composite {
                    param: param.to_string(),
                    first: Box::new(a.clone()),
                    second: Box::new(b.clone()),
                });
            }
        }
    }
}

fn component_rows(component: &Component, found: &[Found<'_>]) -> Vec<IndexRow> {
    let mut rows = Vec::new();
    for item in found {
        match component.kind.as_str() {
            "string" => string::extract(&component.code, item, &mut rows),
            "token" => token::extract(&component.code, item, &mut rows),
            "date" => date::extract(&component.code, item, &mut rows),
            "number" => number::extract_number(&component.code, item, &mut rows),
            "quantity" => number::extract_quantity(&component.code, item, &mut rows),
            "reference" => reference::extract(&component.code, item, &mut rows),
            _ => {}
        }
    }
    // Identifier types (:of-type) and reference identifiers (:identifier) are rows of derived
    // parameters, which a composite's components do not have.
    rows.retain(|row| row.param() == component.code);
    rows
}

/// The values of one composite row's side, in the order of [`COMPONENT_COLUMNS`].
fn component_values(row: &IndexRow) -> [Option<SqlArg>; 11] {
    let text = |s: &Option<String>| s.clone().map(SqlArg::Text);
    let mut values: [Option<SqlArg>; 11] = Default::default();
    let mut set = |column: &str, value: Option<SqlArg>| {
        let at = COMPONENT_COLUMNS.iter().position(|c| *c == column).expect("a component column");
        values[at] = value;
    };
    match row {
        IndexRow::String { normalized, exact, .. } => {
            set("normalized", Some(SqlArg::Text(normalized.clone())));
            set("exact", Some(SqlArg::Text(exact.clone())));
        }
        IndexRow::Token { system, code, text: t, .. } => {
            set("system", text(system));
            set("code", text(code));
            set("text", text(t));
        }
        IndexRow::Date { low, high, .. } => {
            set("low", Some(SqlArg::Int(*low)));
            set("high", Some(SqlArg::Int(*high)));
        }
        IndexRow::Number { value, .. } => set("value", Some(SqlArg::Real(*value))),
        IndexRow::Quantity { value, system, code, .. } => {
            set("value", Some(SqlArg::Real(*value)));
            set("system", text(system));
            set("code", text(code));
        }
        IndexRow::Reference { target_type, target_id, url, .. } => {
            set("target_type", text(target_type));
            set("target_id", text(target_id));
            set("url", text(url));
        }
        IndexRow::Uri { .. } | IndexRow::Composite { .. } => {}
    }
    values
}

/// The condition on the `search_composite` row `x` for one value `first$second`, each part in
/// the syntax of its component's type (`\$` is a literal `$`).
pub fn condition(
    components: &[Component],
    value: &str,
    base_url: &str,
    args: &mut Vec<SqlArg>,
    next: &mut dyn FnMut() -> String,
) -> Result<String, String> {
    let parts = split_components(value);
    if parts.len() != components.len() {
        return Err(format!(
            "a composite value has {} parts separated by '$' ({}), not {}",
            components.len(),
            components.iter().map(|c| c.code.as_str()).collect::<Vec<_>>().join("$"),
            parts.len()
        ));
    }
    let mut conditions = Vec::new();
    for (index, (component, part)) in components.iter().zip(&parts).enumerate() {
        if part.is_empty() {
            return Err(format!("the composite part '{}' has no value", component.code));
        }
        let condition = match component.kind.as_str() {
            "string" => string::condition(None, part, args, next),
            "token" => token::condition(None, part, args, next),
            "date" => date::condition(part, args, next).map(|c| {
                // A date's `ne` is negated by the caller for plain parameters; within one
                // composite row it is negated here.
                if date::split_prefix(part).0 == "ne" { format!("NOT ({c})") } else { c }
            }),
            "number" => number::value_condition("x.value", part, args, next),
            "quantity" => number::quantity_condition(part, args, next),
            "reference" => reference::condition(None, part, base_url, component.single_target.as_deref(), args, next),
            other => Err(format!("{other} components are not supported")),
        }
        .map_err(|e| format!("{} (in the composite part '{}')", e, component.code))?;
        conditions.push(on_side(&condition, index + 1));
    }
    Ok(conditions.join(" AND "))
}

/// The component modules name their columns `x.<column>` (and bind every value, so no other
/// `x.` can occur): on a composite row the same columns are `x.c1_<column>` and `x.c2_<column>`.
fn on_side(condition: &str, side: usize) -> String {
    condition.replace("x.", &format!("x.c{side}_"))
}

/// `a$b` into its parts, `\$` a literal dollar sign.
fn split_components(value: &str) -> Vec<String> {
    super::split_unescaped(value, '$')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_split_at_unescaped_dollars() {
        assert_eq!(split_components(r"http://loinc.org|8480-6$gt100"), ["http://loinc.org|8480-6", "gt100"]);
        assert_eq!(split_components(r"a\$b$c"), ["a$b", "c"]);
    }

    #[test]
    fn a_row_has_each_component_column_on_both_sides() {
        let expected: Vec<String> = std::iter::once("param".to_string())
            .chain([1, 2].iter().flat_map(|side| COMPONENT_COLUMNS.iter().map(move |c| format!("c{side}_{c}"))))
            .collect();
        assert_eq!(ROW_COLUMNS.to_vec(), expected);
    }

    #[test]
    fn each_side_names_its_own_columns() {
        assert_eq!(on_side("x.system = $3 AND x.code = $4", 1), "x.c1_system = $3 AND x.c1_code = $4");
        assert_eq!(on_side("$5 LIKE x.value || '%'", 2), "$5 LIKE x.c2_value || '%'");
    }
}

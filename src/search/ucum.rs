//! UCUM units that convert by a factor (FHIR R4 search.html#quantity: "the server may
//! canonicalise units"): a quantity in a unit of this table is indexed a second time in its
//! dimension's canonical unit, so `value-quantity=5|http://unitsofmeasure.org|kg` also finds
//! `5000 g`. Units converted by an offset (Cel, [degF]) are not in the table.

/// The system of quantities as the UCUM units they were recorded in.
pub const UCUM: &str = "http://unitsofmeasure.org";
/// The system of the extra index row holding a quantity in its canonical unit; never a
/// resource's own system, so searches without a unit leave these rows out.
pub const CANONICAL: &str = "urn:kiln:ucum-canonical";

/// (unit, canonical unit, factor): a value in `unit` times `factor` is the value in the
/// canonical unit.
const UNITS: &[(&str, &str, f64)] = &[
    // mass
    ("kg", "g", 1e3),
    ("g", "g", 1.0),
    ("mg", "g", 1e-3),
    ("ug", "g", 1e-6),
    ("ng", "g", 1e-9),
    ("[lb_av]", "g", 453.592_37),
    ("[oz_av]", "g", 28.349_523_125),
    // length
    ("km", "m", 1e3),
    ("m", "m", 1.0),
    ("cm", "m", 1e-2),
    ("mm", "m", 1e-3),
    ("[in_i]", "m", 0.0254),
    ("[ft_i]", "m", 0.3048),
    // volume
    ("L", "L", 1.0),
    ("dL", "L", 1e-1),
    ("mL", "L", 1e-3),
    ("uL", "L", 1e-6),
    // time
    ("s", "s", 1.0),
    ("min", "s", 60.0),
    ("h", "s", 3600.0),
    ("d", "s", 86_400.0),
    ("wk", "s", 604_800.0),
    // amount of substance
    ("mol", "mol", 1.0),
    ("mmol", "mol", 1e-3),
    ("umol", "mol", 1e-6),
    // mass concentration
    ("g/L", "g/L", 1.0),
    ("g/dL", "g/L", 10.0),
    ("mg/dL", "g/L", 1e-2),
    ("mg/L", "g/L", 1e-3),
    // amount concentration
    ("mol/L", "mol/L", 1.0),
    ("mmol/L", "mol/L", 1e-3),
    ("umol/L", "mol/L", 1e-6),
    // pressure
    ("Pa", "Pa", 1.0),
    ("kPa", "Pa", 1e3),
    ("mm[Hg]", "Pa", 133.322_387_415),
];

/// The canonical unit of a UCUM unit and the factor into it, when the table knows the unit.
pub fn canonical(unit: &str) -> Option<(&'static str, f64)> {
    UNITS.iter().find(|(code, _, _)| *code == unit).map(|(_, canonical, factor)| (*canonical, *factor))
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn units_of_one_dimension_share_a_canonical_unit() {
        assert_eq!(canonical("kg"), Some(("g", 1e3)));
        assert_eq!(canonical("mg"), Some(("g", 1e-3)));
        assert_eq!(canonical("[lb_av]").map(|(unit, _)| unit), Some("g"));
        assert_eq!(canonical("mg/dL"), Some(("g/L", 1e-2)));
        assert_eq!(canonical("Cel"), None, "offset conversions are not made");
        assert_eq!(canonical("/min"), None);
    }
}

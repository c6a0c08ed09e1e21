//! Assertions shared by the mapping tests: lossless FHIR -> model -> FHIR, and
//! model -> FHIR -> model.

use std::fmt::Debug;

use serde_json::Value;

use crate::emr::error::MappingError;

/// `to_fhir(from_fhir(r))` gives `r` back, byte for byte (key order included).
pub(crate) fn assert_lossless<M>(
    resource: &Value,
    from_fhir: impl Fn(&Value) -> Result<M, MappingError>,
    to_fhir: impl Fn(&M) -> Value,
) -> M {
    let model = from_fhir(resource).expect("realistic resource maps to the model");
    let back = to_fhir(&model);
    assert_eq!(
        serde_json::to_string_pretty(&back).unwrap(),
        serde_json::to_string_pretty(resource).unwrap(),
        "FHIR -> model -> FHIR changed the resource"
    );
    model
}

/// `from_fhir(to_fhir(m))` gives `m` back (apart from the source it now remembers).
pub(crate) fn assert_model_round_trip<M: Debug + PartialEq>(
    model: &M,
    to_fhir: impl Fn(&M) -> Value,
    from_fhir: impl Fn(&Value) -> Result<M, MappingError>,
    forget_source: impl Fn(&mut M),
) -> Value {
    let resource = to_fhir(model);
    let mut back = from_fhir(&resource).expect("written resource maps back");
    forget_source(&mut back);
    assert_eq!(&back, model, "model -> FHIR -> model changed the model");
    resource
}

//! FHIR R4 plumbing: resource JSON, the registry of types and search parameters loaded from
//! `fhir-profiles/`, structural validation, instants and Bundles (FHIR R4 4.0.1).

pub mod bundle;
pub mod instant;
pub mod json;
pub mod patch;
pub mod primitives;
pub mod registry;
pub mod subset;
pub mod validation;

/// The FHIR JSON media type (R4 http.html#mime-type).
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
pub const FHIR_VERSION: &str = "4.0.1";

/// Checks a logical id against the R4 `id` pattern `[A-Za-z0-9\-\.]{1,64}`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    #[test]
    fn id_pattern() {
        assert!(super::is_valid_id("example-1.2"));
        assert!(!super::is_valid_id(""));
        assert!(!super::is_valid_id("a/b"));
        assert!(!super::is_valid_id(&"a".repeat(65)));
    }
}

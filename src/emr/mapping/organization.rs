//! Organization <-> FHIR R4 Organization (http://hl7.org/fhir/R4/organization.html).
//!
//! Clinics, departments and insurance companies: kind -> `type` (organization-type `prov`,
//! `dept`, `ins`); clinic_type -> `type` (Kiln clinic-type code); name; NPI -> `identifier`
//! (`us-npi`); phone -> `telecom`; address; specialties -> Kiln `clinic-specialty` extensions;
//! a department's clinic -> `partOf`; inactive -> `active=false`.

use serde_json::Value;

use crate::emr::error::MappingError;
use crate::emr::json::*;
use crate::emr::mapping::practitioner::read_npi_in;
use crate::emr::mapping::*;
use crate::emr::models::{ClinicType, Npi, Organization, OrganizationKind};
use crate::emr::systems::{KILN_CLINIC_SPECIALTY_EXT, KILN_CLINIC_TYPE, ORGANIZATION_TYPE, US_NPI};

const AT: &str = "Organization";

pub fn from_fhir(resource: &Value) -> Result<Organization, MappingError> {
    let (obj, source) = resource_object(resource, AT)?;
    Ok(Organization {
        id: read_id(obj)?,
        kind: read_kind(obj)?,
        clinic_type: read_clinic_type(obj)?,
        name: opt_string(obj, "name", AT)?,
        npi: read_npi_in(obj, AT)?,
        phone: read_telecom(obj, "phone", AT)?,
        address: read_primary_address(obj, AT)?,
        specialties: read_specialties(obj)?,
        part_of: read_reference(obj, "partOf", AT)?,
        status: read_active(obj, AT)?,
        source,
    })
}

pub fn to_fhir(org: &Organization) -> Value {
    let mut out = Overlay::new(&org.source, AT);
    out.field(&org.id, read_id, put_id);
    out.field(&org.specialties, read_specialties, |o, v| put_specialties(o, v));
    out.field(&org.npi, |o| read_npi_in(o, AT), |o, npi| put_identifier(o, US_NPI, npi.as_ref().map(Npi::as_str)));
    out.field(&org.status, |o| read_active(o, AT), put_active);
    out.field(&org.kind, read_kind, put_kind);
    out.field(&org.clinic_type, read_clinic_type, put_clinic_type);
    out.field(&org.name, |o| opt_string(o, "name", AT), |o, n| put_str(o, "name", n.as_deref()));
    out.field(&org.phone, |o| read_telecom(o, "phone", AT), |o, v| put_telecom(o, "phone", v.as_deref()));
    out.field(&org.address, |o| read_primary_address(o, AT), |o, a| put_primary_address(o, a.as_ref()));
    out.field(&org.part_of, |o| read_reference(o, "partOf", AT), |o, r| put_reference(o, "partOf", r.as_deref()));
    out.finish()
}

fn kind_code(kind: OrganizationKind) -> (&'static str, &'static str) {
    match kind {
        OrganizationKind::Clinic => ("prov", "Healthcare Provider"),
        OrganizationKind::Department => ("dept", "Hospital Department"),
        OrganizationKind::InsuranceCompany => ("ins", "Insurance Company"),
    }
}

fn kind_of(concept: &Value) -> Option<OrganizationKind> {
    OrganizationKind::ALL.iter().copied().find(|k| has_coding(concept, ORGANIZATION_TYPE, kind_code(*k).0))
}

fn read_kind(obj: &Object) -> Result<Option<OrganizationKind>, MappingError> {
    Ok(list(obj, "type", AT)?.iter().find_map(kind_of))
}

fn put_kind(obj: &mut Object, kind: &Option<OrganizationKind>) {
    let concept = |k: &OrganizationKind| {
        let (code, display) = kind_code(*k);
        coded(ORGANIZATION_TYPE, code, Some(display))
    };
    overlay_one(obj, "type", |t| kind_of(t).is_some(), |_| true, kind.as_ref(), |t, k| *t = concept(k), concept);
}

fn is_clinic_type(concept: &Value) -> bool {
    coding_code(concept, KILN_CLINIC_TYPE).is_some()
}

fn read_clinic_type(obj: &Object) -> Result<Option<ClinicType>, MappingError> {
    let types = list(obj, "type", AT)?;
    let Some((i, concept)) = pick_one(types, is_clinic_type, |_| true) else {
        return Ok(None);
    };
    let code = coding_code(concept, KILN_CLINIC_TYPE).unwrap_or_default();
    ClinicType::parse(code)
        .map(Some)
        .ok_or_else(|| MappingError::invalid(format!("{AT}.type[{i}]"), format!("unknown clinic type `{code}`")))
}

fn put_clinic_type(obj: &mut Object, clinic_type: &Option<ClinicType>) {
    let concept = |t: &ClinicType| coded(KILN_CLINIC_TYPE, t.code(), None);
    overlay_one(obj, "type", is_clinic_type, |_| true, clinic_type.as_ref(), |t, c| *t = concept(c), concept);
}

fn is_specialty(extension: &Value) -> bool {
    str_of(extension, "url") == Some(KILN_CLINIC_SPECIALTY_EXT)
}

fn read_specialties(obj: &Object) -> Result<Vec<String>, MappingError> {
    Ok(list(obj, "extension", AT)?
        .iter()
        .filter(|e| is_specialty(e))
        .filter_map(|e| e.get("valueCodeableConcept").and_then(concept_label))
        .collect())
}

fn put_specialties(obj: &mut Object, specialties: &[String]) {
    let extension =
        |s: &String| object(vec![("url", KILN_CLINIC_SPECIALTY_EXT.into()), ("valueCodeableConcept", text_concept(s))]);
    overlay_list(
        obj,
        "extension",
        is_specialty,
        specialties,
        |e, s| e.get("valueCodeableConcept").and_then(concept_label).as_ref() == Some(s),
        |e, s| *e = extension(s),
        extension,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emr::mapping::test_support::*;
    use crate::emr::models::{PostalAddress, RecordStatus};
    use serde_json::json;

    fn realistic() -> Value {
        json!({
            "resourceType": "Organization",
            "id": "clinic-1",
            "meta": {"versionId": "4", "lastUpdated": "2024-03-03T03:03:03Z", "tag": [{"system": "urn:kiln:tenant", "code": "clinic-1"}]},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Hill Eye Clinic</div>"},
            "extension": [
                {"url": "https://kiln.example.org/fhir/StructureDefinition/clinic-specialty", "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "394594003", "display": "Ophthalmology"}]}},
                {"url": "http://example.org/baa-signed", "valueDate": "2023-01-15"},
                {"url": "https://kiln.example.org/fhir/StructureDefinition/clinic-specialty", "valueCodeableConcept": {"text": "Orthopedics"}}
            ],
            "identifier": [
                {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1144221847"},
                {"system": "urn:oid:2.16.840.1.113883.4.4", "value": "12-3456789", "type": {"text": "TIN"}}
            ],
            "active": true,
            "type": [
                {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov", "display": "Healthcare Provider"}]},
                {"coding": [{"system": "https://kiln.example.org/fhir/CodeSystem/clinic-type", "code": "specialty"}], "text": "Specialty clinic"}
            ],
            "name": "Hill Eye Clinic",
            "alias": ["HEC"],
            "telecom": [{"system": "phone", "value": "+1 512 555 0100", "use": "work"}, {"system": "url", "value": "https://hill.example.org"}],
            "address": [{"use": "work", "line": ["100 Congress Ave"], "city": "Austin", "state": "TX", "postalCode": "78701", "country": "US"}],
            "contact": [{"purpose": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/contactentity-type", "code": "ADMIN"}]}, "name": {"text": "Office Manager"}}]
        })
    }

    #[test]
    fn realistic_clinic_is_lossless() {
        let org = assert_lossless(&realistic(), from_fhir, to_fhir);
        assert_eq!(org.kind, Some(OrganizationKind::Clinic));
        assert_eq!(org.clinic_type, Some(ClinicType::Specialty));
        assert_eq!(org.specialties, vec!["Ophthalmology".to_owned(), "Orthopedics".to_owned()]);
        assert_eq!(org.npi.unwrap().as_str(), "1144221847");
        assert_eq!(org.address.unwrap().city.as_deref(), Some("Austin"));
    }

    #[test]
    fn dropping_a_specialty_keeps_other_extensions() {
        let original = realistic();
        let mut org = from_fhir(&original).unwrap();
        org.specialties.truncate(1);
        let out = to_fhir(&org);
        assert_eq!(out["extension"].as_array().unwrap().len(), 2);
        assert_eq!(out["extension"][1], original["extension"][1]);
    }

    #[test]
    fn seed_department_round_trips() {
        let seed = Organization {
            kind: Some(OrganizationKind::Department),
            name: Some("Cardiology".into()),
            part_of: Some("Organization/clinic-1".into()),
            phone: Some("555-0111".into()),
            address: Some(PostalAddress { lines: vec!["2nd floor".into()], ..Default::default() }),
            status: RecordStatus::Active,
            ..Default::default()
        };
        let fhir = assert_model_round_trip(&seed, to_fhir, from_fhir, |o| o.source = Default::default());
        assert_eq!(fhir["type"][0]["coding"][0]["code"], "dept");
        assert_eq!(fhir["partOf"], json!({"reference": "Organization/clinic-1"}));

        let clinic = Organization {
            kind: Some(OrganizationKind::Clinic),
            clinic_type: Some(ClinicType::SurgeryCenter),
            name: Some("Lake Surgery".into()),
            specialties: vec!["Cosmetic".into()],
            ..Default::default()
        };
        let fhir = assert_model_round_trip(&clinic, to_fhir, from_fhir, |o| o.source = Default::default());
        assert_eq!(fhir["extension"][0]["valueCodeableConcept"], json!({"text": "Cosmetic"}));
        assert_eq!(fhir["type"][1]["coding"][0]["code"], "surgery_center");
    }
}

//! Practitioner <-> FHIR R4 Practitioner (http://hl7.org/fhir/R4/practitioner.html).
//!
//! NPI -> `identifier` system `us-npi`; DEA -> `identifier` typed v2-0203 `DEA` in the DEA
//! system; names/phone/email -> `name`/`telecom`; each credential with its license ->
//! one `qualification` (`code` = credential, `identifier` = license number, `issuer.display` =
//! license state); inactive -> `active=false`.

use serde_json::Value;

use crate::emr::error::MappingError;
use crate::emr::json::*;
use crate::emr::mapping::*;
use crate::emr::models::{DeaNumber, Npi, Practitioner, Qualification};
use crate::emr::systems::{US_DEA, US_DEA_THO, US_NPI, V2_IDENTIFIER_TYPE};

const AT: &str = "Practitioner";

pub fn from_fhir(resource: &Value) -> Result<Practitioner, MappingError> {
    let (obj, source) = resource_object(resource, AT)?;
    Ok(Practitioner {
        id: read_id(obj)?,
        npi: read_npi(obj)?,
        dea_number: read_dea(obj)?,
        name: read_primary_name(obj, AT)?,
        phone: read_telecom(obj, "phone", AT)?,
        email: read_telecom(obj, "email", AT)?,
        qualifications: read_qualifications(obj)?,
        status: read_active(obj, AT)?,
        source,
    })
}

pub fn to_fhir(practitioner: &Practitioner) -> Value {
    let mut out = Overlay::new(&practitioner.source, AT);
    out.field(&practitioner.id, read_id, put_id);
    out.field(&practitioner.npi, read_npi, |o, npi| put_identifier(o, US_NPI, npi.as_ref().map(Npi::as_str)));
    out.field(&practitioner.dea_number, read_dea, put_dea);
    out.field(&practitioner.status, |o| read_active(o, AT), put_active);
    out.field(&practitioner.name, |o| read_primary_name(o, AT), |o, n| put_primary_name(o, n.as_ref()));
    out.field(&practitioner.phone, |o| read_telecom(o, "phone", AT), |o, v| put_telecom(o, "phone", v.as_deref()));
    out.field(&practitioner.email, |o| read_telecom(o, "email", AT), |o, v| put_telecom(o, "email", v.as_deref()));
    out.field(&practitioner.qualifications, read_qualifications, |o, v| put_qualifications(o, v));
    out.finish()
}

/// The NPI identifier of a Practitioner or Organization.
pub(crate) fn read_npi_in(obj: &Object, at: &str) -> Result<Option<Npi>, MappingError> {
    read_identifier_as(obj, US_NPI, at, Npi::parse)
}

fn read_npi(obj: &Object) -> Result<Option<Npi>, MappingError> {
    read_npi_in(obj, AT)
}

pub(crate) fn is_dea_identifier(identifier: &Value) -> bool {
    matches!(str_of(identifier, "system"), Some(US_DEA | US_DEA_THO))
        || identifier.get("type").is_some_and(|t| has_coding(t, V2_IDENTIFIER_TYPE, "DEA"))
}

fn read_dea(obj: &Object) -> Result<Option<DeaNumber>, MappingError> {
    let ids = list(obj, "identifier", AT)?;
    let Some((i, id)) = pick_one(ids, is_dea_identifier, |_| true) else {
        return Ok(None);
    };
    let at = format!("{AT}.identifier[{i}].value");
    let text = str_of(id, "value").ok_or_else(|| MappingError::missing(&at))?;
    DeaNumber::parse(text).map(Some).map_err(|e| MappingError::invalid(at, e.to_string()))
}

fn put_dea(obj: &mut Object, dea: &Option<DeaNumber>) {
    overlay_one(
        obj,
        "identifier",
        is_dea_identifier,
        |_| true,
        dea.as_ref(),
        |id, d| put_str(object_mut(id), "value", Some(d.as_str())),
        |d| {
            object(vec![
                ("type", coded(V2_IDENTIFIER_TYPE, "DEA", Some("Drug Enforcement Administration registration number"))),
                ("system", US_DEA.into()),
                ("value", d.as_str().into()),
            ])
        },
    );
}

fn read_qualification(value: &Value, at: &str) -> Result<Qualification, MappingError> {
    let q = as_object(value, at)?;
    let code = opt_object(q, "code", at)?
        .and_then(|cc| concept_label(&Value::Object(cc.clone())))
        .ok_or_else(|| MappingError::missing(format!("{at}.code")))?;
    let license_number = match list(q, "identifier", at)?.first() {
        None => None,
        Some(id) => opt_string(as_object(id, at)?, "value", &format!("{at}.identifier[0]"))?,
    };
    let license_state = match opt_object(q, "issuer", at)? {
        None => None,
        Some(issuer) => opt_string(issuer, "display", &format!("{at}.issuer"))?,
    };
    Ok(Qualification { code, license_number, license_state })
}

fn read_qualifications(obj: &Object) -> Result<Vec<Qualification>, MappingError> {
    list(obj, "qualification", AT)?
        .iter()
        .enumerate()
        .map(|(i, q)| read_qualification(q, &format!("{AT}.qualification[{i}]")))
        .collect()
}

fn write_qualification(value: &mut Value, wanted: &Qualification) {
    let q = object_mut(value);
    put_concept_text(q, "code", Some(&wanted.code));
    match &wanted.license_number {
        None => remove(q, "identifier"),
        Some(number) => put_str(first_mut(q, "identifier"), "value", Some(number)),
    }
    put_str(child(q, "issuer"), "display", wanted.license_state.as_deref());
    tidy(q, "issuer");
}

fn put_qualifications(obj: &mut Object, wanted: &[Qualification]) {
    overlay_list(
        obj,
        "qualification",
        |_| true,
        wanted,
        |v, q| read_qualification(v, "").ok().as_ref() == Some(q),
        write_qualification,
        |q| {
            let mut v = Value::Object(Object::new());
            write_qualification(&mut v, q);
            v
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emr::mapping::test_support::*;
    use crate::emr::models::{PersonName, RecordStatus};
    use serde_json::json;

    fn realistic() -> Value {
        json!({
            "resourceType": "Practitioner",
            "id": "dr-1",
            "meta": {"versionId": "1", "lastUpdated": "2024-01-01T00:00:00Z"},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Dr Adam Careful</div>"},
            "extension": [{"url": "http://example.org/fhir/StructureDefinition/years-in-practice", "valueInteger": 12}],
            "identifier": [
                {"use": "official", "system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"},
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "DEA"}]},
                 "system": "http://terminology.hl7.org/NamingSystem/usdeanumber", "value": "BC1234563"},
                {"system": "urn:oid:2.16.528.1.1007.3.1", "value": "938273695"}
            ],
            "active": true,
            "name": [{"use": "official", "family": "Careful", "given": ["Adam"], "prefix": ["Dr"], "suffix": ["MD"]},
                     {"use": "nickname", "given": ["Ad"]}],
            "telecom": [{"system": "phone", "value": "(03) 5555 6473", "use": "work"},
                        {"system": "fax", "value": "(03) 5555 6474"},
                        {"system": "email", "value": "adam.careful@example.org", "use": "work"}],
            "gender": "male",
            "birthDate": "1971-11-07",
            "qualification": [
                {"identifier": [{"system": "http://example.org/tx-medical-board", "value": "TX-M-12345"}],
                 "code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0360/2.7", "code": "MD", "display": "Doctor of Medicine"}], "text": "MD"},
                 "period": {"start": "1995"},
                 "issuer": {"reference": "Organization/tx-board", "display": "TX"}},
                {"code": {"text": "ACLS"}}
            ],
            "communication": [{"text": "English"}]
        })
    }

    #[test]
    fn realistic_practitioner_is_lossless() {
        let p = assert_lossless(&realistic(), from_fhir, to_fhir);
        assert_eq!(p.npi.as_ref().unwrap().as_str(), "1234567893");
        assert_eq!(p.dea_number.as_ref().unwrap().as_str(), "BC1234563");
        assert_eq!(p.license_number(), Some("TX-M-12345"));
        assert_eq!(p.qualifications[0].license_state.as_deref(), Some("TX"));
        assert_eq!(p.qualifications[1].code, "ACLS");
        assert_eq!(p.email.as_deref(), Some("adam.careful@example.org"));
    }

    #[test]
    fn changing_a_license_keeps_the_rest_of_the_qualification() {
        let original = realistic();
        let mut p = from_fhir(&original).unwrap();
        p.qualifications[0].license_number = Some("TX-M-99999".into());
        p.qualifications.push(Qualification { code: "DEA-X".into(), ..Default::default() });
        let out = to_fhir(&p);
        let q = &out["qualification"][0];
        assert_eq!(q["identifier"][0], json!({"system": "http://example.org/tx-medical-board", "value": "TX-M-99999"}));
        assert_eq!(q["code"], original["qualification"][0]["code"]);
        assert_eq!(q["issuer"], original["qualification"][0]["issuer"]);
        assert_eq!(out["qualification"][1], original["qualification"][1]);
        assert_eq!(out["qualification"][2], json!({"code": {"text": "DEA-X"}}));
    }

    #[test]
    fn seed_practitioner_round_trips() {
        let seed = Practitioner {
            npi: Some(Npi::parse("1234567893").unwrap()),
            dea_number: Some(DeaNumber::parse("AB1234563").unwrap()),
            name: Some(PersonName::new("Gregory", "House")),
            phone: Some("555-0101".into()),
            email: Some("house@example.org".into()),
            qualifications: vec![Qualification {
                code: "MD".into(),
                license_number: Some("NJ-555".into()),
                license_state: Some("NJ".into()),
            }],
            status: RecordStatus::Inactive,
            ..Default::default()
        };
        let fhir = assert_model_round_trip(&seed, to_fhir, from_fhir, |p| p.source = Default::default());
        assert_eq!(fhir["identifier"][0], json!({"system": US_NPI, "value": "1234567893"}));
        assert_eq!(fhir["identifier"][1]["system"], US_DEA);
        assert_eq!(fhir["identifier"][1]["type"]["coding"][0]["code"], "DEA");
        assert_eq!(
            fhir["qualification"][0],
            json!({"code": {"text": "MD"}, "identifier": [{"value": "NJ-555"}], "issuer": {"display": "NJ"}})
        );
        assert_eq!(fhir["active"], false);
    }

    #[test]
    fn malformed_npi_and_dea_are_refused() {
        let mut r = realistic();
        r["identifier"][0]["value"] = json!("12345");
        assert_eq!(from_fhir(&r).unwrap_err().expression(), Some("Practitioner.identifier[0].value"));
        let mut r = realistic();
        r["identifier"][1]["value"] = json!("1234");
        assert_eq!(from_fhir(&r).unwrap_err().expression(), Some("Practitioner.identifier[1].value"));
        let mut r = realistic();
        r["qualification"][1] = json!({"period": {"start": "2000"}});
        assert_eq!(from_fhir(&r).unwrap_err().expression(), Some("Practitioner.qualification[1].code"));
    }
}

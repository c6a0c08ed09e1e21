//! Patient <-> FHIR R4 Patient (http://hl7.org/fhir/R4/patient.html).
//!
//! MRN -> `identifier` typed `MR` (v2-0203) in the clinic's system; SSN -> `identifier` system
//! `us-ssn`; name -> the official `name`; `gender` with `prefer_not_to_say` = `unknown`;
//! phone/email -> `telecom`; address -> the home `address`; emergency contact -> the `contact`
//! whose relationship is v2-0131 `C` (the seed relationship as its text); primary doctor ->
//! `generalPractitioner`; clinic -> `managingOrganization`; deceased -> `deceased[x]`;
//! inactive -> `active=false`; `ehr_link` -> the `seealso` `link`, the remote identifier in
//! `link.other.identifier`.

use serde_json::Value;

use crate::emr::error::MappingError;
use crate::emr::json::*;
use crate::emr::mapping::*;
use crate::emr::models::{
    Deceased, EhrLink, EmergencyContact, ForeignIdentifier, Gender, Mrn, MrnIdentifier, Patient, Ssn,
};
use crate::emr::systems::{US_SSN, V2_CONTACT_ROLE, V2_IDENTIFIER_TYPE};

const AT: &str = "Patient";

pub fn from_fhir(resource: &Value) -> Result<Patient, MappingError> {
    let (obj, source) = resource_object(resource, AT)?;
    Ok(Patient {
        id: read_id(obj)?,
        mrn: read_mrn(obj)?,
        ssn: read_ssn(obj)?,
        name: read_primary_name(obj, AT)?,
        date_of_birth: read_date(obj, "birthDate", AT)?,
        gender: read_gender(obj)?,
        phone: read_telecom(obj, "phone", AT)?,
        email: read_telecom(obj, "email", AT)?,
        address: read_primary_address(obj, AT)?,
        emergency_contact: read_emergency_contact(obj)?,
        primary_doctor: read_primary_doctor(obj)?,
        clinic: read_reference(obj, "managingOrganization", AT)?,
        deceased: read_deceased(obj)?,
        status: read_active(obj, AT)?,
        ehr_link: read_ehr_link(obj)?,
        source,
    })
}

pub fn to_fhir(patient: &Patient) -> Value {
    let mut out = Overlay::new(&patient.source, AT);
    out.field(&patient.id, read_id, put_id);
    out.field(&patient.mrn, read_mrn, put_mrn);
    out.field(&patient.ssn, read_ssn, |o, ssn| put_identifier(o, US_SSN, ssn.as_ref().map(Ssn::expose)));
    out.field(&patient.status, |o| read_active(o, AT), put_active);
    out.field(&patient.name, |o| read_primary_name(o, AT), |o, n| put_primary_name(o, n.as_ref()));
    out.field(&patient.phone, |o| read_telecom(o, "phone", AT), |o, v| put_telecom(o, "phone", v.as_deref()));
    out.field(&patient.email, |o| read_telecom(o, "email", AT), |o, v| put_telecom(o, "email", v.as_deref()));
    out.field(&patient.gender, read_gender, |o, g| put_str(o, "gender", g.map(gender_code)));
    out.field(
        &patient.date_of_birth,
        |o| read_date(o, "birthDate", AT),
        |o, d| put_opt(o, "birthDate", d.map(|d| d.to_string().into())),
    );
    out.field(&patient.deceased, read_deceased, put_deceased);
    out.field(&patient.address, |o| read_primary_address(o, AT), |o, a| put_primary_address(o, a.as_ref()));
    out.field(&patient.emergency_contact, read_emergency_contact, put_emergency_contact);
    out.field(&patient.primary_doctor, read_primary_doctor, put_primary_doctor);
    out.field(
        &patient.clinic,
        |o| read_reference(o, "managingOrganization", AT),
        |o, c| put_reference(o, "managingOrganization", c.as_deref()),
    );
    out.field(&patient.ehr_link, read_ehr_link, put_ehr_link);
    out.finish()
}

fn gender_code(gender: Gender) -> &'static str {
    match gender {
        Gender::Male => "male",
        Gender::Female => "female",
        Gender::Other => "other",
        Gender::PreferNotToSay => "unknown",
    }
}

fn read_gender(obj: &Object) -> Result<Option<Gender>, MappingError> {
    read_code(obj, "gender", AT, |code| match code {
        "male" => Some(Gender::Male),
        "female" => Some(Gender::Female),
        "other" => Some(Gender::Other),
        "unknown" => Some(Gender::PreferNotToSay),
        _ => None,
    })
}

/// An identifier typed `MR` in v2-0203: the medical record number.
pub(crate) fn is_mrn_identifier(identifier: &Value) -> bool {
    identifier.get("type").is_some_and(|t| has_coding(t, V2_IDENTIFIER_TYPE, "MR"))
}

/// MR identifiers without a value (only a data-absent extension) are not an MRN.
fn has_mrn_value(identifier: &Value) -> bool {
    is_mrn_identifier(identifier) && str_of(identifier, "value").is_some()
}

fn read_mrn(obj: &Object) -> Result<Option<MrnIdentifier>, MappingError> {
    let ids = list(obj, "identifier", AT)?;
    let Some((i, id)) = pick_one(ids, has_mrn_value, |_| true) else {
        return Ok(None);
    };
    let at = format!("{AT}.identifier[{i}]");
    let id = as_object(id, &at)?;
    let value = opt_string(id, "value", &at)?.unwrap_or_default();
    Ok(Some(MrnIdentifier {
        system: opt_string(id, "system", &at)?,
        value: Mrn::parse(&value).map_err(|e| MappingError::invalid(format!("{at}.value"), e.to_string()))?,
    }))
}

/// A new MR identifier, as FHIR examples spell it.
pub(crate) fn mrn_identifier(system: Option<&str>, mrn: &Mrn) -> Value {
    let mut id = object(vec![
        ("use", "usual".into()),
        ("type", coded_with_text(V2_IDENTIFIER_TYPE, "MR", Some("Medical record number"), "MRN")),
    ]);
    let o = object_mut(&mut id);
    put_str(o, "system", system);
    put_str(o, "value", Some(mrn.as_str()));
    id
}

fn put_mrn(obj: &mut Object, mrn: &Option<MrnIdentifier>) {
    overlay_one(
        obj,
        "identifier",
        is_mrn_identifier,
        |_| true,
        mrn.as_ref(),
        |id, m| {
            let o = object_mut(id);
            put_str(o, "system", m.system.as_deref());
            put_str(o, "value", Some(m.value.as_str()));
        },
        |m| mrn_identifier(m.system.as_deref(), &m.value),
    );
}

fn read_ssn(obj: &Object) -> Result<Option<Ssn>, MappingError> {
    read_identifier_as(obj, US_SSN, AT, Ssn::parse)
}

fn read_deceased(obj: &Object) -> Result<Deceased, MappingError> {
    if let Some(date) = read_datetime(obj, "deceasedDateTime", AT)? {
        return Ok(Deceased::On(date));
    }
    Ok(match opt_bool(obj, "deceasedBoolean", AT)? {
        Some(true) => Deceased::Yes,
        Some(false) | None => Deceased::No,
    })
}

fn put_deceased(obj: &mut Object, deceased: &Deceased) {
    match deceased {
        Deceased::No => {
            remove(obj, "deceasedBoolean");
            remove(obj, "deceasedDateTime");
        }
        Deceased::Yes => {
            remove(obj, "deceasedDateTime");
            put_bool(obj, "deceasedBoolean", Some(true));
        }
        Deceased::On(date) => {
            remove(obj, "deceasedBoolean");
            put_datetime(obj, "deceasedDateTime", Some(date));
        }
    }
}

fn is_emergency_contact(contact: &Value) -> bool {
    items(contact, "relationship").iter().any(|r| has_coding(r, V2_CONTACT_ROLE, "C"))
}

fn read_emergency_contact(obj: &Object) -> Result<Option<EmergencyContact>, MappingError> {
    let contacts = list(obj, "contact", AT)?;
    let Some((i, contact)) = pick_one(contacts, is_emergency_contact, |_| true) else {
        return Ok(None);
    };
    let at = format!("{AT}.contact[{i}]");
    let c = as_object(contact, &at)?;
    let relationship = items(contact, "relationship")
        .iter()
        .find(|r| has_coding(r, V2_CONTACT_ROLE, "C"))
        .and_then(|r| str_of(r, "text"))
        .map(str::to_owned);
    let name = contact_name(c, &at)?;
    Ok(Some(EmergencyContact { name, relationship, phone: read_telecom(c, "phone", &at)? }))
}

/// The contact's name as one string: its text, else given and family names joined.
fn contact_name(contact: &Object, at: &str) -> Result<Option<String>, MappingError> {
    let Some(n) = opt_object(contact, "name", at)? else {
        return Ok(None);
    };
    let at = format!("{at}.name");
    if let Some(text) = opt_string(n, "text", &at)? {
        return Ok(Some(text));
    }
    let parts = read_human_name(&Value::Object(n.clone()), &at)?;
    let joined: Vec<String> = parts.given.into_iter().chain(parts.family).collect();
    Ok((!joined.is_empty()).then(|| joined.join(" ")))
}

fn write_emergency_contact(contact: &mut Value, wanted: &EmergencyContact) {
    let c = object_mut(contact);
    let relationships = child_list(c, "relationship");
    let position = relationships.iter().position(|r| has_coding(r, V2_CONTACT_ROLE, "C"));
    let relationship = match position {
        Some(i) => &mut relationships[i],
        None => {
            relationships.push(coded(V2_CONTACT_ROLE, "C", Some("Emergency Contact")));
            relationships.last_mut().expect("just pushed")
        }
    };
    put_str(object_mut(relationship), "text", wanted.relationship.as_deref());

    if contact_name(c, "").ok().flatten() != wanted.name {
        put_opt(c, "name", wanted.name.as_ref().map(|n| object(vec![("text", n.as_str().into())])));
    }
    put_telecom(c, "phone", wanted.phone.as_deref());
}

fn put_emergency_contact(obj: &mut Object, contact: &Option<EmergencyContact>) {
    overlay_one(
        obj,
        "contact",
        is_emergency_contact,
        |_| true,
        contact.as_ref(),
        write_emergency_contact,
        |c| {
            let mut v = Value::Object(Object::new());
            write_emergency_contact(&mut v, c);
            v
        },
    );
}

fn read_primary_doctor(obj: &Object) -> Result<Option<String>, MappingError> {
    match list(obj, "generalPractitioner", AT)?.first() {
        None => Ok(None),
        Some(r) => opt_string(as_object(r, AT)?, "reference", &format!("{AT}.generalPractitioner[0]")),
    }
}

fn put_primary_doctor(obj: &mut Object, doctor: &Option<String>) {
    match doctor {
        None => remove(obj, "generalPractitioner"),
        Some(d) => {
            let refs = child_list(obj, "generalPractitioner");
            match refs.first_mut() {
                Some(first) if str_of(first, "reference") == Some(d) => {}
                Some(first) => *first = reference(d),
                None => refs.push(reference(d)),
            }
        }
    }
}

fn is_see_also(link: &Value) -> bool {
    str_of(link, "type") == Some("seealso")
}

/// A see-also link naming its target by literal reference (not by identifier only).
fn is_ehr_link(link: &Value) -> bool {
    is_see_also(link) && link.get("other").and_then(|o| str_of(o, "reference")).is_some()
}

fn read_ehr_link(obj: &Object) -> Result<Option<EhrLink>, MappingError> {
    let links = list(obj, "link", AT)?;
    let Some((i, link)) = pick_one(links, is_ehr_link, |_| true) else {
        return Ok(None);
    };
    let at = format!("{AT}.link[{i}].other");
    let other = opt_object(as_object(link, &at)?, "other", &at)?.ok_or_else(|| MappingError::missing(&at))?;
    let target =
        opt_string(other, "reference", &at)?.ok_or_else(|| MappingError::missing(format!("{at}.reference")))?;
    let remote_identifier = match opt_object(other, "identifier", &at)? {
        None => None,
        Some(id) => {
            let id_at = format!("{at}.identifier");
            Some(ForeignIdentifier {
                system: opt_string(id, "system", &id_at)?,
                value: opt_string(id, "value", &id_at)?
                    .ok_or_else(|| MappingError::missing(format!("{id_at}.value")))?,
            })
        }
    };
    Ok(Some(EhrLink { target, remote_identifier }))
}

fn write_ehr_link(link: &mut Value, wanted: &EhrLink) {
    let l = object_mut(link);
    let other = child(l, "other");
    put_str(other, "reference", Some(&wanted.target));
    match &wanted.remote_identifier {
        None => remove(other, "identifier"),
        Some(remote) => {
            let id = child(other, "identifier");
            put_str(id, "system", remote.system.as_deref());
            put_str(id, "value", Some(&remote.value));
        }
    }
    put_str(l, "type", Some("seealso"));
}

fn put_ehr_link(obj: &mut Object, link: &Option<EhrLink>) {
    overlay_one(
        obj,
        "link",
        is_see_also,
        |_| true,
        link.as_ref(),
        write_ehr_link,
        |l| {
            let mut v = Value::Object(Object::new());
            write_ehr_link(&mut v, l);
            v
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emr::mapping::test_support::*;
    use crate::emr::models::{FhirDate, FhirDateTime, PersonName, PostalAddress, RecordStatus};
    use serde_json::json;

    fn realistic() -> Value {
        json!({
            "resourceType": "Patient",
            "id": "pat-1",
            "meta": {
                "versionId": "3",
                "lastUpdated": "2024-05-01T10:00:00.000Z",
                "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"],
                "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]
            },
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Amy Shaw</div>"},
            "contained": [{"resourceType": "RelatedPerson", "id": "rp1", "patient": {"reference": "#"}, "name": [{"text": "Bob Shaw"}]}],
            "extension": [
                {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race", "extension": [
                    {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3", "display": "White"}},
                    {"url": "text", "valueString": "White"}
                ]},
                {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": "F"}
            ],
            "identifier": [
                {"use": "usual", "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR", "display": "Medical record number"}], "text": "MRN"},
                 "system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345", "period": {"start": "2001-05-06"},
                 "assigner": {"display": "Acme Healthcare"}},
                {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "123-45-6789"},
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "DL"}]}, "system": "urn:oid:2.16.840.1.113883.4.3.25", "value": "S99985931"}
            ],
            "active": true,
            "name": [
                {"use": "maiden", "family": "Baxter", "given": ["Amy"]},
                {"use": "official", "family": "Shaw", "given": ["Amy", "V."], "prefix": ["Ms."], "period": {"start": "2010"}},
                {"use": "nickname", "given": ["Ames"]}
            ],
            "telecom": [
                {"system": "phone", "value": "555-555-5555", "use": "home", "rank": 2},
                {"system": "phone", "value": "555-555-0000", "use": "mobile"},
                {"system": "email", "value": "amy.shaw@example.com", "_value": {"extension": [{"url": "http://example.org/verified", "valueBoolean": true}]}}
            ],
            "gender": "unknown",
            "birthDate": "1987-02",
            "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1987-02-20T09:30:00-05:00"}]},
            "deceasedBoolean": false,
            "address": [
                {"use": "work", "line": ["1 Work Pl"], "city": "Austin", "state": "TX"},
                {"use": "home", "line": ["49 Meadow St", "Apt 2"], "city": "Mounds", "state": "OK", "postalCode": "74047", "country": "US",
                 "period": {"start": "1974-12-25"}}
            ],
            "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]},
            "contact": [
                {"relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "N", "display": "Next-of-Kin"}]}],
                 "name": {"family": "Shaw", "given": ["Carl"]}},
                {"relationship": [
                    {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "C", "display": "Emergency Contact"}], "text": "spouse"},
                    {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "HUSB"}]}
                 ],
                 "name": {"family": "Shaw", "given": ["Bob"]},
                 "telecom": [{"system": "phone", "value": "+1-555-0100", "use": "mobile"}],
                 "gender": "male"}
            ],
            "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-US"}]}, "preferred": true}],
            "generalPractitioner": [{"reference": "Practitioner/dr-1", "display": "Dr Adam Careful"}, {"reference": "Organization/clinic-1"}],
            "managingOrganization": {"reference": "Organization/clinic-1"},
            "link": [
                {"other": {"reference": "Patient/old-9"}, "type": "replaces"},
                {"other": {"reference": "https://ehr.example.org/fhir/Patient/778", "identifier": {"system": "https://ehr.example.org/mrn", "value": "E-778"}}, "type": "seealso"}
            ]
        })
    }

    #[test]
    fn realistic_patient_is_lossless() {
        assert_lossless(&realistic(), from_fhir, to_fhir);
    }

    #[test]
    fn reads_the_seed_fields() {
        let p = from_fhir(&realistic()).unwrap();
        assert_eq!(p.id.as_deref(), Some("pat-1"));
        let mrn = p.mrn.as_ref().unwrap();
        assert_eq!(mrn.value.as_str(), "12345");
        assert_eq!(mrn.system.as_deref(), Some("urn:oid:1.2.36.146.595.217.0.1"));
        assert_eq!(p.ssn.as_ref().unwrap().expose(), "123-45-6789");
        assert_eq!(p.name, Some(PersonName { given: vec!["Amy".into(), "V.".into()], family: Some("Shaw".into()) }));
        assert_eq!(p.gender, Some(Gender::PreferNotToSay));
        assert_eq!(p.date_of_birth, Some(FhirDate::YearMonth(1987, 2)));
        assert_eq!(p.phone.as_deref(), Some("555-555-5555"));
        assert_eq!(p.email.as_deref(), Some("amy.shaw@example.com"));
        assert_eq!(p.address.as_ref().unwrap().city.as_deref(), Some("Mounds"));
        assert_eq!(
            p.emergency_contact,
            Some(EmergencyContact {
                name: Some("Bob Shaw".into()),
                relationship: Some("spouse".into()),
                phone: Some("+1-555-0100".into())
            })
        );
        assert_eq!(p.primary_doctor.as_deref(), Some("Practitioner/dr-1"));
        assert_eq!(p.clinic.as_deref(), Some("Organization/clinic-1"));
        assert_eq!(p.deceased, Deceased::No);
        assert_eq!(p.status, RecordStatus::Active);
        let link = p.ehr_link.unwrap();
        assert_eq!(link.target, "https://ehr.example.org/fhir/Patient/778");
        assert_eq!(link.remote_identifier.unwrap().value, "E-778");
    }

    #[test]
    fn editing_fields_changes_only_their_elements() {
        let original = realistic();
        let mut p = from_fhir(&original).unwrap();
        p.phone = Some("555-111-2222".into());
        p.name.as_mut().unwrap().family = Some("Shaw-Baxter".into());
        p.status = RecordStatus::Inactive;
        p.deceased = Deceased::On(FhirDateTime::parse("2024-06-01").unwrap());
        p.emergency_contact.as_mut().unwrap().phone = Some("+1-555-0199".into());
        let out = to_fhir(&p);

        assert_eq!(out["telecom"][0], json!({"system": "phone", "value": "555-111-2222", "use": "home", "rank": 2}));
        assert_eq!(out["telecom"][1], original["telecom"][1]);
        assert_eq!(out["name"][1]["family"], "Shaw-Baxter");
        assert_eq!(out["name"][1]["prefix"], json!(["Ms."]));
        assert_eq!(out["name"][0], original["name"][0]);
        assert_eq!(out["active"], false);
        assert_eq!(out["deceasedDateTime"], "2024-06-01");
        assert!(out.get("deceasedBoolean").is_none());
        assert_eq!(out["contact"][1]["telecom"][0]["value"], "+1-555-0199");
        assert_eq!(out["contact"][1]["relationship"], original["contact"][1]["relationship"]);
        for untouched in ["extension", "contained", "text", "meta", "identifier", "address", "link", "_birthDate"] {
            assert_eq!(out[untouched], original[untouched], "{untouched}");
        }
    }

    fn seed_patient() -> Patient {
        Patient {
            id: None,
            mrn: Some(MrnIdentifier { system: Some("urn:kiln:clinic-7:mrn".into()), value: Mrn::generated(2024, 7) }),
            ssn: Some(Ssn::parse("987654321").unwrap()),
            name: Some(PersonName::new("John", "Doe")),
            date_of_birth: Some(FhirDate::parse("1970-01-31").unwrap()),
            gender: Some(Gender::PreferNotToSay),
            phone: Some("+1234567890".into()),
            email: Some("john@example.com".into()),
            address: Some(PostalAddress {
                lines: vec!["1 Main St".into()],
                city: Some("Houston".into()),
                state: Some("TX".into()),
                postal_code: Some("77002".into()),
                country: Some("USA".into()),
            }),
            emergency_contact: Some(EmergencyContact {
                name: Some("Jane Doe".into()),
                relationship: Some("spouse".into()),
                phone: Some("+1234567891".into()),
            }),
            primary_doctor: Some("Practitioner/7".into()),
            clinic: Some("Organization/clinic-7".into()),
            deceased: Deceased::Yes,
            status: RecordStatus::Inactive,
            ehr_link: Some(EhrLink { target: "https://ehr.example.org/Patient/1".into(), remote_identifier: None }),
            source: Default::default(),
        }
    }

    #[test]
    fn seed_patient_round_trips_and_uses_the_mapped_codes() {
        let fhir = assert_model_round_trip(&seed_patient(), to_fhir, from_fhir, |p| p.source = Default::default());
        assert_eq!(fhir["resourceType"], "Patient");
        assert_eq!(fhir["gender"], "unknown");
        assert_eq!(fhir["active"], false);
        assert_eq!(fhir["deceasedBoolean"], true);
        assert_eq!(fhir["identifier"][0]["type"]["coding"][0]["code"], "MR");
        assert_eq!(fhir["identifier"][0]["value"], "MRN-2024-00007");
        assert_eq!(fhir["identifier"][1], json!({"system": "http://hl7.org/fhir/sid/us-ssn", "value": "987654321"}));
        assert_eq!(
            fhir["contact"][0]["relationship"][0],
            json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "C", "display": "Emergency Contact"}], "text": "spouse"})
        );
        assert_eq!(fhir["generalPractitioner"], json!([{"reference": "Practitioner/7"}]));
        assert_eq!(fhir["link"][0]["type"], "seealso");
    }

    #[test]
    fn empty_fields_remove_their_elements() {
        let mut p = from_fhir(&realistic()).unwrap();
        p.ssn = None;
        p.emergency_contact = None;
        p.phone = None;
        let out = to_fhir(&p);
        assert!(out["identifier"].as_array().unwrap().iter().all(|i| i["system"] != US_SSN));
        assert_eq!(out["contact"].as_array().unwrap().len(), 1);
        assert!(out["telecom"].as_array().unwrap().iter().all(|t| t["system"] != "phone"));
        let back = from_fhir(&out).unwrap();
        assert_eq!((back.ssn, back.emergency_contact, back.phone), (None, None, None));
    }

    #[test]
    fn bad_content_names_the_element() {
        let mut r = realistic();
        r["gender"] = json!("f");
        assert_eq!(from_fhir(&r).unwrap_err().expression(), Some("Patient.gender"));
        let mut r = realistic();
        r["identifier"][1]["value"] = json!("***-**-6789");
        assert_eq!(from_fhir(&r).unwrap_err().expression(), Some("Patient.identifier[1].value"));
        let mut r = realistic();
        r["birthDate"] = json!("1987-02-30");
        assert_eq!(from_fhir(&r).unwrap_err().expression(), Some("Patient.birthDate"));
        assert!(matches!(
            from_fhir(&json!({"resourceType": "Practitioner"})),
            Err(MappingError::WrongResourceType { .. })
        ));
        assert_eq!(from_fhir(&json!([])), Err(MappingError::NotAnObject));
    }
}

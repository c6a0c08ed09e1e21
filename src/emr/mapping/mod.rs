//! Mapping between the EMR models and FHIR R4 resources, one file per resource.
//!
//! Every file offers `from_fhir(&Value) -> Result<Model, MappingError>` and
//! `to_fhir(&Model) -> Value` (Observation offers one pair per model). `from_fhir` keeps the
//! whole resource in the model's `source`; `to_fhir` starts from that source and, field by
//! field, writes the model's value only where reading the source would not already give it.
//! So `to_fhir(from_fhir(r)) == r` holds by construction, byte for byte, and an edited model
//! changes only the elements behind the edited fields. A model built from seed data (empty
//! source) is written out in full.
//!
//! Readers are lenient about absence (an absent element reads as `None`/default) and strict
//! about malformed content (wrong JSON type, unknown code of a required binding, bad date):
//! those give a `MappingError` naming the element.

use serde_json::Value;

use super::error::MappingError;
use super::json::*;
use super::models::{FhirDate, FhirDateTime, Party, Period, PersonName, PostalAddress, RecordStatus, SourceResource};
use super::systems::KILN_EMR_STATUS_EXT;

pub mod allergy_intolerance;
pub mod appointment;
pub mod condition;
pub mod consent;
pub mod coverage;
pub mod encounter;
pub mod medication_request;
pub mod observation;
pub mod organization;
pub mod patient;
pub mod practitioner;
pub mod practitioner_role;
pub mod schedule;
pub mod slot;

#[cfg(test)]
pub(crate) mod test_support;

/// A resource being written from a model: the source (or a new resource) plus the rule for
/// when a field is written.
pub(crate) struct Overlay {
    resource: Object,
    fresh: bool,
}

impl Overlay {
    pub(crate) fn new(source: &SourceResource, resource_type: &'static str) -> Self {
        let mut resource = source.as_object().clone();
        put(&mut resource, "resourceType", resource_type.into());
        Overlay { resource, fresh: source.is_empty() }
    }

    /// Writes one model field unless the resource already reads as `wanted`. A new resource
    /// gets every field written, so defaults come out explicitly.
    pub(crate) fn field<T: PartialEq>(
        &mut self,
        wanted: &T,
        read: impl Fn(&Object) -> Result<T, MappingError>,
        write: impl FnOnce(&mut Object, &T),
    ) {
        if self.fresh || read(&self.resource).ok().as_ref() != Some(wanted) {
            write(&mut self.resource, wanted);
        }
    }

    /// Sets an element the model does not hold but a new resource needs (such as
    /// `MedicationRequest.intent`); resources read from FHIR keep theirs.
    pub(crate) fn when_new(&mut self, key: &str, value: Value) {
        if self.fresh {
            self.resource.insert(key.to_owned(), value);
        }
    }

    pub(crate) fn finish(self) -> Value {
        Value::Object(self.resource)
    }
}

/// Checks that `resource` is a JSON object of the expected type and returns it with the source
/// to keep.
pub(crate) fn resource_object<'a>(
    resource: &'a Value,
    expected: &'static str,
) -> Result<(&'a Object, SourceResource), MappingError> {
    let obj = resource.as_object().ok_or(MappingError::NotAnObject)?;
    match obj.get("resourceType").and_then(Value::as_str) {
        Some(found) if found == expected => Ok((obj, SourceResource::new(obj.clone()))),
        found => Err(MappingError::WrongResourceType { expected, found: found.unwrap_or("(none)").to_owned() }),
    }
}

pub(crate) fn read_id(obj: &Object) -> Result<Option<String>, MappingError> {
    opt_string(obj, "id", "Resource")
}

pub(crate) fn put_id(obj: &mut Object, id: &Option<String>) {
    put_str(obj, "id", id.as_deref());
}

/// Reads a FHIR `code` element into a model enum; an unknown code is an error.
pub(crate) fn read_code<T>(
    obj: &Object,
    key: &str,
    at: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, MappingError> {
    match opt_string(obj, key, at)? {
        None => Ok(None),
        Some(code) => parse(&code)
            .map(Some)
            .ok_or_else(|| MappingError::invalid(format!("{at}.{key}"), format!("unknown code `{code}`"))),
    }
}

pub(crate) fn read_datetime(obj: &Object, key: &str, at: &str) -> Result<Option<FhirDateTime>, MappingError> {
    opt_string(obj, key, at)?
        .map(|text| FhirDateTime::parse(&text).map_err(|e| MappingError::invalid(format!("{at}.{key}"), e.to_string())))
        .transpose()
}

/// Reads a FHIR `instant`: a dateTime that must carry a time.
pub(crate) fn read_instant(obj: &Object, key: &str, at: &str) -> Result<Option<FhirDateTime>, MappingError> {
    match read_datetime(obj, key, at)? {
        Some(t) if t.instant().is_none() => {
            Err(MappingError::invalid(format!("{at}.{key}"), "an instant needs a time and a time zone"))
        }
        other => Ok(other),
    }
}

pub(crate) fn read_date(obj: &Object, key: &str, at: &str) -> Result<Option<FhirDate>, MappingError> {
    opt_string(obj, key, at)?
        .map(|text| FhirDate::parse(&text).map_err(|e| MappingError::invalid(format!("{at}.{key}"), e.to_string())))
        .transpose()
}

pub(crate) fn put_datetime(obj: &mut Object, key: &str, value: Option<&FhirDateTime>) {
    put_str(obj, key, value.map(FhirDateTime::as_str));
}

/// `obj[key].reference`.
pub(crate) fn read_reference(obj: &Object, key: &str, at: &str) -> Result<Option<String>, MappingError> {
    match opt_object(obj, key, at)? {
        None => Ok(None),
        Some(r) => opt_string(r, "reference", &format!("{at}.{key}")),
    }
}

pub(crate) fn read_period(obj: &Object, key: &str, at: &str) -> Result<Period, MappingError> {
    let Some(period) = opt_object(obj, key, at)? else {
        return Ok(Period::default());
    };
    let at = format!("{at}.{key}");
    Ok(Period { start: read_datetime(period, "start", &at)?, end: read_datetime(period, "end", &at)? })
}

pub(crate) fn put_period(obj: &mut Object, key: &str, period: &Period) {
    let p = child(obj, key);
    put_datetime(p, "start", period.start.as_ref());
    put_datetime(p, "end", period.end.as_ref());
    tidy(obj, key);
}

pub(crate) fn read_party(value: &Value, at: &str) -> Result<Party, MappingError> {
    let r = as_object(value, at)?;
    Ok(Party { reference: opt_string(r, "reference", at)?, display: opt_string(r, "display", at)? })
}

pub(crate) fn read_party_at(obj: &Object, key: &str, at: &str) -> Result<Option<Party>, MappingError> {
    obj.get(key).map(|v| read_party(v, &format!("{at}.{key}"))).transpose()
}

pub(crate) fn write_party(value: &mut Value, party: &Party) {
    let r = object_mut(value);
    put_str(r, "reference", party.reference.as_deref());
    put_str(r, "display", party.display.as_deref());
}

pub(crate) fn party_value(party: &Party) -> Value {
    let mut v = Value::Object(Object::new());
    write_party(&mut v, party);
    v
}

pub(crate) fn put_party(obj: &mut Object, key: &str, party: Option<&Party>) {
    match party {
        Some(p) => write_party(obj.entry(key).or_insert(Value::Null), p),
        None => remove(obj, key),
    }
    tidy(obj, key);
}

pub(crate) fn read_human_name(value: &Value, at: &str) -> Result<PersonName, MappingError> {
    let n = as_object(value, at)?;
    Ok(PersonName { given: string_list(n, "given", at)?, family: opt_string(n, "family", at)? })
}

/// Writes the parts the model knows; a stale `text` rendering of the old name is dropped.
pub(crate) fn write_human_name(value: &mut Value, name: &PersonName) {
    let before = read_human_name(value, "").ok();
    let n = object_mut(value);
    put_str(n, "family", name.family.as_deref());
    put_strings(n, "given", &name.given);
    if before.as_ref() != Some(name) {
        remove(n, "text");
    }
}

fn is_official(v: &Value) -> bool {
    str_of(v, "use") == Some("official")
}

/// The name a person is known by in the record: the official one, else the first.
pub(crate) fn read_primary_name(obj: &Object, at: &str) -> Result<Option<PersonName>, MappingError> {
    let names = list(obj, "name", at)?;
    pick_one(names, |_| true, is_official).map(|(i, v)| read_human_name(v, &format!("{at}.name[{i}]"))).transpose()
}

pub(crate) fn put_primary_name(obj: &mut Object, name: Option<&PersonName>) {
    overlay_one(
        obj,
        "name",
        |_| true,
        is_official,
        name,
        write_human_name,
        |n| {
            let mut v = object(vec![("use", "official".into())]);
            write_human_name(&mut v, n);
            v
        },
    );
}

/// The first `telecom` of the given system (`phone`, `email`).
pub(crate) fn read_telecom(obj: &Object, system: &str, at: &str) -> Result<Option<String>, MappingError> {
    let contacts = list(obj, "telecom", at)?;
    match pick_one(contacts, |c| str_of(c, "system") == Some(system), |_| true) {
        None => Ok(None),
        Some((i, c)) => opt_string(as_object(c, at)?, "value", &format!("{at}.telecom[{i}]")),
    }
}

pub(crate) fn put_telecom(obj: &mut Object, system: &str, value: Option<&str>) {
    overlay_one(
        obj,
        "telecom",
        |c| str_of(c, "system") == Some(system),
        |_| true,
        value.as_ref(),
        |c, v| put_str(object_mut(c), "value", Some(v)),
        |v| object(vec![("system", system.into()), ("value", (*v).into())]),
    );
}

fn is_home(v: &Value) -> bool {
    str_of(v, "use") == Some("home")
}

pub(crate) fn read_address(value: &Value, at: &str) -> Result<PostalAddress, MappingError> {
    let a = as_object(value, at)?;
    Ok(PostalAddress {
        lines: string_list(a, "line", at)?,
        city: opt_string(a, "city", at)?,
        state: opt_string(a, "state", at)?,
        postal_code: opt_string(a, "postalCode", at)?,
        country: opt_string(a, "country", at)?,
    })
}

pub(crate) fn write_address(value: &mut Value, address: &PostalAddress) {
    let before = read_address(value, "").ok();
    let a = object_mut(value);
    put_strings(a, "line", &address.lines);
    put_str(a, "city", address.city.as_deref());
    put_str(a, "state", address.state.as_deref());
    put_str(a, "postalCode", address.postal_code.as_deref());
    put_str(a, "country", address.country.as_deref());
    if before.as_ref() != Some(address) {
        remove(a, "text");
    }
}

/// The home address, else the first.
pub(crate) fn read_primary_address(obj: &Object, at: &str) -> Result<Option<PostalAddress>, MappingError> {
    let addresses = list(obj, "address", at)?;
    pick_one(addresses, |_| true, is_home).map(|(i, v)| read_address(v, &format!("{at}.address[{i}]"))).transpose()
}

pub(crate) fn put_primary_address(obj: &mut Object, address: Option<&PostalAddress>) {
    overlay_one(
        obj,
        "address",
        |_| true,
        is_home,
        address,
        write_address,
        |a| {
            let mut v = Value::Object(Object::new());
            write_address(&mut v, a);
            v
        },
    );
}

/// The value of the first identifier with this system.
pub(crate) fn read_identifier(obj: &Object, system: &str, at: &str) -> Result<Option<String>, MappingError> {
    let ids = list(obj, "identifier", at)?;
    match pick_one(ids, |i| str_of(i, "system") == Some(system), |_| true) {
        None => Ok(None),
        Some((i, id)) => opt_string(as_object(id, at)?, "value", &format!("{at}.identifier[{i}]")),
    }
}

/// The first identifier with this system, parsed; a parse failure names `identifier[i].value`.
pub(crate) fn read_identifier_as<T, E: std::fmt::Display>(
    obj: &Object,
    system: &str,
    at: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Option<T>, MappingError> {
    let ids = list(obj, "identifier", at)?;
    let Some((i, id)) = pick_one(ids, |i| str_of(i, "system") == Some(system), |_| true) else {
        return Ok(None);
    };
    let at = format!("{at}.identifier[{i}]");
    match opt_string(as_object(id, &at)?, "value", &at)? {
        None => Ok(None),
        Some(text) => parse(&text).map(Some).map_err(|e| MappingError::invalid(format!("{at}.value"), e.to_string())),
    }
}

pub(crate) fn put_identifier(obj: &mut Object, system: &str, value: Option<&str>) {
    overlay_one(
        obj,
        "identifier",
        |i| str_of(i, "system") == Some(system),
        |_| true,
        value.as_ref(),
        |i, v| put_str(object_mut(i), "value", Some(v)),
        |v| object(vec![("system", system.into()), ("value", (*v).into())]),
    );
}

/// `active`, absent read as active.
pub(crate) fn read_active(obj: &Object, at: &str) -> Result<RecordStatus, MappingError> {
    Ok(match opt_bool(obj, "active", at)? {
        Some(false) => RecordStatus::Inactive,
        Some(true) | None => RecordStatus::Active,
    })
}

pub(crate) fn put_active(obj: &mut Object, status: &RecordStatus) {
    put_bool(obj, "active", Some(*status == RecordStatus::Active));
}

/// The seed status recorded beside a FHIR status that folds several seed statuses together.
pub(crate) fn read_emr_status(obj: &Object) -> Option<&str> {
    extension(obj, KILN_EMR_STATUS_EXT).and_then(|e| str_of(e, "valueCode"))
}

pub(crate) fn put_emr_status(obj: &mut Object, seed_status: Option<&str>) {
    put_extension(obj, KILN_EMR_STATUS_EXT, seed_status.map(|s| ("valueCode", Value::from(s))));
}

/// The text of the first `note` (Annotation).
pub(crate) fn read_note(obj: &Object, at: &str) -> Result<Option<String>, MappingError> {
    match list(obj, "note", at)?.first() {
        None => Ok(None),
        Some(n) => opt_string(as_object(n, at)?, "text", &format!("{at}.note[0]")),
    }
}

pub(crate) fn put_note(obj: &mut Object, text: Option<&str>) {
    overlay_one(
        obj,
        "note",
        |_| true,
        |_| true,
        text.as_ref(),
        |n, t| put_str(object_mut(n), "text", Some(t)),
        |t| object(vec![("text", (*t).into())]),
    );
}

/// The label of the CodeableConcept at `obj[key]` (its text, else a display or code).
pub(crate) fn read_concept_text(obj: &Object, key: &str, at: &str) -> Result<Option<String>, MappingError> {
    Ok(opt_object(obj, key, at)?.and_then(|cc| concept_label(&Value::Object(cc.clone()))))
}

/// The label of the first CodeableConcept of the array `obj[key]`.
pub(crate) fn read_first_concept_text(obj: &Object, key: &str, at: &str) -> Result<Option<String>, MappingError> {
    Ok(list(obj, key, at)?.first().and_then(concept_label))
}

/// Sets the first CodeableConcept of the array `obj[key]` to a text, keeping it (codings and
/// all) when it already reads as that text.
pub(crate) fn put_first_concept_text(obj: &mut Object, key: &str, text: Option<&str>) {
    overlay_one(
        obj,
        key,
        |_| true,
        |_| true,
        text.as_ref(),
        |cc, t| {
            if concept_label(cc).as_deref() != Some(t) {
                *cc = text_concept(t);
            }
        },
        |t| text_concept(t),
    );
}

/// The first element of the array `obj[key]`, created when absent.
pub(crate) fn first_mut<'a>(obj: &'a mut Object, key: &str) -> &'a mut Object {
    let elements = child_list(obj, key);
    if elements.is_empty() {
        elements.push(Value::Object(Object::new()));
    }
    object_mut(&mut elements[0])
}

/// Drops the first element of `obj[key]` when it has become empty, then the array if empty.
pub(crate) fn tidy_first(obj: &mut Object, key: &str) {
    if let Some(Value::Array(elements)) = obj.get_mut(key)
        && elements.first().is_some_and(|e| e.as_object().is_some_and(Object::is_empty))
    {
        elements.remove(0);
    }
    tidy(obj, key);
}

/// A CodeableConcept read as a name (its text, else the first display) and the code of one
/// system (`medicationCodeableConcept` with RxNorm, Condition `code` with ICD-10-CM...).
pub(crate) fn read_labelled_code(
    obj: &Object,
    key: &str,
    system: &str,
    at: &str,
) -> Result<(Option<String>, Option<String>), MappingError> {
    let Some(concept) = obj.get(key) else {
        return Ok((None, None));
    };
    as_object(concept, &format!("{at}.{key}"))?;
    let name = str_of(concept, "text")
        .or_else(|| items(concept, "coding").first().and_then(|c| str_of(c, "display")))
        .map(str::to_owned);
    Ok((name, coding_code(concept, system).map(str::to_owned)))
}

/// Writes a name and a code into a CodeableConcept, keeping its other codings.
pub(crate) fn put_labelled_code(obj: &mut Object, key: &str, system: &str, name: Option<&str>, code: Option<&str>) {
    let (_, current_code) = read_labelled_code(obj, key, system, "").unwrap_or_default();
    let concept = child(obj, key);
    if current_code.as_deref() != code {
        overlay_one(
            concept,
            "coding",
            |c| str_of(c, "system") == Some(system),
            |_| true,
            code.as_ref(),
            |c, code| *c = coding(system, code, None),
            |code| coding(system, code, None),
        );
    }
    let (current_name, _) = read_labelled_code(obj, key, system, "").unwrap_or_default();
    if current_name.as_deref() != name {
        put_str(child(obj, key), "text", name);
    }
    tidy(obj, key);
}

//! Insurance <-> FHIR R4 Coverage (http://hl7.org/fhir/R4/coverage.html).
//!
//! company -> `payor` (reference and/or display); policy number -> `subscriberId` and an
//! identifier typed v2-0203 `MB`; group number -> `class` of type `group`; holder ->
//! `subscriber`; relationship -> `relationship` (subscriber-relationship); primary/secondary/
//! tertiary -> `order` 1/2/3; effective/expiration -> `period`; status active -> `active`,
//! inactive -> `cancelled`, expired -> `cancelled` + Kiln `emr-status` extension; copay and
//! deductible -> `costToBeneficiary` (coverage-copay-type `copay` / `deductible`).

use serde_json::Value;

use crate::emr::error::MappingError;
use crate::emr::json::*;
use crate::emr::mapping::*;
use crate::emr::models::{CoverageOrder, Insurance, InsuranceStatus, Money, SubscriberRelationship};
use crate::emr::systems::{COVERAGE_CLASS, COVERAGE_COPAY_TYPE, SUBSCRIBER_RELATIONSHIP, V2_IDENTIFIER_TYPE};

const AT: &str = "Coverage";

pub fn from_fhir(resource: &Value) -> Result<Insurance, MappingError> {
    let (obj, source) = resource_object(resource, AT)?;
    Ok(Insurance {
        id: read_id(obj)?,
        status: read_status(obj)?,
        policy_number: read_policy_number(obj)?,
        policy_holder: read_party_at(obj, "subscriber", AT)?,
        patient: read_reference(obj, "beneficiary", AT)?,
        relationship: read_relationship(obj)?,
        period: read_period(obj, "period", AT)?,
        payor: read_payor(obj)?,
        group_number: read_group(obj)?,
        order: read_order(obj)?,
        copay: read_cost(obj, "copay")?,
        deductible: read_cost(obj, "deductible")?,
        source,
    })
}

pub fn to_fhir(insurance: &Insurance) -> Value {
    let c = insurance;
    let mut out = Overlay::new(&c.source, AT);
    out.field(&c.id, read_id, put_id);
    out.field(&c.status, read_status, put_status);
    out.field(&c.policy_holder, |o| read_party_at(o, "subscriber", AT), |o, p| put_party(o, "subscriber", p.as_ref()));
    out.field(&c.policy_number, read_policy_number, put_policy_number);
    out.field(
        &c.patient,
        |o| read_reference(o, "beneficiary", AT),
        |o, r| put_reference(o, "beneficiary", r.as_deref()),
    );
    out.field(&c.relationship, read_relationship, |o, r| {
        put_opt(o, "relationship", r.map(|r| coded(SUBSCRIBER_RELATIONSHIP, r.code(), None)))
    });
    out.field(&c.period, |o| read_period(o, "period", AT), |o, p| put_period(o, "period", p));
    out.field(&c.payor, read_payor, |o, p| {
        overlay_one(o, "payor", |_| true, |_| true, p.as_ref(), write_party, party_value)
    });
    out.field(&c.group_number, read_group, put_group);
    out.field(&c.order, read_order, |o, order| put_u32(o, "order", order.map(CoverageOrder::rank)));
    out.field(&c.copay, |o| read_cost(o, "copay"), |o, m| put_cost(o, "copay", m));
    out.field(&c.deductible, |o| read_cost(o, "deductible"), |o, m| put_cost(o, "deductible", m));
    out.finish()
}

fn status_code(status: InsuranceStatus) -> &'static str {
    match status {
        InsuranceStatus::Active => "active",
        InsuranceStatus::Inactive | InsuranceStatus::Expired => "cancelled",
        InsuranceStatus::Draft => "draft",
        InsuranceStatus::EnteredInError => "entered-in-error",
    }
}

fn read_status(obj: &Object) -> Result<InsuranceStatus, MappingError> {
    let code = opt_string(obj, "status", AT)?.ok_or_else(|| MappingError::missing("Coverage.status"))?;
    match code.as_str() {
        "active" => Ok(InsuranceStatus::Active),
        "cancelled" if read_emr_status(obj) == Some("expired") => Ok(InsuranceStatus::Expired),
        "cancelled" => Ok(InsuranceStatus::Inactive),
        "draft" => Ok(InsuranceStatus::Draft),
        "entered-in-error" => Ok(InsuranceStatus::EnteredInError),
        other => Err(MappingError::invalid("Coverage.status", format!("unknown code `{other}`"))),
    }
}

fn put_status(obj: &mut Object, status: &InsuranceStatus) {
    put_emr_status(obj, (*status == InsuranceStatus::Expired).then_some("expired"));
    put_str(obj, "status", Some(status_code(*status)));
}

fn is_member_number(identifier: &Value) -> bool {
    identifier.get("type").is_some_and(|t| has_coding(t, V2_IDENTIFIER_TYPE, "MB"))
}

fn read_policy_number(obj: &Object) -> Result<Option<String>, MappingError> {
    if let Some(id) = opt_string(obj, "subscriberId", AT)? {
        return Ok(Some(id));
    }
    let ids = list(obj, "identifier", AT)?;
    Ok(pick_one(ids, is_member_number, |_| true).and_then(|(_, id)| str_of(id, "value")).map(str::to_owned))
}

fn put_policy_number(obj: &mut Object, number: &Option<String>) {
    overlay_one(
        obj,
        "identifier",
        is_member_number,
        |_| true,
        number.as_ref(),
        |id, n| put_str(object_mut(id), "value", Some(n)),
        |n| {
            object(vec![("type", coded(V2_IDENTIFIER_TYPE, "MB", Some("Member Number"))), ("value", n.as_str().into())])
        },
    );
    put_str(obj, "subscriberId", number.as_deref());
}

/// Relationship codes outside the seed list read as `None` and stay in the source.
fn read_relationship(obj: &Object) -> Result<Option<SubscriberRelationship>, MappingError> {
    Ok(opt_object(obj, "relationship", AT)?
        .and_then(|cc| coding_code(&Value::Object(cc.clone()), SUBSCRIBER_RELATIONSHIP).map(str::to_owned))
        .and_then(|code| SubscriberRelationship::parse(&code)))
}

fn read_payor(obj: &Object) -> Result<Option<crate::emr::models::Party>, MappingError> {
    list(obj, "payor", AT)?.first().map(|p| read_party(p, "Coverage.payor[0]")).transpose()
}

fn is_group_class(class: &Value) -> bool {
    class.get("type").is_some_and(|t| has_coding(t, COVERAGE_CLASS, "group"))
}

fn read_group(obj: &Object) -> Result<Option<String>, MappingError> {
    let classes = list(obj, "class", AT)?;
    Ok(pick_one(classes, is_group_class, |_| true).and_then(|(_, c)| str_of(c, "value")).map(str::to_owned))
}

fn put_group(obj: &mut Object, group: &Option<String>) {
    overlay_one(
        obj,
        "class",
        is_group_class,
        |_| true,
        group.as_ref(),
        |c, g| put_str(object_mut(c), "value", Some(g)),
        |g| object(vec![("type", coded(COVERAGE_CLASS, "group", Some("Group"))), ("value", g.as_str().into())]),
    );
}

/// Orders past tertiary read as `None` and stay in the source.
fn read_order(obj: &Object) -> Result<Option<CoverageOrder>, MappingError> {
    Ok(opt_u32(obj, "order", AT)?.and_then(CoverageOrder::from_rank))
}

fn is_cost(cost: &Value, kind: &str) -> bool {
    cost.get("type").is_some_and(|t| has_coding(t, COVERAGE_COPAY_TYPE, kind))
}

fn read_cost(obj: &Object, kind: &str) -> Result<Option<Money>, MappingError> {
    let costs = list(obj, "costToBeneficiary", AT)?;
    let Some((i, cost)) = pick_one(costs, |c| is_cost(c, kind), |_| true) else {
        return Ok(None);
    };
    let at = format!("{AT}.costToBeneficiary[{i}]");
    let Some(money) = opt_object(as_object(cost, &at)?, "valueMoney", &at)? else {
        return Ok(None);
    };
    let at = format!("{at}.valueMoney");
    Ok(opt_f64(money, "value", &at)?
        .map(|value| Money { value, currency: money.get("currency").and_then(Value::as_str).map(str::to_owned) }))
}

fn write_money(cost: &mut Value, money: &Money) {
    let c = object_mut(cost);
    remove(c, "valueQuantity");
    let m = child(c, "valueMoney");
    put_number(m, "value", Some(money.value));
    put_str(m, "currency", money.currency.as_deref());
}

fn put_cost(obj: &mut Object, kind: &'static str, money: &Option<Money>) {
    overlay_one(
        obj,
        "costToBeneficiary",
        |c| is_cost(c, kind),
        |_| true,
        money.as_ref(),
        write_money,
        |m| {
            let mut cost = object(vec![("type", coded(COVERAGE_COPAY_TYPE, kind, None))]);
            write_money(&mut cost, m);
            cost
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emr::mapping::test_support::*;
    use crate::emr::models::{FhirDateTime, Party, Period};
    use serde_json::json;

    fn realistic() -> Value {
        json!({
            "resourceType": "Coverage",
            "id": "cov-1",
            "meta": {"versionId": "1", "lastUpdated": "2024-01-01T00:00:00Z"},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Blue Cross PPO</div>"},
            "contained": [{"resourceType": "Organization", "id": "bcbs", "name": "Blue Cross"}],
            "extension": [{"url": "http://example.org/pre-auth-required", "valueBoolean": true}],
            "identifier": [
                {"system": "http://benefitsinc.com/certificate", "value": "12345"},
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}]}, "system": "http://bcbs.example.org/member", "value": "XJ-991"}
            ],
            "status": "active",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PPO"}]},
            "policyHolder": {"reference": "Patient/pat-1"},
            "subscriber": {"reference": "RelatedPerson/rp-1", "display": "Bob Shaw"},
            "subscriberId": "XJ-991",
            "beneficiary": {"reference": "Patient/pat-1"},
            "dependent": "1",
            "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": "spouse"}]},
            "period": {"start": "2024-01-01", "end": "2024-12-31"},
            "payor": [{"reference": "#bcbs", "display": "Blue Cross"}],
            "class": [
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]}, "value": "B37FC", "name": "Full Coverage"},
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "group"}]}, "value": "CB135", "name": "Corporate Baker's Inc. Local #35"}
            ],
            "order": 1,
            "network": "5",
            "costToBeneficiary": [
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-copay-type", "code": "gpvisit"}]}, "valueMoney": {"value": 20.00, "currency": "USD"}},
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-copay-type", "code": "copay"}]}, "valueMoney": {"value": 25.5, "currency": "USD"}}
            ]
        })
    }

    #[test]
    fn realistic_coverage_is_lossless() {
        let c = assert_lossless(&realistic(), from_fhir, to_fhir);
        assert_eq!(c.status, InsuranceStatus::Active);
        assert_eq!(c.policy_number.as_deref(), Some("XJ-991"));
        assert_eq!(c.group_number.as_deref(), Some("CB135"));
        assert_eq!(c.order, Some(CoverageOrder::Primary));
        assert_eq!(c.relationship, Some(SubscriberRelationship::Spouse));
        assert_eq!(c.payor.as_ref().unwrap().display.as_deref(), Some("Blue Cross"));
        assert_eq!(c.copay, Some(Money::usd(25.5)));
        assert_eq!(c.deductible, None);
    }

    #[test]
    fn seed_insurance_round_trips_with_order_and_status() {
        for (order, rank) in [(CoverageOrder::Primary, 1), (CoverageOrder::Secondary, 2), (CoverageOrder::Tertiary, 3)]
        {
            for (status, code) in [
                (InsuranceStatus::Active, "active"),
                (InsuranceStatus::Inactive, "cancelled"),
                (InsuranceStatus::Expired, "cancelled"),
            ] {
                let seed = Insurance {
                    status,
                    policy_number: Some("123456".into()),
                    policy_holder: Some(Party::named("John Doe")),
                    patient: Some("Patient/p1".into()),
                    relationship: Some(SubscriberRelationship::Myself),
                    period: Period { start: Some(FhirDateTime::parse("2024-01-01").unwrap()), end: None },
                    payor: Some(Party::named("Blue Cross")),
                    group_number: Some("789".into()),
                    order: Some(order),
                    copay: Some(Money::usd(20.0)),
                    deductible: Some(Money::usd(1500.0)),
                    ..Default::default()
                };
                let fhir = assert_model_round_trip(&seed, to_fhir, from_fhir, |c| c.source = Default::default());
                assert_eq!(fhir["order"], rank);
                assert_eq!(fhir["status"], code);
                assert_eq!(fhir["subscriberId"], "123456");
                assert_eq!(fhir["payor"], json!([{"display": "Blue Cross"}]));
                assert_eq!(fhir["class"][0]["type"]["coding"][0]["code"], "group");
                assert_eq!(fhir["relationship"]["coding"][0]["code"], "self");
            }
        }
    }

    #[test]
    fn policy_number_change_updates_both_places() {
        let original = realistic();
        let mut c = from_fhir(&original).unwrap();
        c.policy_number = Some("XJ-1000".into());
        c.status = InsuranceStatus::Expired;
        let out = to_fhir(&c);
        assert_eq!(out["subscriberId"], "XJ-1000");
        assert_eq!(out["identifier"][1]["value"], "XJ-1000");
        assert_eq!(out["identifier"][1]["system"], "http://bcbs.example.org/member");
        assert_eq!(out["status"], "cancelled");
        assert_eq!(from_fhir(&out).unwrap().status, InsuranceStatus::Expired);
    }
}

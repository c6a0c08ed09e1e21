//! `Patient/[id]/$retention` (Kiln operation, docs/retention.md): until when the patient's record
//! must be kept under the configured retention rule, from the birth date and the last treatment
//! (the latest Encounter). `kiln retention report` lists the records whose period has ended.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde_json::{Value, json};

use super::{QueryParams, live, logical_id, resource_type};
use crate::access::policy::{self, Interaction};
use crate::access::{Principal, TenantId};
use crate::app::AppState;
use crate::emr::retention::{Basis, Retention, RetentionRule, latest_day, retention};
use crate::error::FhirError;
use crate::fhir::FHIR_JSON;
use crate::search::query::compile;
use crate::store::{DynStore, Pages, VersionRecord};

fn day_of_micros(micros: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp_micros(micros).map(|t| t.date_naive()).unwrap_or_default()
}

/// The retention of one stored Patient: its latest Encounter (by `date`) is the last treatment;
/// without one, the last change to the Patient stands in for it.
pub async fn of_patient(
    store: &DynStore,
    tenant: &TenantId,
    rule: &RetentionRule,
    patient: &VersionRecord,
) -> Result<Retention, FhirError> {
    let registry = crate::fhir::registry::Registry::global();
    let value: Value = serde_json::from_slice(patient.json.as_deref().unwrap_or_default())
        .map_err(|e| FhirError::internal(e.to_string()))?;
    let encounter = registry.resource("Encounter").ok_or_else(|| FhirError::internal("Encounter is not served"))?;
    let params = QueryParams(vec![
        ("subject".into(), format!("Patient/{}", patient.id)),
        ("_sort".into(), "-date".into()),
        ("_count".into(), "1".into()),
    ]);
    let query = compile(encounter, &params, "", false, 1, 1)?;
    let latest = store.search(tenant, "Encounter", &query).await?;
    let treated = latest.first().and_then(|record| {
        let encounter: Value = serde_json::from_slice(record.json.as_deref()?).ok()?;
        let period = encounter.get("period")?;
        let date = period.get("end").or(period.get("start"))?.as_str()?;
        latest_day(date)
    });
    let (last_treatment, basis) = match treated {
        Some(day) => (day, Basis::Encounter),
        None => (day_of_micros(patient.last_updated), Basis::RecordChange),
    };
    Ok(retention(rule, value.get("birthDate").and_then(Value::as_str), last_treatment, basis))
}

/// The operation.
pub async fn retention_of_patient(
    State(state): State<AppState>,
    principal: Principal,
    Path((type_name, id)): Path<(String, String)>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    if definition.name != "Patient" {
        return Err(FhirError::NotFound(format!("$retention is defined on Patient, not {}", definition.name)));
    }
    QueryParams::parse(query.as_deref()).only(&["_format", "_pretty"])?;
    let id = logical_id(&id)?;
    principal.permit("Patient", Interaction::Read)?;
    principal.permit("Encounter", Interaction::Search)?;
    policy::ensure_visible(&state, &principal, "Patient", id, Interaction::Read).await?;
    let record = live(state.store.read_current(&principal.tenant, "Patient", id).await?, "Patient", id)?;
    let rule = state.settings.retention_rule();
    let kept = of_patient(&state.store, &principal.tenant, &rule, &record).await?;
    let today = chrono::Utc::now().date_naive();
    let mut parameters = vec![
        json!({"name": "retainUntil", "valueDate": kept.retain_until.to_string()}),
        json!({"name": "lastTreatment", "valueDate": kept.last_treatment.to_string()}),
        json!({"name": "basis", "valueCode": kept.basis.code()}),
        json!({"name": "periodEnded", "valueBoolean": kept.retain_until < today}),
        json!({"name": "rule", "valueString": rule.describe()}),
    ];
    if let Some(minor) = kept.minor_at_last_treatment {
        parameters.push(json!({"name": "minorAtLastTreatment", "valueBoolean": minor}));
    }
    let body = json!({"resourceType": "Parameters", "parameter": parameters});
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, axum::http::HeaderValue::from_static(FHIR_JSON));
    Ok(response)
}

/// One line of the retention report.
#[derive(Debug)]
pub struct Due {
    pub patient: String,
    pub retention: Retention,
}

/// Every live Patient of `tenant` whose retention period ends before `before`, oldest first.
pub async fn due(
    store: &DynStore,
    tenant: &TenantId,
    rule: &RetentionRule,
    before: NaiveDate,
) -> Result<Vec<Due>, String> {
    let registry = crate::fhir::registry::Registry::global();
    let patient = registry.resource("Patient").ok_or("Patient is not served")?;
    let params = QueryParams(vec![("_sort".into(), "_lastUpdated".into()), ("_count".into(), "500".into())]);
    let query = compile(patient, &params, "", false, 500, 500).map_err(|e| e.to_string())?;
    let mut due = Vec::new();
    let mut pages = Pages::new(store.as_ref(), tenant, "Patient", query);
    while let Some(page) = pages.next().await.map_err(|e| e.to_string())? {
        for record in &page {
            let kept = of_patient(store, tenant, rule, record).await.map_err(|e| e.to_string())?;
            if kept.retain_until < before {
                due.push(Due { patient: record.id.clone(), retention: kept });
            }
        }
    }
    due.sort_by(|a, b| a.retention.retain_until.cmp(&b.retention.retain_until).then(a.patient.cmp(&b.patient)));
    Ok(due)
}

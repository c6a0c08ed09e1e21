//! `kiln audit report`: the accounting of disclosures over a period (HIPAA §164.528) and the
//! numbers a breach assessment starts from (§164.404–408: 500 or more individuals in a state
//! also means notifying HHS and the media at once).

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

use crate::access::TenantId;
use crate::rest::QueryParams;
use crate::search::query::compile;
use crate::store::{DynStore, Pages};

/// Individuals affected from which a breach must also be reported to HHS and the media at once.
pub const BREACH_MEDIA_THRESHOLD: usize = 500;

/// What a report covers.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub tenant: TenantId,
    /// FHIR dates or date-times (`2026-01-01`, `2026-06-30T12:00:00Z`), inclusive.
    pub from: String,
    pub to: String,
    /// A user's account id: only what they did.
    pub user: Option<String>,
    /// A patient id: only accesses to their record.
    pub patient: Option<String>,
    /// Only accesses granted by breaking the glass.
    pub break_glass_only: bool,
}

/// One patient's line in the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientLine {
    pub events: u64,
    pub first: String,
    pub last: String,
    /// Who accessed the record (user account ids, or `client:<id>` for apps acting alone).
    pub accessed_by: BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every event in the period that matched.
    pub events: u64,
    /// Events that ended in a refusal or failure (nothing disclosed).
    pub refused: u64,
    /// Events granted by breaking the glass: `(recorded, actor, reason)`.
    pub break_glass: Vec<(String, String, String)>,
    /// Patients whose records were disclosed, with the count of events.
    pub patients: BTreeMap<String, PatientLine>,
    /// Events per actor.
    pub actors: BTreeMap<String, u64>,
}

impl Report {
    /// Whether the patients touched reach the threshold for notifying HHS and the media.
    pub fn reaches_media_threshold(&self) -> bool {
        self.patients.len() >= BREACH_MEDIA_THRESHOLD
    }
}

/// The acting user (or app) of an AuditEvent, as the report names it.
fn actor_of(event: &Value) -> String {
    let agents = event.get("agent").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let requestor = agents.iter().find(|a| a.get("requestor") == Some(&Value::Bool(true))).or(agents.first());
    let Some(agent) = requestor else { return "unknown".into() };
    let identifier = agent.pointer("/who/identifier");
    match (
        identifier.and_then(|i| i.get("system")).and_then(Value::as_str),
        identifier.and_then(|i| i.get("value")).and_then(Value::as_str),
    ) {
        (Some("urn:kiln:user"), Some(user)) => format!("user:{user}"),
        (Some("urn:kiln:client"), Some(client)) => format!("client:{client}"),
        _ => agent.pointer("/who/display").and_then(Value::as_str).unwrap_or("unknown").to_string(),
    }
}

/// Whether an event was granted by breaking the glass, and the reason given.
pub fn break_glass_reason(event: &Value) -> Option<String> {
    let purposes = event.get("purposeOfEvent").and_then(Value::as_array)?;
    purposes.iter().find_map(|purpose| {
        let codings = purpose.get("coding").and_then(Value::as_array)?;
        codings
            .iter()
            .any(|c| c.get("code").and_then(Value::as_str) == Some("BTG"))
            .then(|| purpose.get("text").and_then(Value::as_str).unwrap_or("").to_string())
    })
}

/// Adds one AuditEvent to the report.
pub fn tally(report: &mut Report, event: &Value, patient_filter: Option<&str>) {
    report.events += 1;
    let actor = actor_of(event);
    *report.actors.entry(actor.clone()).or_default() += 1;
    let recorded = event.get("recorded").and_then(Value::as_str).unwrap_or("").to_string();
    if let Some(reason) = break_glass_reason(event) {
        report.break_glass.push((recorded.clone(), actor.clone(), reason));
    }
    if event.get("outcome").and_then(Value::as_str) != Some("0") {
        report.refused += 1;
        return;
    }
    let entities = event.get("entity").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for entity in entities {
        let Some(patient) =
            entity.pointer("/what/reference").and_then(Value::as_str).and_then(|r| r.strip_prefix("Patient/"))
        else {
            continue;
        };
        let patient = patient.split('/').next().unwrap_or(patient);
        if patient_filter.is_some_and(|wanted| wanted != patient) {
            continue;
        }
        let line = report.patients.entry(patient.to_string()).or_default();
        line.events += 1;
        if line.first.is_empty() || recorded < line.first {
            line.first = recorded.clone();
        }
        if recorded > line.last {
            line.last = recorded.clone();
        }
        line.accessed_by.insert(actor.clone());
    }
}

/// Reads every AuditEvent of the period (by search, a thousand at a time) into a report.
pub async fn build(store: &DynStore, request: &ReportRequest) -> Result<Report, String> {
    let registry = crate::fhir::registry::Registry::global();
    // The report reads AuditEvent resources: copy what the log holds beyond them first.
    super::index_pending(store, registry, &request.tenant).await?;
    let definition = registry.resource("AuditEvent").ok_or("AuditEvent is not served")?;
    let mut params = vec![
        ("date".to_string(), format!("ge{}", request.from)),
        ("date".to_string(), format!("le{}", request.to)),
        ("_sort".to_string(), "_lastUpdated".to_string()),
        ("_count".to_string(), "1000".to_string()),
    ];
    if let Some(user) = &request.user {
        params.push(("altid".to_string(), user.clone()));
    }
    if let Some(patient) = &request.patient {
        params.push(("patient".to_string(), format!("Patient/{patient}")));
    }
    let query = compile(definition, &QueryParams(params), "", false, 1000, 1000)
        .map_err(|e| format!("the period or filters are not valid: {e}"))?;
    let mut report = Report::default();
    let mut pages = Pages::new(store.as_ref(), &request.tenant, "AuditEvent", query);
    while let Some(page) = pages.next().await.map_err(|e| e.to_string())? {
        for record in &page {
            let Some(json) = &record.json else { continue };
            let event: Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
            if request.break_glass_only && break_glass_reason(&event).is_none() {
                continue;
            }
            tally(&mut report, &event, request.patient.as_deref());
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(actor: &str, outcome: &str, patients: &[&str], recorded: &str) -> Value {
        json!({
            "resourceType": "AuditEvent",
            "recorded": recorded,
            "outcome": outcome,
            "agent": [{"who": {"identifier": {"system": "urn:kiln:user", "value": actor}}, "requestor": true}],
            "entity": patients.iter().map(|p| json!({"what": {"reference": format!("Patient/{p}")}})).collect::<Vec<_>>()
        })
    }

    #[test]
    fn patients_are_counted_once_with_who_accessed_them() {
        let mut report = Report::default();
        tally(&mut report, &event("u1", "0", &["p1", "p2"], "2026-01-02T00:00:00Z"), None);
        tally(&mut report, &event("u2", "0", &["p1"], "2026-01-01T00:00:00Z"), None);
        tally(&mut report, &event("u3", "4", &["p3"], "2026-01-03T00:00:00Z"), None);
        assert_eq!(report.events, 3);
        assert_eq!(report.refused, 1);
        assert_eq!(report.patients.len(), 2, "a refused access disclosed nothing");
        let p1 = &report.patients["p1"];
        assert_eq!((p1.events, p1.first.as_str()), (2, "2026-01-01T00:00:00Z"));
        assert_eq!(p1.accessed_by.iter().collect::<Vec<_>>(), ["user:u1", "user:u2"]);
        assert!(!report.reaches_media_threshold());
    }

    #[test]
    fn five_hundred_individuals_reach_the_media_threshold() {
        let mut report = Report::default();
        let ids: Vec<String> = (0..BREACH_MEDIA_THRESHOLD).map(|i| format!("p{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        tally(&mut report, &event("u1", "0", &refs[..499], "2026-01-01T00:00:00Z"), None);
        assert!(!report.reaches_media_threshold());
        tally(&mut report, &event("u1", "0", &refs[499..], "2026-01-01T00:00:00Z"), None);
        assert!(report.reaches_media_threshold());
    }

    #[test]
    fn break_the_glass_events_carry_their_reason() {
        let mut btg = event("u1", "0", &["p1"], "2026-01-01T00:00:00Z");
        btg["purposeOfEvent"] = json!([{"coding": [{"system": "x", "code": "BTG"}], "text": "unconscious patient"}]);
        let mut report = Report::default();
        tally(&mut report, &btg, None);
        assert_eq!(
            report.break_glass,
            [("2026-01-01T00:00:00Z".into(), "user:u1".into(), "unconscious patient".into())]
        );
    }
}

//! The storage contract: the same cases, unchanged, against every backend's `Store`.

use kiln::access::TenantId;
use kiln::fhir::json::parse_resource;
use kiln::store::{BusyInterval, Change, DynStore, HistoryFilter, HistoryScope, StoreError, WriteGuards, WriteRequest};

use crate::helpers::{Backend, fresh_database};

fn body(json: &str) -> kiln::fhir::json::ResourceBody {
    parse_resource(json.as_bytes()).unwrap().0
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

async fn put(store: &DynStore, t: &TenantId, id: &str, json: &str, if_match: Option<i64>) -> Result<i64, StoreError> {
    let b = body(json);
    store
        .write(t, WriteRequest::new("Patient", id, Change::Update { body: &b, if_match }))
        .await
        .map(|o| o.record.version)
}

async fn every_version_is_kept(store: DynStore) {
    let t = tenant("a");
    for gender in ["male", "female", "other"] {
        put(&store, &t, "p", &format!(r#"{{"resourceType":"Patient","id":"p","gender":"{gender}"}}"#), None)
            .await
            .unwrap();
    }
    let current = store.read_current(&t, "Patient", "p").await.unwrap().unwrap();
    assert_eq!(current.version, 3);
    for (version, gender) in [(1, "male"), (2, "female"), (3, "other")] {
        let record = store.read_version(&t, "Patient", "p", version).await.unwrap().unwrap();
        let json: serde_json::Value = serde_json::from_slice(record.json.as_deref().unwrap()).unwrap();
        assert_eq!(json["gender"], gender);
        assert_eq!(json["meta"]["versionId"], version.to_string());
    }
    assert!(store.read_version(&t, "Patient", "p", 4).await.unwrap().is_none());
}

async fn tenants_do_not_see_each_other(store: DynStore) {
    let (a, b) = (tenant("clinic-a"), tenant("clinic-b"));
    put(&store, &a, "shared-id", r#"{"resourceType":"Patient","id":"shared-id","gender":"male"}"#, None).await.unwrap();
    assert!(store.read_current(&b, "Patient", "shared-id").await.unwrap().is_none());
    let filter = HistoryFilter { count: 10, ..Default::default() };
    assert!(store.history(&b, HistoryScope::System, &filter).await.unwrap().is_empty());
    // The same id in another tenant is another resource with its own versions.
    let v = put(&store, &b, "shared-id", r#"{"resourceType":"Patient","id":"shared-id","gender":"female"}"#, None)
        .await
        .unwrap();
    assert_eq!(v, 1);
    let in_a = store.read_current(&a, "Patient", "shared-id").await.unwrap().unwrap();
    assert!(String::from_utf8(in_a.json.unwrap()).unwrap().contains("\"male\""));
}

async fn if_match_and_create_conflicts(store: DynStore) {
    let t = tenant("a");
    put(&store, &t, "p", r#"{"resourceType":"Patient","id":"p"}"#, None).await.unwrap();
    assert!(matches!(
        put(&store, &t, "p", r#"{"resourceType":"Patient","id":"p"}"#, Some(5)).await,
        Err(StoreError::VersionConflict { current: Some(1) })
    ));
    assert_eq!(put(&store, &t, "p", r#"{"resourceType":"Patient","id":"p"}"#, Some(1)).await.unwrap(), 2);
    let b = body(r#"{"resourceType":"Patient"}"#);
    let again = store.write(&t, WriteRequest::new("Patient", "p", Change::Create(&b))).await;
    assert!(matches!(again, Err(StoreError::AlreadyExists)));
    assert!(matches!(
        put(&store, &t, "nobody", r#"{"resourceType":"Patient","id":"nobody"}"#, Some(1)).await,
        Err(StoreError::VersionConflict { current: None })
    ));
}

async fn deletes_are_versions(store: DynStore) {
    let t = tenant("a");
    put(&store, &t, "p", r#"{"resourceType":"Patient","id":"p"}"#, None).await.unwrap();
    let deleted = store.write(&t, WriteRequest::new("Patient", "p", Change::Delete)).await.unwrap();
    assert_eq!(deleted.record.version, 2);
    let current = store.read_current(&t, "Patient", "p").await.unwrap().unwrap();
    assert!(current.deleted && current.json.is_none());
    let again = store.write(&t, WriteRequest::new("Patient", "p", Change::Delete)).await.unwrap();
    assert!(again.unchanged);
    let missing = store.write(&t, WriteRequest::new("Patient", "q", Change::Delete)).await;
    assert!(matches!(missing, Err(StoreError::NotFound)));
}

async fn history_filters_and_pages(store: DynStore) {
    let t = tenant("a");
    for i in 0..5 {
        put(&store, &t, &format!("p{i}"), &format!(r#"{{"resourceType":"Patient","id":"p{i}"}}"#), None).await.unwrap();
    }
    let page = store
        .history(&t, HistoryScope::Type("Patient"), &HistoryFilter { count: 2, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["p4", "p3"]);
    let next = HistoryFilter { count: 10, before_seq: Some(page[1].seq), ..Default::default() };
    let rest = store.history(&t, HistoryScope::Type("Patient"), &next).await.unwrap();
    assert_eq!(rest.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["p2", "p1", "p0"]);
    let since = HistoryFilter { count: 10, since: Some(rest[0].last_updated), ..Default::default() };
    assert_eq!(store.history(&t, HistoryScope::System, &since).await.unwrap().len(), 3);
    let one = store
        .history(&t, HistoryScope::Instance("Patient", "p1"), &HistoryFilter { count: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
}

async fn put_guarded(store: &DynStore, t: &TenantId, id: &str, guards: WriteGuards) -> Result<i64, StoreError> {
    let b = body(&format!(r#"{{"resourceType":"Patient","id":"{id}"}}"#));
    let mut request = WriteRequest::new("Patient", id, Change::Update { body: &b, if_match: None });
    request.guards = guards;
    store.write(t, request).await.map(|o| o.record.version)
}

fn key(kind: &str, value: &str) -> WriteGuards {
    WriteGuards { unique_keys: vec![(kind.into(), value.into())], busy: vec![] }
}

fn busy(start: i64, end: i64) -> WriteGuards {
    WriteGuards {
        unique_keys: vec![],
        busy: vec![BusyInterval {
            key: "Practitioner/dr".into(),
            start,
            end,
            description: "Practitioner/dr is booked".into(),
        }],
    }
}

async fn unique_keys_are_held_by_one_resource(store: DynStore) {
    let t = tenant("a");
    put_guarded(&store, &t, "p1", key("mrn", "MRN-1")).await.unwrap();
    put_guarded(&store, &t, "p1", key("mrn", "MRN-1")).await.expect("the owner may keep its key");
    let taken = put_guarded(&store, &t, "p2", key("mrn", "MRN-1")).await;
    assert!(matches!(&taken, Err(StoreError::KeyTaken { owner, .. }) if owner == "Patient/p1"), "{taken:?}");
    assert!(store.read_current(&t, "Patient", "p2").await.unwrap().is_none(), "the refused write left nothing");
    put_guarded(&store, &tenant("b"), "p9", key("mrn", "MRN-1")).await.expect("keys are per tenant");
    put_guarded(&store, &t, "p1", key("mrn", "MRN-2")).await.unwrap();
    put_guarded(&store, &t, "p2", key("mrn", "MRN-1")).await.expect("a released key can be taken");
    store.write(&t, WriteRequest::new("Patient", "p2", Change::Delete)).await.unwrap();
    put_guarded(&store, &t, "p3", key("mrn", "MRN-1")).await.expect("a deleted resource holds no keys");
}

async fn busy_intervals_do_not_overlap(store: DynStore) {
    let t = tenant("a");
    put_guarded(&store, &t, "a1", busy(100, 200)).await.unwrap();
    assert!(matches!(put_guarded(&store, &t, "a2", busy(150, 250)).await, Err(StoreError::Overlap { .. })));
    assert!(matches!(put_guarded(&store, &t, "a2", busy(50, 101)).await, Err(StoreError::Overlap { .. })));
    put_guarded(&store, &t, "a2", busy(200, 300)).await.expect("back-to-back is fine");
    put_guarded(&store, &t, "a1", busy(120, 190)).await.expect("moving within its own time is fine");
}

async fn concurrent_bookings_of_one_slot_have_one_winner(store: DynStore) {
    let t = tenant("a");
    let attempts = (0..10).map(|i| {
        let (store, t) = (store.clone(), t.clone());
        tokio::spawn(async move { put_guarded(&store, &t, &format!("appt{i}"), busy(1_000, 2_000)).await })
    });
    let results: Vec<_> = futures_util::future::join_all(attempts).await.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(StoreError::Overlap { .. }))));
}

async fn sequences_count_per_tenant(store: DynStore) {
    let (a, b) = (tenant("a"), tenant("b"));
    assert_eq!(store.next_sequence(&a, "mrn-2026").await.unwrap(), 1);
    assert_eq!(store.next_sequence(&a, "mrn-2026").await.unwrap(), 2);
    assert_eq!(store.next_sequence(&b, "mrn-2026").await.unwrap(), 1);
    assert_eq!(store.next_sequence(&a, "mrn-2027").await.unwrap(), 1);
}

async fn statistics_refresh_after_enough_writes(store: DynStore) {
    let t = tenant("a");
    assert_eq!(store.refresh_statistics(3).await.unwrap(), None, "no writes yet");
    for i in 0..3 {
        put(&store, &t, &format!("s{i}"), &format!(r#"{{"resourceType":"Patient","id":"s{i}"}}"#), None).await.unwrap();
    }
    assert_eq!(store.refresh_statistics(3).await.unwrap(), Some(3));
    assert_eq!(store.refresh_statistics(3).await.unwrap(), None, "the count starts again");
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() {
                let (url, _dir) = super::fresh_database(super::Backend::Sqlite).await.unwrap();
                super::$case(kiln::store::connect(&url, 2).await.unwrap()).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() {
                let Some((url, _dir)) = super::fresh_database(super::Backend::Postgres).await else { return };
                super::$case(kiln::store::connect(&url, 2).await.unwrap()).await;
            })*
        }
    };
}

contract!(
    every_version_is_kept,
    tenants_do_not_see_each_other,
    if_match_and_create_conflicts,
    deletes_are_versions,
    history_filters_and_pages,
    unique_keys_are_held_by_one_resource,
    busy_intervals_do_not_overlap,
    concurrent_bookings_of_one_slot_have_one_winner,
    sequences_count_per_tenant,
    statistics_refresh_after_enough_writes,
);

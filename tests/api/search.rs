//! Search (FHIR R4 search.html) on both backends: each parameter type, modifiers, AND/OR,
//! result control and paging, and clear refusals.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_outcome};

async fn ids(app: &TestApp, query: &str) -> Vec<String> {
    let response = app.get(query).await;
    assert_eq!(response.status(), StatusCode::OK, "{query}");
    let bundle: Value = response.json().await.unwrap();
    assert_eq!(bundle["type"], "searchset");
    let mut ids: Vec<String> = bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| e["resource"]["id"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

/// The URL of a Bundle's link with `relation`.
fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .map(|l| l["url"].as_str().unwrap().to_string())
}

/// The Bundle behind a Bundle's link.
async fn follow(app: &TestApp, bundle: &Value, relation: &str) -> Value {
    let url = link(bundle, relation).unwrap_or_else(|| panic!("no {relation} link: {bundle}"));
    app.client.get(url).send().await.unwrap().json().await.unwrap()
}

async fn seed(app: &TestApp) {
    let patients = [
        json!({"resourceType": "Patient", "id": "zoe", "name": [{"family": "Müller", "given": ["Zoë"]}], "gender": "female",
            "birthDate": "1980-02-14", "identifier": [{"system": "urn:mrn", "value": "A1"}],
            "telecom": [{"system": "email", "value": "zoe@example.org"}], "active": true,
            "generalPractitioner": [{"reference": "Practitioner/dr1"}], "address": [{"city": "Springfield", "postalCode": "62701"}]}),
        json!({"resourceType": "Patient", "id": "max", "name": [{"family": "Mustermann", "given": ["Max"]}], "gender": "male",
            "birthDate": "1975-06", "identifier": [{"system": "urn:other", "value": "A1"}], "active": false,
            "generalPractitioner": [{"reference": "Practitioner/dr2"}]}),
        json!({"resourceType": "Patient", "id": "ann", "name": [{"family": "Annan", "given": ["Ann"]}], "birthDate": "2001-01-01"}),
    ];
    for p in &patients {
        let id = p["id"].as_str().unwrap();
        assert_eq!(app.put(&format!("Patient/{id}"), p).await.status(), StatusCode::CREATED);
    }
    for (id, patient, value, date) in [
        ("o1", "zoe", 72.0, "2024-03-01T10:00:00Z"),
        ("o2", "zoe", 120.0, "2024-05-01T10:00:00Z"),
        ("o3", "max", 55.5, "2023-12-31T23:00:00-05:00"),
    ] {
        let obs = json!({"resourceType": "Observation", "id": id, "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}], "text": "Heart rate"},
            "subject": {"reference": format!("Patient/{patient}")}, "effectiveDateTime": date,
            "valueQuantity": {"value": value, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}});
        assert_eq!(app.put(&format!("Observation/{id}"), &obs).await.status(), StatusCode::CREATED);
    }
}

async fn string_parameters(app: TestApp) {
    seed(&app).await;
    assert_eq!(ids(&app, "Patient?family=mul").await, ["zoe"], "starts-with, accent- and case-insensitive");
    assert_eq!(ids(&app, "Patient?name=zoe").await, ["zoe"], "name searches given names too");
    assert_eq!(ids(&app, "Patient?family:exact=Müller").await, ["zoe"]);
    assert!(ids(&app, "Patient?family:exact=muller").await.is_empty());
    assert_eq!(ids(&app, "Patient?family:contains=ster").await, ["max"]);
    assert_eq!(ids(&app, "Patient?address-city=spring").await, ["zoe"]);
    assert_eq!(ids(&app, "Patient?family=mul,ann").await, ["ann", "zoe"], "comma is OR");
    assert!(ids(&app, "Patient?family=mul&given=max").await.is_empty(), "repetition is AND");
}

async fn token_parameters(app: TestApp) {
    seed(&app).await;
    assert_eq!(ids(&app, "Patient?gender=female").await, ["zoe"]);
    assert_eq!(ids(&app, "Patient?identifier=A1").await, ["max", "zoe"]);
    assert_eq!(ids(&app, "Patient?identifier=urn:mrn|A1").await, ["zoe"]);
    assert_eq!(ids(&app, "Patient?identifier=urn:other|").await, ["max"]);
    assert_eq!(ids(&app, "Patient?gender:not=female").await, ["ann", "max"]);
    assert_eq!(ids(&app, "Patient?active=true").await, ["zoe"]);
    assert_eq!(ids(&app, "Patient?email=zoe@example.org").await, ["zoe"]);
    assert_eq!(ids(&app, "Observation?code=http://loinc.org|8867-4").await, ["o1", "o2", "o3"]);
    assert_eq!(ids(&app, "Observation?code:text=heart").await, ["o1", "o2", "o3"]);
    assert!(ids(&app, "Observation?code=|8867-4").await.is_empty(), "|code means no system");
}

async fn date_number_and_quantity_parameters(app: TestApp) {
    seed(&app).await;
    assert_eq!(ids(&app, "Patient?birthdate=1980").await, ["zoe"], "a year covers the whole year");
    assert_eq!(
        ids(&app, "Patient?birthdate=1975-06-15").await,
        Vec::<String>::new(),
        "a month-precision value is not within one day"
    );
    assert_eq!(ids(&app, "Patient?birthdate=ge1980-01-01").await, ["ann", "zoe"]);
    assert_eq!(ids(&app, "Patient?birthdate=lt1980").await, ["max"]);
    assert_eq!(ids(&app, "Patient?birthdate=ge1975&birthdate=le1990").await, ["max", "zoe"]);
    assert_eq!(ids(&app, "Patient?birthdate=ne1980").await, ["ann", "max"]);
    assert_eq!(ids(&app, "Observation?date=2024-03").await, ["o1"]);
    assert_eq!(
        ids(&app, "Observation?date=2024-01-01").await,
        ["o3"],
        "time zones are honoured (-05:00 is the next day in UTC)"
    );
    assert_eq!(ids(&app, "Observation?value-quantity=gt100").await, ["o2"]);
    assert_eq!(ids(&app, "Observation?value-quantity=55.5|http://unitsofmeasure.org|/min").await, ["o3"]);
    assert_eq!(ids(&app, "Observation?value-quantity=56").await, ["o3"], "56 means 55.5 up to (not including) 56.5");
    assert_eq!(
        ids(&app, "Observation?value-quantity=55.4").await,
        Vec::<String>::new(),
        "55.4 means 55.35 up to 55.45"
    );
    assert_eq!(ids(&app, "Observation?value-quantity=57").await, Vec::<String>::new());
    assert_eq!(ids(&app, "Observation?value-quantity=72||/min").await, ["o1"]);
    assert_eq!(ids(&app, "Observation?value-quantity=ne72").await, ["o2", "o3"], "ne: outside 71.5 up to 72.5");

    // UCUM units of one dimension compare in their canonical unit: 70 kg, 70000 g and 154.3 lb
    // (of a specimen: body weight must be recorded in kg or [lb_av]).
    let weight = |id: &str, value: f64, code: &str| {
        json!({"resourceType": "Observation", "id": id, "status": "final",
            "code": {"text": "specimen mass"}, "subject": {"reference": "Patient/zoe"},
            "valueQuantity": {"value": value, "unit": code, "system": "http://unitsofmeasure.org", "code": code}})
    };
    for (id, value, code) in [("w1", 70.0, "kg"), ("w2", 70000.0, "g"), ("w3", 154.3, "[lb_av]"), ("w4", 80.0, "kg")] {
        assert_eq!(app.put(&format!("Observation/{id}"), &weight(id, value, code)).await.status(), StatusCode::CREATED);
    }
    let ucum = |query: &str| format!("Observation?code:text=specimen&value-quantity={query}");
    assert_eq!(ids(&app, &ucum("70|http://unitsofmeasure.org|kg")).await, ["w1", "w2", "w3"]);
    assert_eq!(ids(&app, &ucum("70000|http://unitsofmeasure.org|g")).await, ["w1", "w2"], "154.3 lb is 69989 g");
    assert_eq!(ids(&app, &ucum("gt75000|http://unitsofmeasure.org|g")).await, ["w4"]);
    assert_eq!(ids(&app, &ucum("le0.07|http://unitsofmeasure.org|kg")).await, Vec::<String>::new(), "0.07 kg is 70 g");
    // Without a system, units are compared as written, and canonical copies never match.
    assert_eq!(ids(&app, &ucum("70||kg")).await, ["w1"]);
    assert_eq!(ids(&app, &ucum("70000")).await, ["w2"]);
    assert_eq!(ids(&app, &ucum("gt100")).await, ["w2", "w3"]);
    let by_value: Value = app.get(&format!("{}&_sort=value-quantity", ucum("gt0"))).await.json().await.unwrap();
    let sorted: Vec<&str> =
        by_value["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap()).collect();
    assert_eq!(sorted, ["w1", "w4", "w3", "w2"], "sorted by the values as recorded");
}

async fn reference_parameters(app: TestApp) {
    seed(&app).await;
    assert_eq!(ids(&app, "Observation?subject=Patient/zoe").await, ["o1", "o2"]);
    assert_eq!(ids(&app, "Observation?patient=zoe").await, ["o1", "o2"], "a single target type needs no prefix");
    assert_eq!(ids(&app, "Observation?subject:Patient=max").await, ["o3"]);
    let absolute = format!("Observation?subject={}", app.url("Patient/max"));
    assert_eq!(ids(&app, &absolute).await, ["o3"], "this server's own absolute URLs are local references");
    assert_eq!(ids(&app, "Patient?general-practitioner=Practitioner/dr1").await, ["zoe"]);
    assert_eq!(ids(&app, "Patient?general-practitioner:missing=true").await, ["ann"]);
    assert_eq!(ids(&app, "Patient?general-practitioner:missing=false").await, ["max", "zoe"]);
}

async fn common_parameters_and_result_control(app: TestApp) {
    seed(&app).await;
    assert_eq!(ids(&app, "Patient?_id=zoe,ann").await, ["ann", "zoe"]);
    let now = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(ids(&app, &format!("Patient?_lastUpdated=ge{now}")).await.len(), 3);
    let bundle: Value = app.get("Patient?_summary=count").await.json().await.unwrap();
    assert_eq!(bundle["total"], 3);
    assert!(bundle.get("entry").is_none());
    let bundle: Value = app.get("Patient?_elements=gender&_id=zoe").await.json().await.unwrap();
    assert_eq!(bundle["entry"][0]["resource"]["gender"], "female");
    assert!(bundle["entry"][0]["resource"].get("name").is_none());
    assert_eq!(bundle["entry"][0]["search"]["mode"], "match");
    let bundle: Value = app.get("Patient?_total=none").await.json().await.unwrap();
    assert!(bundle.get("total").is_none());
    // An estimate: PostgreSQL's planner's, SQLite's exact count (it keeps no row estimates).
    let bundle: Value = app.get("Patient?_total=estimate").await.json().await.unwrap();
    if app.database_url.starts_with("sqlite") {
        assert_eq!(bundle["total"], 3);
    } else {
        assert!(bundle["total"].is_u64(), "{bundle}");
    }
    assert_eq!(bundle["entry"].as_array().unwrap().len(), 3, "the matches themselves are exact");

    // Paging: every patient once, in _id order, following next links.
    let mut page: Value = app.get("Patient?_count=2").await.json().await.unwrap();
    assert_eq!(page["total"], 3);
    let mut seen = Vec::new();
    loop {
        seen.extend(
            page["entry"].as_array().into_iter().flatten().map(|e| e["resource"]["id"].as_str().unwrap().to_string()),
        );
        let next = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_string());
        match next {
            Some(url) => page = app.client.get(url).send().await.unwrap().json().await.unwrap(),
            None => break,
        }
    }
    assert_eq!(seen, ["ann", "max", "zoe"]);
    let sorted: Value = app.get("Patient?_sort=-_id").await.json().await.unwrap();
    assert_eq!(sorted["entry"][0]["resource"]["id"], "zoe");
    let order = |bundle: &Value| -> Vec<String> {
        let entries = bundle["entry"].as_array().unwrap_or_else(|| panic!("no entries: {bundle}"));
        entries.iter().map(|e| e["resource"]["id"].as_str().unwrap().to_string()).collect()
    };
    let by_birth: Value = app.get("Patient?_sort=birthdate").await.json().await.unwrap();
    assert_eq!(order(&by_birth), ["max", "zoe", "ann"]);
    let by_birth_desc: Value = app.get("Patient?_sort=-birthdate").await.json().await.unwrap();
    assert_eq!(order(&by_birth_desc), ["ann", "zoe", "max"]);
    let by_gender_then_family: Value = app.get("Patient?_sort=gender,-family").await.json().await.unwrap();
    assert_eq!(order(&by_gender_then_family), ["zoe", "max", "ann"], "ann has no gender: last");
    // Sorted pages follow on from each other.
    let first: Value = app.get("Patient?_sort=birthdate&_count=2").await.json().await.unwrap();
    let next = first["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next").unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let second: Value = app.client.get(next).send().await.unwrap().json().await.unwrap();
    assert_eq!([order(&first), order(&second)].concat(), ["max", "zoe", "ann"]);
    let back = link(&second, "previous").expect("a later page links back");
    let again: Value = app.client.get(back).send().await.unwrap().json().await.unwrap();
    assert_eq!(order(&again), ["max", "zoe"]);

    // Keyset pages link back (previous) and to the start (first), in both orders.
    for (query, expected) in
        [("Patient?_count=1", ["ann", "max", "zoe"]), ("Patient?_count=1&_sort=-_id", ["zoe", "max", "ann"])]
    {
        let page1: Value = app.get(query).await.json().await.unwrap();
        assert!(link(&page1, "previous").is_none(), "the first page has no previous");
        let page2: Value = follow(&app, &page1, "next").await;
        let page3: Value = follow(&app, &page2, "next").await;
        assert!(link(&page3, "next").is_none());
        let back2: Value = follow(&app, &page3, "previous").await;
        let back1: Value = follow(&app, &back2, "previous").await;
        assert_eq!([order(&page1), order(&page2), order(&page3)].concat(), expected);
        assert_eq!([order(&back1), order(&back2)].concat(), expected[..2], "previous pages hold the same entries");
        assert!(link(&back1, "previous").is_none(), "back at the start");
        assert_eq!(order(&follow(&app, &back1, "next").await), order(&page2), "and forward again");
        assert_eq!(order(&follow(&app, &page3, "first").await), order(&page1));
    }
    // A cursor that was changed is refused (400), not followed.
    let next = link(&first, "next").unwrap();
    let at = next.find("_cursor=").unwrap() + "_cursor=".len();
    let mut tampered = next.clone();
    let flipped = if &next[at..at + 1] == "A" { "B" } else { "A" };
    tampered.replace_range(at..at + 1, flipped);
    let refused = app.client.get(&tampered).send().await.unwrap();
    let outcome = crate::helpers::expect_outcome(refused, StatusCode::BAD_REQUEST).await;
    assert!(outcome.to_string().contains("_cursor"), "{outcome}");
    let raw = app.get("Patient?_cursor=0:ann").await;
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST, "a cursor not made by the server is refused");

    // POST _search takes the same parameters as a form.
    let response = app
        .client
        .post(app.url("Patient/_search"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("family=mul")
        .send()
        .await
        .unwrap();
    let bundle: Value = response.json().await.unwrap();
    assert_eq!(bundle["total"], 1);

    // Deleted and updated resources: search sees the current versions only.
    app.delete("Patient/ann").await;
    assert!(ids(&app, "Patient?family=annan").await.is_empty());
    let mut max: Value = app.get("Patient/max").await.json().await.unwrap();
    max["name"][0]["family"] = json!("Schmidt");
    app.put("Patient/max", &max).await;
    assert!(ids(&app, "Patient?family=muster").await.is_empty());
    assert_eq!(ids(&app, "Patient?family=schmidt").await, ["max"]);
}

async fn chains_and_reverse_chains(app: TestApp) {
    seed(&app).await;
    assert_eq!(ids(&app, "Observation?subject:Patient.family=mul").await, ["o1", "o2"]);
    assert_eq!(ids(&app, "Observation?patient.gender=male").await, ["o3"], "a single-target parameter needs no type");
    let practitioner = json!({"resourceType": "Practitioner", "id": "dr2", "name": [{"family": "Who"}]});
    assert_eq!(app.put("Practitioner/dr2", &practitioner).await.status(), StatusCode::CREATED);
    assert_eq!(
        ids(&app, "Observation?patient.general-practitioner:Practitioner.family=who").await,
        ["o3"],
        "two levels"
    );
    assert!(ids(&app, "Observation?patient.general-practitioner:Practitioner.family=nobody").await.is_empty());
    assert_eq!(ids(&app, "Observation?patient.general-practitioner=Practitioner/dr1").await, ["o1", "o2"]);
    let body = expect_outcome(app.get("Observation?subject.family=x").await, StatusCode::BAD_REQUEST).await;
    assert!(body["issue"][0]["diagnostics"].as_str().unwrap().contains("name the type"), "{body}");
    assert_eq!(ids(&app, "Patient?_has:Observation:patient:value-quantity=gt100").await, ["zoe"]);
    assert_eq!(ids(&app, "Patient?_has:Observation:patient:code=8867-4").await, ["max", "zoe"]);
    assert!(ids(&app, "Patient?_has:Observation:patient:code=0000-0").await.is_empty());
    expect_outcome(app.get("Patient?_has:Observation:code:code=x").await, StatusCode::BAD_REQUEST).await;
}

async fn includes_and_revincludes(app: TestApp) {
    seed(&app).await;
    let bundle: Value = app.get("Observation?_id=o1&_include=Observation:subject").await.json().await.unwrap();
    let modes: Vec<(String, String)> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["resource"]["id"].as_str().unwrap().to_string(), e["search"]["mode"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(modes, [("o1".to_string(), "match".to_string()), ("zoe".to_string(), "include".to_string())]);
    assert_eq!(bundle["total"], 1, "included resources do not count");

    let bundle: Value = app.get("Patient?_id=zoe&_revinclude=Observation:subject").await.json().await.unwrap();
    let mut included: Vec<&str> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["search"]["mode"] == "include")
        .map(|e| e["resource"]["id"].as_str().unwrap())
        .collect();
    included.sort();
    assert_eq!(included, ["o1", "o2"]);

    // :iterate follows the included Observations on to their subjects.
    let bundle: Value = app
        .get("Observation?_id=o3&_include=Observation:subject&_revinclude:iterate=Observation:subject")
        .await
        .json()
        .await
        .unwrap();
    let count = bundle["entry"].as_array().unwrap().len();
    assert_eq!(count, 2, "o3 and max; max's only Observation is o3 itself, listed once");
    expect_outcome(app.get("Observation?_include=Observation:colour").await, StatusCode::BAD_REQUEST).await;
    expect_outcome(app.get("Observation?_include=Spaceship:subject").await, StatusCode::BAD_REQUEST).await;
}

async fn identifier_modifiers(app: TestApp) {
    let patient = json!({"resourceType": "Patient", "id": "idp", "identifier": [{
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
        "system": "urn:clinic", "value": "MRN-9"}]});
    app.put("Patient/idp", &patient).await;
    assert_eq!(
        ids(&app, "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|MRN-9").await,
        ["idp"]
    );
    assert!(
        ids(&app, "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|SS|MRN-9").await.is_empty()
    );
    expect_outcome(app.get("Patient?identifier:of-type=MR").await, StatusCode::BAD_REQUEST).await;
    let obs = json!({"resourceType": "Observation", "id": "by-identifier", "status": "final", "code": {"text": "x"},
        "subject": {"identifier": {"system": "urn:clinic", "value": "MRN-9"}}});
    app.put("Observation/by-identifier", &obs).await;
    assert_eq!(ids(&app, "Observation?subject:identifier=urn:clinic|MRN-9").await, ["by-identifier"]);
    assert!(ids(&app, "Observation?subject:identifier=urn:clinic|MRN-1").await.is_empty());
}

async fn meta_parameters(app: TestApp) {
    let tagged = json!({"resourceType": "Patient", "id": "tagged", "meta": {
        "tag": [{"system": "urn:tags", "code": "vip"}], "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}],
        "profile": ["http://example.org/StructureDefinition/p"], "source": "urn:source:ehr-a"}});
    app.put("Patient/tagged", &tagged).await;
    app.put("Patient/plain", &json!({"resourceType": "Patient", "id": "plain"})).await;
    assert_eq!(ids(&app, "Patient?_tag=urn:tags|vip").await, ["tagged"]);
    assert_eq!(ids(&app, "Patient?_security=R").await, ["tagged"]);
    assert_eq!(ids(&app, "Patient?_profile=http://example.org/StructureDefinition/p").await, ["tagged"]);
    assert_eq!(ids(&app, "Patient?_source=urn:source:ehr-a").await, ["tagged"]);
    assert_eq!(ids(&app, "Patient?_tag:missing=true").await, ["plain"]);
}

async fn patient_compartment_search(app: TestApp) {
    seed(&app).await;
    assert_eq!(ids(&app, "Patient/zoe/Observation").await, ["o1", "o2"]);
    assert_eq!(ids(&app, "Patient/zoe/Observation?value-quantity=gt100").await, ["o2"]);
    assert_eq!(ids(&app, "Patient/max/Observation").await, ["o3"]);
    assert_eq!(ids(&app, "Patient/zoe/Patient").await, ["zoe"]);
    let bundle: Value = app.get("Patient/zoe/Observation?_count=1").await.json().await.unwrap();
    let next = bundle["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next").unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(next.starts_with(&app.url("Patient/zoe/Observation?")), "{next}");
    expect_outcome(app.get("Patient/zoe/Practitioner").await, StatusCode::BAD_REQUEST).await;
    expect_outcome(app.get("Encounter/e1/Observation").await, StatusCode::BAD_REQUEST).await;
    expect_outcome(app.get("Patient/zoe/Spaceship").await, StatusCode::NOT_FOUND).await;
}

async fn bad_search_parameters_are_named(app: TestApp) {
    let body = expect_outcome(app.get("Patient?colour=blue").await, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["issue"][0]["expression"][0], "colour");
    let body = expect_outcome(app.get("Patient?birthdate=yesterday").await, StatusCode::BAD_REQUEST).await;
    assert!(body["issue"][0]["diagnostics"].as_str().unwrap().contains("yesterday"));
    let body = expect_outcome(app.get("Patient?_text=diabetes").await, StatusCode::BAD_REQUEST).await;
    assert!(body["issue"][0]["diagnostics"].as_str().unwrap().contains("not supported yet"));
    expect_outcome(app.get("Patient?gender:fuzzy=x").await, StatusCode::BAD_REQUEST).await;
    let body = expect_outcome(app.get("Patient?_sort=colour").await, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["issue"][0]["expression"][0], "_sort");
    expect_outcome(app.get("Spaceship?name=x").await, StatusCode::NOT_FOUND).await;
    let json_body = app
        .client
        .post(app.url("Patient/_search"))
        .header("content-type", "application/fhir+json")
        .body("{\"family\": \"x\"}")
        .send()
        .await
        .unwrap();
    expect_outcome(json_body, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let lenient =
        app.client.get(app.url("Patient?colour=blue")).header("prefer", "handling=lenient").send().await.unwrap();
    assert_eq!(lenient.status(), StatusCode::OK);
    assert!(lenient.headers()["x-kiln-ignored-parameters"].to_str().unwrap().contains("colour"));
}

async fn list_and_value_set_membership(app: TestApp) {
    seed(&app).await;
    let list = json!({"resourceType": "List", "id": "watch", "status": "current", "mode": "working",
        "entry": [{"item": {"reference": "Patient/zoe"}}, {"item": {"reference": "Patient/ann"}},
                  {"item": {"reference": "Observation/o3"}}]});
    assert_eq!(app.put("List/watch", &list).await.status(), StatusCode::CREATED);
    assert_eq!(ids(&app, "Patient?_list=watch").await, ["ann", "zoe"]);
    assert_eq!(ids(&app, "Observation?_list=watch").await, ["o3"]);
    assert_eq!(ids(&app, "Patient?_list=watch&gender=female").await, ["zoe"]);
    assert!(ids(&app, "Patient?_list=nothing").await.is_empty());

    let value_set = json!({"resourceType": "ValueSet", "id": "vitals", "url": "http://example.org/ValueSet/heart",
        "status": "active", "compose": {"include": [{"system": "http://loinc.org",
            "concept": [{"code": "8867-4"}, {"code": "8480-6"}]}]}});
    assert_eq!(app.put("ValueSet/vitals", &value_set).await.status(), StatusCode::CREATED);
    let glucose = json!({"resourceType": "Observation", "id": "g1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]}, "subject": {"reference": "Patient/ann"}});
    assert_eq!(app.put("Observation/g1", &glucose).await.status(), StatusCode::CREATED);
    assert_eq!(ids(&app, "Observation?code:in=http://example.org/ValueSet/heart").await, ["o1", "o2", "o3"]);
    assert_eq!(ids(&app, "Observation?code:not-in=http://example.org/ValueSet/heart").await, ["g1"]);
    let expanded = json!({"resourceType": "ValueSet", "id": "glucose", "url": "http://example.org/ValueSet/glucose",
        "status": "active", "expansion": {"timestamp": "2024-01-01T00:00:00Z",
            "contains": [{"system": "http://loinc.org", "code": "2345-7"}]}});
    assert_eq!(app.put("ValueSet/glucose", &expanded).await.status(), StatusCode::CREATED);
    assert_eq!(ids(&app, "Observation?code:in=http://example.org/ValueSet/glucose").await, ["g1"]);
    let body =
        expect_outcome(app.get("Observation?code:in=http://example.org/ValueSet/none").await, StatusCode::BAD_REQUEST)
            .await;
    assert_eq!(body["issue"][0]["expression"][0], "code:in");
    let filtered = json!({"resourceType": "ValueSet", "id": "f", "url": "http://example.org/ValueSet/filtered",
        "status": "active", "compose": {"include": [{"system": "http://loinc.org",
            "filter": [{"property": "class", "op": "=", "value": "CHEM"}]}]}});
    assert_eq!(app.put("ValueSet/f", &filtered).await.status(), StatusCode::CREATED);
    expect_outcome(app.get("Observation?code:in=http://example.org/ValueSet/filtered").await, StatusCode::BAD_REQUEST)
        .await;
}

/// `GET [base]?query`: a search over several types.
async fn system(app: &TestApp, query: &str) -> reqwest::Response {
    app.client.get(format!("{}{query}", app.base)).send().await.unwrap()
}

async fn searches_over_several_types(app: TestApp) {
    seed(&app).await;
    let order = |bundle: &Value| -> Vec<String> {
        bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                format!("{}/{}", e["resource"]["resourceType"].as_str().unwrap(), e["resource"]["id"].as_str().unwrap())
            })
            .collect()
    };
    // Every match once, in (id, type) order, page after page; the total counts every type.
    let mut page: Value = system(&app, "?_type=Patient,Observation&_count=2").await.json().await.unwrap();
    assert_eq!(page["total"], 6, "{page}");
    let mut seen = order(&page);
    while link(&page, "next").is_some() {
        page = follow(&app, &page, "next").await;
        seen.extend(order(&page));
    }
    assert_eq!(
        seen,
        ["Patient/ann", "Patient/max", "Observation/o1", "Observation/o2", "Observation/o3", "Patient/zoe"]
    );
    assert_eq!(order(&follow(&app, &page, "first").await), ["Patient/ann", "Patient/max"]);
    // Back from the last page by `previous` links: the same pages in reverse, also where two
    // types share an id (Observation/ann sorts after Patient/ann in (id, type) order).
    let note = json!({"resourceType": "Observation", "id": "ann", "status": "final", "code": {"text": "note"},
        "subject": {"reference": "Patient/ann"}});
    assert_eq!(app.put("Observation/ann", &note).await.status(), StatusCode::CREATED);
    for (sort, expected) in [
        (
            "_id",
            vec![
                "Observation/ann",
                "Patient/ann",
                "Patient/max",
                "Observation/o1",
                "Observation/o2",
                "Observation/o3",
                "Patient/zoe",
            ],
        ),
        (
            "-_id",
            vec![
                "Patient/zoe",
                "Observation/o3",
                "Observation/o2",
                "Observation/o1",
                "Patient/max",
                "Observation/ann",
                "Patient/ann",
            ],
        ),
    ] {
        let mut page: Value =
            system(&app, &format!("?_type=Patient,Observation&_sort={sort}&_count=2")).await.json().await.unwrap();
        assert!(link(&page, "previous").is_none(), "the first page has no previous");
        let mut forward = vec![order(&page)];
        while link(&page, "next").is_some() {
            page = follow(&app, &page, "next").await;
            forward.push(order(&page));
        }
        assert_eq!(forward.concat(), expected, "{sort}");
        let mut backward = vec![order(&page)];
        while link(&page, "previous").is_some() {
            page = follow(&app, &page, "previous").await;
            backward.push(order(&page));
        }
        backward.reverse();
        assert_eq!(backward, forward, "{sort}: previous links walk the same pages back");
        assert_eq!(order(&follow(&app, &page, "next").await), forward[1], "{sort}");
    }
    assert_eq!(app.delete("Observation/ann").await.status(), StatusCode::NO_CONTENT);
    // Newest first, across the types, and with a type's own parameter named for every type.
    let newest: Value =
        system(&app, "?_type=Observation,Patient&_sort=-_lastUpdated&_count=4").await.json().await.unwrap();
    assert_eq!(order(&newest), ["Observation/o3", "Observation/o2", "Observation/o1", "Patient/ann"]);
    assert_eq!(order(&follow(&app, &newest, "next").await), ["Patient/max", "Patient/zoe"]);
    let women: Value = system(&app, "?_type=Patient&gender=female").await.json().await.unwrap();
    assert_eq!(order(&women), ["Patient/zoe"]);
    // Without _type every type is searched, with the parameters every type has.
    let by_id: Value = system(&app, "?_id=o2,max").await.json().await.unwrap();
    assert_eq!(order(&by_id), ["Patient/max", "Observation/o2"]);
    let posted = app
        .client
        .post(app.url("_search"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("_type=Observation&subject=Patient/zoe")
        .send()
        .await
        .unwrap();
    assert_eq!(order(&posted.json().await.unwrap()), ["Observation/o1", "Observation/o2"]);
    // Parameters that are not every searched type's, and unknown types, are named.
    let outcome = expect_outcome(system(&app, "?family=annan").await, StatusCode::BAD_REQUEST).await;
    assert!(outcome.to_string().contains("family"), "{outcome}");
    let outcome =
        expect_outcome(system(&app, "?_type=Patient,Observation&family=annan").await, StatusCode::BAD_REQUEST).await;
    assert!(outcome.to_string().contains("family"), "{outcome}");
    let outcome = expect_outcome(system(&app, "?_type=Nonsense").await, StatusCode::BAD_REQUEST).await;
    assert!(outcome.to_string().contains("Nonsense"), "{outcome}");
    let outcome = expect_outcome(system(&app, "?_type=Patient&_sort=birthdate").await, StatusCode::BAD_REQUEST).await;
    assert!(outcome.to_string().contains("_lastUpdated"), "{outcome}");
}

/// Runs one statement directly on the test database, as an older version's index would have it.
async fn execute_directly(app: &TestApp, sql: &'static str) {
    if app.database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

async fn kiln_reindex_rebuilds_the_index_from_the_definitions(app: TestApp) {
    seed(&app).await;
    let weight = json!({"resourceType": "Observation", "id": "w1", "status": "final",
        "code": {"text": "specimen mass"}, "subject": {"reference": "Patient/zoe"},
        "valueQuantity": {"value": 70, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}});
    assert_eq!(app.put("Observation/w1", &weight).await.status(), StatusCode::CREATED);
    let in_grams = "Observation?value-quantity=70000|http://unitsofmeasure.org|g";
    assert_eq!(ids(&app, in_grams).await, ["w1"]);
    // An index written before quantities had canonical rows.
    execute_directly(&app, "DELETE FROM search_quantity WHERE system = 'urn:kiln:ucum-canonical'").await;
    assert!(ids(&app, in_grams).await.is_empty());
    let output = crate::helpers::kiln_cli(&app, &["reindex", "--type", "Observation"], &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("test-clinic\tObservation\t4"), "{printed}");
    assert_eq!(ids(&app, in_grams).await, ["w1"]);
    assert_eq!(ids(&app, "Observation?value-quantity=70||kg").await, ["w1"], "the recorded rows are back too");
    let stored: Value = app.get("Observation/w1").await.json().await.unwrap();
    assert_eq!(stored["meta"]["versionId"], "1", "reindexing writes no version");
    let unknown = crate::helpers::kiln_cli(&app, &["reindex", "--type", "Nonsense"], &[]);
    assert!(!unknown.status.success());
}

/// Both parts of a composite value must match one element: the Observation itself, or one of its
/// components (search.html#composite).
async fn composite_parameters(app: TestApp) {
    seed(&app).await;
    let loinc = |code: &str| json!({"coding": [{"system": "http://loinc.org", "code": code}]});
    let mm_hg =
        |value: f64| json!({"value": value, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"});
    let panel = |id: &str, systolic: f64, diastolic: f64| {
        json!({"resourceType": "Observation", "id": id, "status": "final", "code": loinc("85354-9"),
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "subject": {"reference": "Patient/zoe"}, "effectiveDateTime": "2024-06-01T09:00:00Z",
            "component": [{"code": loinc("8480-6"), "valueQuantity": mm_hg(systolic)},
                          {"code": loinc("8462-4"), "valueQuantity": mm_hg(diastolic)}]})
    };
    // Neither diastolic is above 100, both systolics are: a search that paired any code of the
    // Observation with any value would find both for a diastolic above 100.
    for (id, systolic, diastolic) in [("bp1", 140.0, 90.0), ("bp2", 120.0, 95.0)] {
        let response = app.put(&format!("Observation/{id}"), &panel(id, systolic, diastolic)).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{}", response.text().await.unwrap());
    }
    let others = [
        json!({"resourceType": "Observation", "id": "smoker", "status": "final", "code": loinc("72166-2"),
            "subject": {"reference": "Patient/max"},
            "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "77176002"}]}}),
        json!({"resourceType": "Observation", "id": "onset", "status": "final", "code": loinc("11368-8"),
            "subject": {"reference": "Patient/max"}, "valueDateTime": "2021-06-15"}),
        json!({"resourceType": "Observation", "id": "note", "status": "final", "code": loinc("8251-1"),
            "subject": {"reference": "Patient/max"}, "valueString": "Mild $ headache"}),
    ];
    for resource in &others {
        let id = resource["id"].as_str().unwrap();
        assert_eq!(app.put(&format!("Observation/{id}"), resource).await.status(), StatusCode::CREATED);
    }

    let heart_rate = "http://loinc.org|8867-4";
    assert_eq!(ids(&app, &format!("Observation?code-value-quantity={heart_rate}$gt100")).await, ["o2"]);
    assert_eq!(ids(&app, "Observation?code-value-quantity=8867-4$lt60").await, ["o3"], "a code without a system");
    assert_eq!(ids(&app, "Observation?code-value-quantity=8867-4$72||/min").await, ["o1"]);
    assert_eq!(
        ids(&app, "Observation?code-value-quantity=8867-4$lt60,8867-4$gt100").await,
        ["o2", "o3"],
        "comma is OR"
    );
    assert!(ids(&app, "Observation?code-value-quantity=8867-4$gt100&code-value-quantity=8867-4$lt60").await.is_empty());
    assert!(
        ids(&app, "Observation?code-value-quantity=http://loinc.org|8480-6$gt100").await.is_empty(),
        "the code is the Observation's"
    );

    assert_eq!(ids(&app, "Observation?component-code-value-quantity=http://loinc.org|8480-6$gt125").await, ["bp1"]);
    assert!(ids(&app, "Observation?component-code-value-quantity=8462-4$gt100").await.is_empty());
    assert_eq!(ids(&app, "Observation?component-code-value-quantity=8462-4$gt92").await, ["bp2"]);
    assert_eq!(ids(&app, "Observation?component-code-value-quantity=8480-6$ge120").await, ["bp1", "bp2"]);
    assert_eq!(ids(&app, "Observation?component-code-value-quantity=8480-6$ne140").await, ["bp2"]);
    assert_eq!(
        ids(&app, "Observation?combo-code-value-quantity=8480-6$gt125,8867-4$gt100").await,
        ["bp1", "o2"],
        "combo looks at the Observation and at its components"
    );
    assert_eq!(ids(&app, "Observation?code-value-concept=72166-2$http://snomed.info/sct|77176002").await, ["smoker"]);
    assert!(ids(&app, "Observation?code-value-concept=72166-2$http://snomed.info/sct|8517006").await.is_empty());
    assert_eq!(ids(&app, "Observation?code-value-date=11368-8$2021-06").await, ["onset"]);
    assert!(ids(&app, "Observation?code-value-date=11368-8$gt2022").await.is_empty());
    assert_eq!(ids(&app, r"Observation?code-value-string=8251-1$mild \$ head").await, ["note"], r"\$ is a literal $");
    assert_eq!(
        ids(&app, "Observation?code=http://loinc.org|85354-9&component-code-value-quantity:missing=false").await,
        ["bp1", "bp2"]
    );

    // Other types: a Group's characteristics, a DocumentReference's relations (R4 publishes this
    // one with its two expressions swapped; Kiln indexes what it means).
    let group = json!({"resourceType": "Group", "id": "g1", "type": "person", "actual": false,
        "characteristic": [{"code": {"coding": [{"system": "http://example.org/traits", "code": "smoking"}]}, "exclude": false,
            "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "77176002"}]}}]});
    assert_eq!(app.put("Group/g1", &group).await.status(), StatusCode::CREATED);
    assert_eq!(ids(&app, "Group?characteristic-value=smoking$77176002").await, ["g1"]);
    assert!(ids(&app, "Group?characteristic-value=smoking$8517006").await.is_empty());
    let document = |id: &str, relates: Option<&str>| {
        let mut doc = json!({"resourceType": "DocumentReference", "id": id, "status": "current",
            "content": [{"attachment": {"contentType": "text/plain", "data": "aGk="}}]});
        if let Some(target) = relates {
            doc["relatesTo"] = json!([{"code": "replaces", "target": {"reference": target}}]);
        }
        doc
    };
    for (id, relates) in [("d0", None), ("d1", Some("DocumentReference/d0"))] {
        assert_eq!(
            app.put(&format!("DocumentReference/{id}"), &document(id, relates)).await.status(),
            StatusCode::CREATED
        );
    }
    assert_eq!(ids(&app, "DocumentReference?relationship=DocumentReference/d0$replaces").await, ["d1"]);
    assert_eq!(ids(&app, "DocumentReference?relationship=d0$replaces").await, ["d1"], "one target type");
    assert!(ids(&app, "DocumentReference?relationship=d0$appends").await.is_empty());

    // The rows follow the resource: an update and a delete change what matches at once.
    assert_eq!(app.put("Observation/bp1", &panel("bp1", 118.0, 80.0)).await.status(), StatusCode::OK);
    assert!(ids(&app, "Observation?component-code-value-quantity=8480-6$gt125").await.is_empty());
    assert_eq!(app.delete("Observation/bp2").await.status(), StatusCode::NO_CONTENT);
    assert_eq!(ids(&app, "Observation?component-code-value-quantity=8480-6$ge110").await, ["bp1"]);

    for (query, named) in [
        ("Observation?code-value-quantity=8867-4", "2 parts"),
        ("Observation?code-value-quantity=8867-4$gt100$x", "2 parts"),
        ("Observation?code-value-quantity=8867-4$big", "value-quantity"),
        ("Observation?code-value-quantity=$gt100", "code"),
        ("Observation?code-value-quantity:exact=8867-4$gt100", ":exact"),
        ("Observation?code-value-date=11368-8$June", "value-date"),
    ] {
        let outcome = expect_outcome(app.get(query).await, StatusCode::BAD_REQUEST).await;
        assert!(outcome.to_string().contains(named), "{query}: {outcome}");
        assert!(outcome.to_string().contains("code-value-"), "{query} names the parameter: {outcome}");
    }
}

crate::on_both_backends!(
    composite_parameters,
    kiln_reindex_rebuilds_the_index_from_the_definitions,
    searches_over_several_types,
    string_parameters,
    token_parameters,
    date_number_and_quantity_parameters,
    reference_parameters,
    common_parameters_and_result_control,
    chains_and_reverse_chains,
    includes_and_revincludes,
    patient_compartment_search,
    identifier_modifiers,
    meta_parameters,
    bad_search_parameters_are_named,
    list_and_value_set_membership,
);

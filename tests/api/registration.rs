//! Dynamic client registration (RFC 7591) under each `registration` policy: closed refuses,
//! admin-approved registers apps that cannot get tokens until approved, open registers usable
//! apps except for `system/` access, which always waits for an administrator.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};
use kiln::config::Registration;

async fn app_with(backend: Backend, registration: Registration) -> Option<TestApp> {
    // These apps authenticate with a client secret, which client_credentials takes only when
    // configured to.
    TestApp::start_with(
        backend,
        |s| {
            s.registration = registration;
            s.client_credentials_with_secret = true;
        },
        |a| a,
    )
    .await
}

async fn register(app: &TestApp, metadata: &Value) -> reqwest::Response {
    Client::new().post(format!("{}/auth/register", app.root)).json(metadata).send().await.unwrap()
}

async fn backend_token(app: &TestApp, client_id: &str, secret: &str) -> StatusCode {
    Client::new()
        .post(format!("{}/auth/token", app.root))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "system/Patient.rs")])
        .send()
        .await
        .unwrap()
        .status()
}

async fn registration_follows_the_policy(backend: Backend) {
    let backend_service = json!({"client_name": "Nightly export", "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["client_credentials"], "scope": "system/Patient.rs"});

    let Some(closed) = app_with(backend, Registration::Closed).await else { return };
    let config: Value =
        closed.anonymous.get(closed.url(".well-known/smart-configuration")).send().await.unwrap().json().await.unwrap();
    assert!(config.get("registration_endpoint").is_none(), "a closed server advertises no registration");
    assert_eq!(register(&closed, &backend_service).await.status(), StatusCode::FORBIDDEN);
    closed.stop().await;

    let Some(approved) = app_with(backend, Registration::AdminApproved).await else { return };
    let response = register(&approved, &backend_service).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let registered: Value = response.json().await.unwrap();
    assert_eq!(registered["kiln_status"], "pending");
    let (id, secret) = (registered["client_id"].as_str().unwrap(), registered["client_secret"].as_str().unwrap());
    assert_eq!(backend_token(&approved, id, secret).await, StatusCode::UNAUTHORIZED, "pending apps get no token");
    assert!(approved.state.store.set_client_status(id, "active").await.unwrap());
    assert_eq!(backend_token(&approved, id, secret).await, StatusCode::OK, "approved apps do");
    // Bad metadata is answered with the RFC 7591 error codes.
    let bad_redirect = json!({"client_name": "x", "token_endpoint_auth_method": "none",
        "redirect_uris": ["javascript:alert(1)"], "scope": "patient/*.rs"});
    let response = register(&approved, &bad_redirect).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_redirect_uri");
    let bad_scope = json!({"client_name": "x", "token_endpoint_auth_method": "none",
        "redirect_uris": ["https://app.example/cb"], "scope": "patient/Observation.xyz"});
    let response = register(&approved, &bad_scope).await;
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_client_metadata");
    approved.stop().await;

    let Some(open) = app_with(backend, Registration::Open).await else { return };
    let public = json!({"client_name": "Growth Chart", "token_endpoint_auth_method": "none",
        "redirect_uris": ["https://app.example/cb"], "scope": "launch/patient patient/*.rs"});
    let registered: Value = register(&open, &public).await.json().await.unwrap();
    assert_eq!(registered["kiln_status"], "active");
    assert!(registered.get("client_secret").is_none(), "public apps have no secret");
    let stored = open.state.store.client(registered["client_id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.redirect_uris, vec!["https://app.example/cb".to_string()]);
    let registered: Value = register(&open, &backend_service).await.json().await.unwrap();
    assert_eq!(registered["kiln_status"], "pending", "system/ access always waits for an administrator");
    open.stop().await;
}

crate::on_both_backend_kinds!(registration_follows_the_policy);

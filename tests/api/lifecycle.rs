//! Liveness, readiness, panics and graceful shutdown.

use axum::routing::get;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Backend, TestApp, expect_outcome};

async fn health_and_readiness(app: TestApp) {
    let health = app.client.get(format!("{}/health", app.root)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app.client.get(format!("{}/ready", app.root)).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
}

async fn shutdown_drains_and_stops(app: TestApp) {
    let root = app.root.clone();
    assert_eq!(app.get("metadata").await.status(), StatusCode::OK);
    app.stop().await;
    assert!(reqwest::get(format!("{root}/health")).await.is_err(), "nothing listens after shutdown");
}

crate::on_both_backends!(health_and_readiness, shutdown_drains_and_stops);

#[tokio::test]
async fn shutdown_finishes_in_flight_requests() {
    let app = TestApp::start_with(
        Backend::Sqlite,
        |_| {},
        |application| {
            application.with_router(|state| {
                kiln::app::router_with(
                    state,
                    axum::Router::new().route(
                        "/_slow",
                        get(|| async {
                            tokio::time::sleep(std::time::Duration::from_millis(700)).await;
                            "done"
                        }),
                    ),
                )
            })
        },
    )
    .await
    .unwrap();
    let root = app.root.clone();
    let in_flight = tokio::spawn({
        let request = app.client.get(app.url("_slow")).send();
        async move { request.await.map(|r| r.status()) }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    app.stop().await;
    assert_eq!(in_flight.await.unwrap().unwrap(), StatusCode::OK, "the request in flight finished");
    assert!(reqwest::get(format!("{root}/health")).await.is_err(), "no new connections after shutdown");
}

async fn boom() -> &'static str {
    panic!("deliberate test panic")
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_keeps_serving() {
    let app = TestApp::start_with(
        Backend::Sqlite,
        |_| {},
        |application| {
            application
                .with_router(|state| kiln::app::router_with(state, axum::Router::new().route("/_boom", get(boom))))
        },
    )
    .await
    .unwrap();
    let body = expect_outcome(app.get("_boom").await, StatusCode::INTERNAL_SERVER_ERROR).await;
    assert_eq!(body["issue"][0]["code"], "exception");
    assert!(!body.to_string().contains("deliberate"), "panic details are not sent to clients");
    assert_eq!(app.get("metadata").await.status(), StatusCode::OK);
}

/// Statuses no endpoint produces yet (401 and 403 come with SMART authorization, 429 with rate
/// limiting) go through the same error type and middleware as every handler's errors.
#[tokio::test]
async fn every_error_status_is_an_operation_outcome() {
    use kiln::error::FhirError;
    let app = TestApp::start_with(
        Backend::Sqlite,
        |_| {},
        |application| {
            application.with_router(|state| {
                kiln::app::router_with(
                    state,
                    axum::Router::new()
                        .route("/_401", get(|| async { FhirError::Unauthorized("a bearer token is required".into()) }))
                        .route(
                            "/_403",
                            get(|| async {
                                FhirError::Forbidden("scope patient/Observation.rs does not cover this".into())
                            }),
                        )
                        .route("/_429", get(|| async { FhirError::TooManyRequests { retry_after_seconds: 7 } })),
                )
            })
        },
    )
    .await
    .unwrap();
    let body = expect_outcome(app.get("_401").await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["issue"][0]["code"], "login");
    let body = expect_outcome(app.get("_403").await, StatusCode::FORBIDDEN).await;
    assert_eq!(body["issue"][0]["code"], "forbidden");
    let response = app.get("_429").await;
    assert_eq!(response.headers()["retry-after"], "7");
    let body = expect_outcome(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["issue"][0]["code"], "throttled");
}

#[tokio::test]
async fn ready_answers_503_when_the_database_is_gone() {
    let Some(app) = TestApp::start(Backend::Postgres).await else { return };
    let cluster = crate::helpers::PostgresCluster::shared().unwrap();
    let database = app.database_url.rsplit('/').next().unwrap().to_string();
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres")).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {database} WITH (FORCE)")))
        .execute(&mut admin)
        .await
        .unwrap();
    let ready = app.client.get(format!("{}/ready", app.root)).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let health = app.client.get(format!("{}/health", app.root)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "liveness does not depend on the database");
}

//! The baseline server: Kiln's answers for the read scenarios, fetched once and replayed from memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use reqwest::Client;

use crate::fhir::Targets;
use crate::scenarios;

/// One stored answer.
struct Stored {
    body: Bytes,
    headers: HeaderMap,
}

type Store = Arc<HashMap<String, Stored>>;

/// Every relative path the read scenarios may ask for, given the targets and what Kiln supports.
pub async fn paths(client: &Client, from: &str, targets: &Targets, seed: u64) -> Vec<String> {
    let mut paths = Vec::with_capacity(targets.all.len() * 3 + 1);
    for t in &targets.all {
        let p = t.path();
        paths.push(format!("{p}/_history/1"));
        paths.push(format!("{p}/_history"));
        paths.push(p);
    }
    paths.push(scenarios::TYPE_HISTORY.to_string());
    let caps = scenarios::probe(client, from, targets).await;
    if caps.search {
        paths.extend(scenarios::search_plan(client, from, targets, seed).await);
    }
    if caps.everything {
        paths.extend(scenarios::everything_plan(targets, seed));
    }
    paths
}

/// Fetches every path from `from` with `concurrency` requests in flight; keys are the URL's
/// path and query as the driver will send them (so `/fhir/Patient/x` when `from` ends in `/fhir`).
async fn fetch_all(client: &Client, from: &str, paths: Vec<String>, concurrency: usize) -> Result<Store, String> {
    let paths = Arc::new(paths);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, from, paths, next) = (client.clone(), from.to_string(), paths.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            let mut missing = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = paths.get(i) else { return Ok::<_, String>((got, missing)) };
                let url = reqwest::Url::parse(&format!("{from}/{path}")).map_err(|e| format!("{path}: {e}"))?;
                let key = match url.query() {
                    Some(q) => format!("{}?{q}", url.path()),
                    None => url.path().to_string(),
                };
                let resp = client.get(url).send().await.map_err(|e| format!("GET {path}: {e}"))?;
                if !resp.status().is_success() {
                    missing += 1;
                    continue;
                }
                let mut headers = HeaderMap::new();
                for name in [header::CONTENT_TYPE, header::ETAG, header::LAST_MODIFIED] {
                    if let Some(v) = resp.headers().get(name.as_str()) {
                        headers.insert(name, HeaderValue::from_bytes(v.as_bytes()).map_err(|e| e.to_string())?);
                    }
                }
                let body = resp.bytes().await.map_err(|e| format!("GET {path}: {e}"))?;
                got.push((key, Stored { body: Bytes::from(body.to_vec()), headers }));
            }
        }));
    }
    let mut store = HashMap::with_capacity(paths.len());
    let mut missing = 0;
    for t in tasks {
        let (got, miss) = t.await.map_err(|e| e.to_string())??;
        missing += miss;
        store.extend(got);
    }
    if missing > 0 {
        eprintln!("baseline-server: {missing} paths did not answer 2xx on Kiln and will answer 404 here");
    }
    Ok(Arc::new(store))
}

async fn serve_stored(State(store): State<Store>, req: Request) -> Response {
    let key = req.uri().path_and_query().map_or("", |pq| pq.as_str());
    match store.get(key) {
        Some(s) => {
            let mut resp = Response::new(Body::from(s.body.clone()));
            *resp.headers_mut() = s.headers.clone();
            resp
        }
        None => {
            let mut resp = Response::new(Body::from(
                r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found"}]}"#,
            ));
            *resp.status_mut() = StatusCode::NOT_FOUND;
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+json"));
            resp
        }
    }
}

/// Fetches the answers, then serves them on `listen` until SIGINT/SIGTERM.
pub async fn serve(client: &Client, from: &str, targets: &Targets, listen: &str, seed: u64) -> Result<(), String> {
    let started = std::time::Instant::now();
    let paths = paths(client, from, targets, seed).await;
    let store = fetch_all(client, from, paths, 16).await?;
    let bytes: usize = store.values().map(|s| s.body.len()).sum();
    eprintln!(
        "baseline-server: stored {} answers ({:.1} MB) from {from} in {:.1} s",
        store.len(),
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let app = axum::Router::new().fallback(serve_stored).with_state(store);
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on {addr}");
    axum::serve(listener, app).with_graceful_shutdown(shutdown()).await.map_err(|e| e.to_string())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

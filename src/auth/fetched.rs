//! What the authorization server fetches from other servers (a client's JWK Set from its
//! registered `jwks_uri`, RFC 7591 §2 and SMART App Launch "Client Authentication: Asymmetric";
//! the identity provider's discovery document, OpenID Connect Discovery 1.0): fetched with a
//! size cap, never from private or local addresses unless configured, and kept for a few
//! minutes so that a token request or sign-in does not wait on another server each time.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a fetched document is used before it is fetched again.
pub const KEEP_FOR: Duration = Duration::from_secs(300);
/// The most a fetched JWK Set may weigh: a few keys are a few kilobytes.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// How many documents a node keeps; past that the oldest half is dropped.
const CAPACITY: usize = 1_000;

/// Documents fetched from other servers, by URL, each kept for [`KEEP_FOR`].
pub struct Fetched<T> {
    entries: Mutex<HashMap<String, (Instant, T)>>,
}

impl<T: Clone> Default for Fetched<T> {
    fn default() -> Self {
        Fetched { entries: Mutex::new(HashMap::new()) }
    }
}

impl<T: Clone> Fetched<T> {
    /// The kept document for `url` and how long ago it was fetched, while it is fresh.
    pub fn fresh(&self, url: &str) -> Option<(T, Duration)> {
        let entries = self.entries.lock().expect("fetched documents lock");
        let (at, value) = entries.get(url)?;
        let age = at.elapsed();
        (age < KEEP_FOR).then(|| (value.clone(), age))
    }

    pub fn keep(&self, url: &str, value: T) {
        let mut entries = self.entries.lock().expect("fetched documents lock");
        if entries.len() >= CAPACITY {
            let mut ages: Vec<Instant> = entries.values().map(|(at, _)| *at).collect();
            ages.sort();
            let cutoff = ages[ages.len() / 2];
            entries.retain(|_, (at, _)| *at > cutoff);
        }
        entries.insert(url.to_string(), (Instant::now(), value));
    }

    /// Drops the kept document, e.g. when what it says no longer verifies.
    pub fn forget(&self, url: &str) {
        self.entries.lock().expect("fetched documents lock").remove(url);
    }
}

/// Whether an address is one a server on the public internet has (not loopback, private,
/// link-local, carrier-grade NAT, unique-local, multicast, documentation or unspecified): a
/// URL a client registered must not make Kiln call into its own network.
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// Fetches a JSON document from `url`: no redirects, a 5-second timeout, at most `max_bytes`,
/// and (unless `allow_private`) only from public addresses, the connection pinned to the
/// address that was checked so a second DNS answer cannot point it elsewhere.
pub async fn fetch_json(url: &str, max_bytes: usize, allow_private: bool) -> Result<serde_json::Value, String> {
    crate::tls::install_crypto_provider();
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("'{url}' is not a URL: {e}"))?;
    let host = parsed.host_str().ok_or_else(|| format!("'{url}' names no host"))?.to_string();
    let port = parsed.port_or_known_default().ok_or_else(|| format!("'{url}' names no port"))?;
    let mut builder =
        reqwest::Client::builder().timeout(Duration::from_secs(5)).redirect(reqwest::redirect::Policy::none());
    if !allow_private {
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((bare_host, port))
            .await
            .map_err(|e| format!("the host of '{url}' cannot be resolved: {e}"))?
            .collect();
        let Some(first) = addresses.first().copied() else {
            return Err(format!("the host of '{url}' has no address"));
        };
        if let Some(private) = addresses.iter().find(|address| !is_public(address.ip())) {
            return Err(format!(
                "'{url}' resolves to {}, a private or local address, which Kiln does not call",
                private.ip()
            ));
        }
        builder = builder.resolve(bare_host, first);
    }
    let client = builder.build().map_err(|e| e.to_string())?;
    let mut response = client
        .get(parsed)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| e.to_string())?
        .error_for_status()
        .map_err(|e| e.to_string())?;
    let too_large = || format!("the document at '{url}' is larger than {max_bytes} bytes");
    if response.content_length().is_some_and(|length| length > max_bytes as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > max_bytes {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("the document at '{url}' is not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn private_and_local_addresses_are_not_public() {
        for private in
            ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0"]
        {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for private in ["::1", "fd00::1", "fe80::1", "::ffff:10.0.0.1", "::"] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    /// A server on a local port answering `/keys` with a small document and `/huge` with one
    /// over the cap; counts the requests it answers.
    async fn local_server() -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let app = Router::new()
            .route(
                "/keys",
                get(move || {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async { r#"{"keys": [{"kty": "EC", "crv": "P-384", "kid": "k1"}]}"# }
                }),
            )
            .route("/huge", get(|| async { format!("{{\"pad\": \"{}\"}}", "x".repeat(MAX_JWKS_BYTES)) }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{address}"), hits)
    }

    #[tokio::test]
    async fn a_document_is_fetched_within_its_size_and_from_allowed_addresses_only() {
        let (root, hits) = local_server().await;
        let keys = fetch_json(&format!("{root}/keys"), MAX_JWKS_BYTES, true).await.unwrap();
        assert_eq!(keys["keys"][0]["kid"], "k1");
        let huge = fetch_json(&format!("{root}/huge"), MAX_JWKS_BYTES, true).await.unwrap_err();
        assert!(huge.contains("larger than"), "{huge}");
        let refused = fetch_json(&format!("{root}/keys"), MAX_JWKS_BYTES, false).await.unwrap_err();
        assert!(refused.contains("private or local address"), "{refused}");
        assert_eq!(hits.load(Ordering::SeqCst), 1, "the refused fetch never reached the server");
    }

    #[test]
    fn a_kept_document_is_fresh_until_forgotten() {
        let kept: Fetched<u32> = Fetched::default();
        assert!(kept.fresh("https://a.example/jwks").is_none());
        kept.keep("https://a.example/jwks", 7);
        assert_eq!(kept.fresh("https://a.example/jwks").map(|(value, _)| value), Some(7));
        kept.forget("https://a.example/jwks");
        assert!(kept.fresh("https://a.example/jwks").is_none());
    }
}

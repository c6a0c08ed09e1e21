//! The last step of every FHIR API response: sealed identifier values are opened for callers
//! allowed to see them and masked for everyone else (data-absent-reason `masked`). Working on
//! the response bytes covers every path (read, vread, search with includes, history,
//! `$everything`, Bundles, write answers) and leaves every other byte as it was stored.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use memchr::memmem;

use super::{DATA_ABSENT_REASON, SEALED_PREFIX, Sensitive};
use crate::access::Principal;
use crate::app::AppState;
use crate::error::FhirError;

/// What a withheld value becomes: the `value` member is replaced by `_value` carrying the
/// data-absent-reason extension.
fn masked_member() -> String {
    format!(r#""_value":{{"extension":[{{"url":"{DATA_ABSENT_REASON}","valueCode":"masked"}}]}}"#)
}

/// The middleware.
pub async fn present(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let reveal = match parts.extensions.get::<Principal>() {
        Some(principal) => state.sensitive.may_reveal(principal),
        None => match Principal::from_request_parts(&mut parts, &state).await {
            Ok(principal) => state.sensitive.may_reveal(&principal),
            // The handler answers the refusal.
            Err(_) => false,
        },
    };
    let response = next.run(Request::from_parts(parts, body)).await;
    let is_json =
        response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    if !is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return FhirError::internal("the response could not be read").into_response();
    };
    match state.sensitive.present(&bytes, reveal) {
        None => Response::from_parts(parts, Body::from(bytes)),
        Some(rewritten) => {
            let mut response = Response::from_parts(parts, Body::from(rewritten));
            response.headers_mut().remove(header::CONTENT_LENGTH);
            response
        }
    }
}

impl Sensitive {
    /// The response bytes with every sealed value opened (`reveal`) or masked; `None` when the
    /// body holds no sealed value (the common case, found by one scan).
    pub fn present(&self, body: &[u8], reveal: bool) -> Option<Vec<u8>> {
        let marker = format!("\"{SEALED_PREFIX}");
        let finder = memmem::Finder::new(marker.as_bytes());
        let first = finder.find(body)?;
        let mut out = Vec::with_capacity(body.len() + 64);
        let mut copied = 0;
        let mut at = Some(first);
        while let Some(start) = at {
            // The sealed string runs to the next quote (its alphabet has no quote or escape).
            let Some(length) = memchr::memchr(b'"', &body[start + 1..]) else { break };
            let end = start + 1 + length + 1;
            let sealed = std::str::from_utf8(&body[start + 1..end - 1]).unwrap_or_default();
            let opened = if reveal { self.open_value(sealed).ok() } else { None };
            match opened {
                Some(plaintext) => {
                    out.extend_from_slice(&body[copied..start]);
                    out.extend_from_slice(serde_json::to_string(&plaintext).expect("a string serialises").as_bytes());
                }
                None => {
                    if reveal {
                        // Shown masked rather than failing the response; logged so an operator
                        // notices a missing key.
                        tracing::error!(sealed_under = ?super::KeyRing::key_of(sealed), "a sealed value could not be opened");
                    }
                    match value_member_start(body, start).filter(|s| *s >= copied) {
                        Some(member) => {
                            out.extend_from_slice(&body[copied..member]);
                            out.extend_from_slice(masked_member().as_bytes());
                        }
                        None => {
                            out.extend_from_slice(&body[copied..start]);
                            out.extend_from_slice(b"\"masked\"");
                        }
                    }
                }
            }
            copied = end;
            at = finder.find(&body[end..]).map(|i| i + end);
        }
        out.extend_from_slice(&body[copied..]);
        Some(out)
    }
}

/// Where the `"value":` member whose string starts at `string_start` begins, if the string is
/// the value of a member named `value` (whitespace allowed, as in pretty-printed output).
fn value_member_start(body: &[u8], string_start: usize) -> Option<usize> {
    let mut i = string_start;
    let skip_space = |i: &mut usize| {
        while *i > 0 && body[*i - 1].is_ascii_whitespace() {
            *i -= 1;
        }
    };
    skip_space(&mut i);
    if i == 0 || body[i - 1] != b':' {
        return None;
    }
    i -= 1;
    skip_space(&mut i);
    let key = b"\"value\"";
    (i >= key.len() && &body[i - key.len()..i] == key).then(|| i - key.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensitive::KeyRing;

    fn sensitive() -> Sensitive {
        Sensitive::with_ring(KeyRing::generate(), "http://hl7.org/fhir/sid/us-ssn", "admin")
    }

    #[test]
    fn bodies_without_sealed_values_are_left_alone() {
        let body = br#"{"resourceType":"Patient","identifier":[{"system":"urn:x","value":"1"}]}"#;
        assert_eq!(sensitive().present(body, true), None);
        assert_eq!(sensitive().present(body, false), None);
    }

    #[test]
    fn sealed_values_are_opened_or_masked_and_nothing_else_changes() {
        let sensitive = sensitive();
        let sealed = sensitive.ring().seal("123-45-6789", super::super::IDENTIFIER_CONTEXT);
        let body = format!(
            r#"{{"resourceType":"Bundle","entry":[{{"resource":{{"resourceType":"Patient","identifier":[{{"system":"http://hl7.org/fhir/sid/us-ssn","value":"{sealed}"}}],"x":1.50}}}},{{"resource":{{"identifier":[{{"system":"http://hl7.org/fhir/sid/us-ssn",
  "value" :  "{sealed}"}}]}}}}]}}"#
        );
        let revealed = String::from_utf8(sensitive.present(body.as_bytes(), true).unwrap()).unwrap();
        assert_eq!(revealed, body.replace(&sealed, "123-45-6789"));
        let masked = String::from_utf8(sensitive.present(body.as_bytes(), false).unwrap()).unwrap();
        assert!(!masked.contains("kiln-sealed") && !masked.contains("6789"), "{masked}");
        assert_eq!(masked.matches(r#""_value":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"masked"}]}"#).count(), 2);
        assert!(masked.contains(r#""x":1.50"#));
        let parsed: serde_json::Value = serde_json::from_str(&masked).unwrap();
        assert!(parsed["entry"][0]["resource"]["identifier"][0].get("value").is_none());
    }
}

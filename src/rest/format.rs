//! Content negotiation for the whole FHIR API (FHIR R4 http.html#mime-type): `Accept` and
//! `_format` (JSON only for now: XML answers 406), `_pretty`, the `application/json` media type
//! when that is what the client asked for, and an OperationOutcome for every error response,
//! including those produced outside the handlers (unknown routes, wrong methods, timeouts).

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::QueryParams;
use crate::error::FhirError;

/// Largest error body from outside the handlers that is quoted in the OperationOutcome.
const QUOTED_ERROR_LIMIT: usize = 2048;

#[derive(Debug, PartialEq, Eq)]
enum Format {
    FhirJson,
    PlainJson,
}

pub async fn negotiate(request: Request, next: Next) -> Response {
    let params = QueryParams::parse(request.uri().query());
    let accept = request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let format = match choose_format(params.get("_format"), accept.as_deref()) {
        Ok(format) => format,
        Err(err) => return err.into_response(),
    };
    let pretty = params.get("_pretty") == Some("true");
    let response = next.run(request).await;
    let response = if response.status().is_client_error() || response.status().is_server_error() {
        ensure_outcome(response).await
    } else {
        response
    };
    finish(response, format, pretty).await
}

fn choose_format(format_param: Option<&str>, accept: Option<&str>) -> Result<Format, FhirError> {
    if let Some(requested) = format_param {
        return match requested.split(';').next().unwrap_or("").trim() {
            "json" | "application/fhir+json" | "application/json+fhir" => Ok(Format::FhirJson),
            "application/json" => Ok(Format::PlainJson),
            other => {
                Err(FhirError::NotAcceptable(format!("_format '{other}' is not supported; this server speaks JSON")))
            }
        };
    }
    let Some(accept) = accept else { return Ok(Format::FhirJson) };
    let mut plain_json = false;
    for media_type in accept.split(',').map(|m| m.split(';').next().unwrap_or("").trim().to_ascii_lowercase()) {
        match media_type.as_str() {
            "application/fhir+json" | "application/json+fhir" | "*/*" | "application/*" | "" => {
                return Ok(Format::FhirJson);
            }
            "application/json" => plain_json = true,
            _ => {}
        }
    }
    if plain_json {
        Ok(Format::PlainJson)
    } else {
        Err(FhirError::NotAcceptable(format!("cannot answer in '{accept}'; this server speaks application/fhir+json")))
    }
}

/// Turns a bare error (no FHIR body) into an OperationOutcome with the same status.
async fn ensure_outcome(response: Response) -> Response {
    let is_fhir = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/fhir+json"));
    if is_fhir {
        return response;
    }
    let status = response.status();
    let kept: Vec<_> = [header::RETRY_AFTER, header::ALLOW]
        .into_iter()
        .filter_map(|name| response.headers().get(&name).cloned().map(|v| (name, v)))
        .collect();
    let text = to_bytes(response.into_body(), QUOTED_ERROR_LIMIT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let mut outcome = FhirError::from_status(status, &text).into_response();
    *outcome.status_mut() = status;
    for (name, value) in kept {
        outcome.headers_mut().insert(name, value);
    }
    outcome
}

async fn finish(mut response: Response, format: Format, pretty: bool) -> Response {
    let is_fhir_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/fhir+json"));
    if !is_fhir_json {
        return response;
    }
    if format == Format::PlainJson {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    }
    if pretty {
        let (mut parts, body) = response.into_parts();
        let Ok(bytes) = to_bytes(body, usize::MAX).await else {
            return FhirError::internal("could not buffer the response").into_response();
        };
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::from(pretty_print(&bytes)));
    }
    response
}

/// Re-indents compact JSON without parsing numbers, so `1.50` stays `1.50`.
pub fn pretty_print(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', depth * 2));
    };
    let mut i = 0;
    while i < json.len() {
        let c = json[i];
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match c {
            b'"' => {
                in_string = true;
                out.push(c);
            }
            b'{' | b'[' => {
                let close = if c == b'{' { b'}' } else { b']' };
                let next = json[i + 1..].iter().position(|b| !b.is_ascii_whitespace()).map(|p| json[i + 1 + p]);
                if next == Some(close) {
                    out.extend_from_slice(&[c, close]);
                    i += 1 + json[i + 1..].iter().position(|b| *b == close).unwrap_or(0);
                } else {
                    out.push(c);
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            b',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_printing_keeps_values_exact() {
        let out = String::from_utf8(pretty_print(br#"{"a":[1.50,{}],"b":"x,{:}\"y","c":[]}"#)).unwrap();
        assert_eq!(out, "{\n  \"a\": [\n    1.50,\n    {}\n  ],\n  \"b\": \"x,{:}\\\"y\",\n  \"c\": []\n}");
        let compact: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(compact["b"], "x,{:}\"y");
    }

    #[test]
    fn negotiation() {
        assert_eq!(choose_format(None, None).unwrap(), Format::FhirJson);
        assert_eq!(choose_format(None, Some("application/json")).unwrap(), Format::PlainJson);
        assert_eq!(choose_format(None, Some("text/html, application/fhir+json;q=0.9")).unwrap(), Format::FhirJson);
        assert!(choose_format(None, Some("application/fhir+xml")).is_err());
        assert!(choose_format(Some("xml"), None).is_err());
        assert_eq!(choose_format(Some("json"), Some("application/xml")).unwrap(), Format::FhirJson);
    }
}

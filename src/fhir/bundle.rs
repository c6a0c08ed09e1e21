//! Response Bundles (history, searchset) written straight to bytes: stored resources are copied
//! in as they are, never parsed and re-serialised (FHIR R4 bundle.html, http.html#history).

use serde::Serialize;

use super::instant::{fhir_instant, now_micros};

pub struct BundleWriter {
    out: Vec<u8>,
    entries: usize,
}

#[derive(Serialize)]
pub struct EntryRequest<'a> {
    pub method: &'a str,
    pub url: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryResponse<'a> {
    pub status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

pub struct Entry<'a> {
    pub full_url: &'a str,
    pub resource: Option<&'a [u8]>,
    pub search_mode: Option<&'a str>,
    pub request: Option<EntryRequest<'a>>,
    pub response: Option<EntryResponse<'a>>,
    /// `response.outcome`: an OperationOutcome, rendered.
    pub outcome: Option<&'a [u8]>,
}

impl BundleWriter {
    /// Starts a Bundle of `bundle_type` with optional `total` and paging links (`self`, `next`…).
    pub fn new(bundle_type: &str, total: Option<u64>, links: &[(&str, &str)]) -> Self {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(b"{\"resourceType\":\"Bundle\",\"id\":\"");
        out.extend_from_slice(uuid::Uuid::new_v4().to_string().as_bytes());
        out.extend_from_slice(b"\",\"meta\":{\"lastUpdated\":\"");
        out.extend_from_slice(fhir_instant(now_micros()).as_bytes());
        out.extend_from_slice(b"\"},\"type\":");
        write_json(&mut out, bundle_type);
        if let Some(total) = total {
            out.extend_from_slice(b",\"total\":");
            out.extend_from_slice(total.to_string().as_bytes());
        }
        if !links.is_empty() {
            out.extend_from_slice(b",\"link\":[");
            for (i, (relation, url)) in links.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"relation\":");
                write_json(&mut out, relation);
                out.extend_from_slice(b",\"url\":");
                write_json(&mut out, url);
                out.push(b'}');
            }
            out.push(b']');
        }
        out.extend_from_slice(b",\"entry\":[");
        BundleWriter { out, entries: 0 }
    }

    pub fn push(&mut self, entry: Entry<'_>) {
        if self.entries > 0 {
            self.out.push(b',');
        }
        self.entries += 1;
        self.out.push(b'{');
        let mut first = true;
        let mut member = |out: &mut Vec<u8>, name: &[u8]| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            out.extend_from_slice(name);
        };
        if !entry.full_url.is_empty() {
            member(&mut self.out, b"\"fullUrl\":");
            write_json(&mut self.out, entry.full_url);
        }
        if let Some(resource) = entry.resource {
            member(&mut self.out, b"\"resource\":");
            self.out.extend_from_slice(resource);
        }
        if let Some(mode) = entry.search_mode {
            member(&mut self.out, b"\"search\":{\"mode\":");
            write_json(&mut self.out, mode);
            self.out.push(b'}');
        }
        if let Some(request) = &entry.request {
            member(&mut self.out, b"\"request\":");
            write_json(&mut self.out, request);
        }
        if let Some(response) = &entry.response {
            member(&mut self.out, b"\"response\":");
            match entry.outcome {
                // The outcome is a resource already rendered: splice it in as is.
                Some(outcome) => {
                    let head = serde_json::to_vec(response).expect("bundle parts serialise");
                    self.out.extend_from_slice(&head[..head.len() - 1]);
                    self.out.extend_from_slice(b",\"outcome\":");
                    self.out.extend_from_slice(outcome);
                    self.out.push(b'}');
                }
                None => write_json(&mut self.out, response),
            }
        }
        self.out.push(b'}');
    }

    pub fn finish(mut self) -> Vec<u8> {
        if self.entries == 0 {
            // `entry` must not be an empty array: drop the opening `,"entry":[`.
            self.out.truncate(self.out.len() - b",\"entry\":[".len());
            self.out.push(b'}');
        } else {
            self.out.extend_from_slice(b"]}");
        }
        self.out
    }
}

fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect("bundle parts serialise");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn writes_a_valid_history_bundle() {
        let mut bundle = BundleWriter::new("history", Some(1), &[("self", "http://x/fhir/Patient/_history")]);
        bundle.push(Entry {
            full_url: "http://x/fhir/Patient/1",
            resource: Some(br#"{"resourceType":"Patient","id":"1"}"#),
            search_mode: None,
            request: Some(EntryRequest { method: "PUT", url: "Patient/1" }),
            response: Some(EntryResponse {
                status: "200 OK",
                location: None,
                etag: Some("W/\"2\"".into()),
                last_modified: None,
            }),
            outcome: None,
        });
        let json: Value = serde_json::from_slice(&bundle.finish()).unwrap();
        assert_eq!(json["type"], "history");
        assert_eq!(json["total"], 1);
        assert_eq!(json["entry"][0]["resource"]["id"], "1");
        assert_eq!(json["entry"][0]["response"]["etag"], "W/\"2\"");
    }

    #[test]
    fn an_empty_bundle_has_no_entry_array() {
        let json: Value = serde_json::from_slice(&BundleWriter::new("searchset", Some(0), &[]).finish()).unwrap();
        assert!(json.get("entry").is_none());
        assert_eq!(json["total"], 0);
    }
}

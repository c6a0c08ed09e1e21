//! Kiln: a FHIR R4 interoperability server. The binary (`src/main.rs`) is a thin CLI over this
//! library; the integration tests start the same [`app::Application`] on port 0.

pub mod access;
pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod demo;
pub mod ehr;
pub mod emr;
pub mod error;
pub mod fhir;
pub mod import;
pub mod reindex;
pub mod rest;
pub mod search;
pub mod sensitive;
pub mod store;
pub mod telemetry;
pub mod tls;

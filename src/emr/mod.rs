//! The internal EMR model of Kiln: typed structs for the seed entities, their mapping to and
//! from FHIR R4 resources, and the business rules that need no database.
//!
//! - `models`: one struct per seed entity, with parsed domain types.
//! - `mapping`: `to_fhir` / `from_fhir` per FHIR resource; lossless for what the model does not
//!   know, because each model keeps the resource it was read from.
//! - `rules`: `check_resource` and the helpers the server's database-backed checks need.
//!
//! How the server uses it, on every create/update of a resource:
//! 1. `rules::check_resource(type, &json, WriteKind, now)`: each violation becomes an
//!    OperationOutcome issue (`kind.issue_code()`, `expression`, `message`); any -> 422.
//! 2. Patient create: `rules::assign_mrn` when `rules::patient_mrn` finds none; uniqueness of
//!    `(clinic, system, value)` is a database constraint.
//! 3. Database checks built on the helpers: `is_active_primary` + `coverage_beneficiary`
//!    (one active primary Coverage per patient), `booked_interval` + `intervals_overlap`
//!    (double booking), `appointment_slots` (mark slots busy), `encounter_is_locked` on the
//!    stored version (409 unless an amendment), `medication_requester` +
//!    `practitioner_license_number` / `practitioner_dea_number` (prescriber credentials).
//! 4. `mapping::<resource>::from_fhir` derives the typed model (for internal tables or
//!    reports); `to_fhir` writes a model (e.g. imported seed data) back as FHIR.

pub mod error;
pub(crate) mod json;
pub mod mapping;
pub mod models;
pub mod retention;
pub mod rules;
pub mod systems;

pub use error::MappingError;

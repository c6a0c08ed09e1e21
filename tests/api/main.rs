//! The integration tests: the real server over real HTTP on a real database, each case on
//! SQLite and on PostgreSQL.

mod helpers;

mod accounts;
mod assignments;
mod audit;
mod capabilities;
mod consent;
mod crud;
mod demo;
mod ehr;
mod errors;
mod examples;
mod federation;
mod history;
mod import;
mod integrity;
mod lifecycle;
mod negotiation;
mod operations;
mod patch;
mod registration;
mod retention;
mod rules;
mod search;
mod search_bounds;
mod sensitive;
mod signatures;
mod smart;
mod store_contract;
mod tenancy;
mod transaction;
mod transport;

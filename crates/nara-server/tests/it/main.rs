//! nara's integration tests: one binary (one link step) that starts the real
//! server on a free port over a real database. Tests marked with
//! `backends!` run unchanged against SQLite and PostgreSQL; PostgreSQL needs
//! `NARA_TEST_POSTGRES_URL` (an admin URL; each test creates its own database).
//! Without it they skip with a notice, except under `CI=true`, where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: that is how they fail

mod algorithms;
mod api;
mod authz;
mod backup;
mod bad_input;
mod common;
mod exchange;
mod identity;
mod ledger;
mod machine;
mod pages;
mod portal;
mod review;
mod secops;
mod services;
mod store_contract;

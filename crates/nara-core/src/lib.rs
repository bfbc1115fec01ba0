//! nara's domain: the national catalogue of agencies, the systems they run and
//! the services they offer, with the rules that make a value valid.
//!
//! This crate does no I/O. Every type that crosses the API is parsed here, so a
//! value of a domain type is valid by construction.

pub mod algorithms;
pub mod calendar;
pub mod catalogue;
pub mod consent;
pub mod exchange;
pub mod identity;
pub mod indicators;
pub mod member;
pub mod secops;
pub mod seed;
pub mod service_def;
pub mod validation;

pub use catalogue::*;
pub use member::MemberId;
pub use validation::{FieldError, Invalid};

//! The public catalogue: agencies, systems and services as JSON (`api`) and
//! pages (`pages`), published service definitions (`services`, parsed once in
//! `definitions`) and their figures (`statistics`).

pub mod api;
pub mod definitions;
pub mod pages;
pub mod services;
pub mod statistics;

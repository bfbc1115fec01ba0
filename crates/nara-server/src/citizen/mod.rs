//! What citizens do: apply (`portal`, and `application_api` for agency
//! apps), upload evidence (`uploads`), receive verifiable documents
//! (`credentials`), and hear about their cases (`mailer`).

pub mod application_api;
pub mod credentials;
pub mod mailer;
pub mod portal;
pub mod uploads;

//! What citizens do: apply (`applying`, the use case; `portal`, its pages;
//! `application_api`, for agency apps), follow their applications
//! (`receipts`, `inbox`), upload evidence (`uploads`), receive verifiable
//! documents (`credentials`), and hear about their cases (`mailer`).

pub mod application_api;
pub mod applying;
pub mod credentials;
pub mod inbox;
pub mod mailer;
pub mod portal;
pub mod receipts;
pub mod uploads;

//! Who is calling: identity keys, passwords, sessions and second factors
//! (`auth`), what identity pages read of a request and record (`request`),
//! signing in and out (`sign_in`), setting up the second factor
//! (`enrolment`), signing up (`sign_up`), the account page (`account`),
//! passkeys, agency systems' signed requests (`machine`), and the OpenID
//! Connect provider (`oidc`).

pub mod account;
pub mod auth;
pub mod enrolment;
pub mod machine;
pub mod oidc;
pub mod passkey;
pub mod request;
pub mod sign_in;
pub mod sign_up;

//! Who is calling: identity keys, passwords, sessions and second factors
//! (`auth`), sign-in and the account pages (`account`), passkeys, agency
//! systems' signed requests (`machine`), and the OpenID Connect provider (`oidc`).

pub mod account;
pub mod auth;
pub mod machine;
pub mod oidc;
pub mod passkey;

//! The web layer shared by every page and form, below the page modules:
//! none of its parts imports a page module.

pub mod csrf;

//! What officials do: work their queue (`cases`, the pages) and decide
//! cases (`deciding`, the use case and its rule).

pub mod cases;
pub mod deciding;

//! What officials do: work their queue and decide cases (`cases`).

pub mod cases;

//! Security operations: what security analysts and auditors read.

pub mod events;

//! Security operations: what security analysts and auditors read.

pub mod alerts;
pub mod blocklist;
pub mod detection;
pub mod events;
pub mod incidents;
pub mod intake;
pub mod level;
pub mod probes;
pub mod rules;
pub mod syslog;
pub mod watch;

//! Python RPyC 6's own wire, so netref and Python processes share objects both ways.
//!
//! The layers, bottom up (`docs/rpyc.md` maps them to netref's engine):
//!
//! - [`frame`]: the channel frame (length, compression flag, payload, newline), with zlib
//!   inflated only up to `Config::max_frame`;
//! - [`brine`]: RPyC's value encoding, decoded under depth and count limits, pickle refused;
//! - [`message`]: the three message kinds and the 20 request handlers;
//! - [`boxing`]: `(label, value)` boxes and id_packs, RPyC's object references;
//! - [`vinegar`]: exceptions both ways.

pub(crate) mod boxing;
pub(crate) mod brine;
pub(crate) mod frame;
pub(crate) mod message;
pub(crate) mod vinegar;

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod python_tests;

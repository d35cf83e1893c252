//! Events: an Argo Events-equivalent bus (event sources, sensors, triggers).
//!
//! Owns the Argo Events kinds as Rust types ([`types`]: EventSource, Sensor, EventBus).
//! Invariant: those types round-trip every field of the objects they read, modelled or not.

pub mod types;

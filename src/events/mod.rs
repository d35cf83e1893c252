//! Events: an Argo Events-equivalent bus (event sources, sensors, triggers).
//!
//! Owns the Argo Events kinds as Rust types ([`types`]: EventSource, Sensor, EventBus) and the
//! pure core of Sensors: the event as sensors see it ([`event`]), dependency filters
//! ([`filter`]), trigger conditions and their resets ([`conditions`]), parameterization and the
//! effectively-once Workflow name ([`params`]), and the Go-template subset they use
//! ([`gotemplate`]).
//! Invariant: those types round-trip every field of the objects they read, modelled or not; the
//! pure modules take time and events as inputs and do no I/O.

pub mod bus;
pub mod conditions;
pub mod event;
pub mod filter;
pub mod gotemplate;
pub mod history;
pub mod params;
pub mod runtime;
pub mod sensor;
pub mod sources;
pub mod trigger;
pub mod types;

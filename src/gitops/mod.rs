//! GitOps: Argo CD-equivalent reconciliation of Applications (source → render → diff → sync →
//! health).
//!
//! Owns the Argo CD kinds as Rust types ([`types`]: Application, AppProject, ApplicationSet).
//! Invariant: those types round-trip every field of the objects they read, modelled or not, so
//! cairn can write an object back without dropping a user's field.

pub mod cluster;
pub mod controller;
pub mod diff;
pub mod health;
pub mod project;
pub mod render;
pub mod source;
pub mod sync;
pub mod types;
pub mod webhook;

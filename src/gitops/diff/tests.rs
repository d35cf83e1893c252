//! Tests of the diff module.

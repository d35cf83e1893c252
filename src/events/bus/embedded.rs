//! PLACEHOLDER (being written by a helper this session; replaced before it lands).

use std::time::Duration;

use super::{Bus, BusError, BusStats, ConsumerConfig, Delivery, EventQuery, StoredEvent, Topic};
use crate::events::event::Event;

/// Placeholder.
#[derive(Clone, Debug)]
pub struct EmbeddedBus;

fn todo_err() -> BusError {
    BusError::UnknownConsumer("placeholder".to_owned())
}

impl Bus for EmbeddedBus {
    async fn publish(&self, _topic: &Topic, _event: &Event) -> Result<u64, BusError> {
        Err(todo_err())
    }
    async fn ensure_consumer(&self, _config: &ConsumerConfig) -> Result<(), BusError> {
        Err(todo_err())
    }
    async fn fetch(
        &self,
        _c: &str,
        _max: usize,
        _wait: Duration,
    ) -> Result<Vec<Delivery>, BusError> {
        Err(todo_err())
    }
    async fn ack(&self, _c: &str, _seqs: &[u64]) -> Result<(), BusError> {
        Err(todo_err())
    }
    async fn delete_consumer(&self, _c: &str) -> Result<(), BusError> {
        Err(todo_err())
    }
    async fn consumers(&self) -> Result<Vec<String>, BusError> {
        Err(todo_err())
    }
    async fn stats(&self) -> Result<BusStats, BusError> {
        Err(todo_err())
    }
    async fn recent(&self, _q: &EventQuery) -> Result<Vec<StoredEvent>, BusError> {
        Err(todo_err())
    }
}

//! The span store of obs-appliance.
//!
//! OTLP trace exports and Zipkin v2 spans ([`otlp`]) become [`record::SpanDoc`]s: each span
//! with its resource and scope, checked on its own. [`store::TraceStore`] makes them durable in
//! the write-ahead log before acknowledging, keeps them in an in-memory head (visible to
//! queries at once) and flushes the head into one tantivy index per UTC day, where a trace is
//! found by its exact id and spans by their intrinsics and typed attributes. Retention drops
//! whole days. [`search`] runs TraceQL over the store (the index narrows, the engine of
//! `obs-traceql` decides), and [`spanmetrics`] derives Tempo's span metrics and service graph
//! series from ingested spans.
//!
//! This crate knows nothing about HTTP: `obs-server` serves the Tempo API over it.

mod index;
pub mod otlp;
pub mod record;
pub mod search;
pub mod spanmetrics;
pub mod store;

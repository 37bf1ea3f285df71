//! The rule engine of obs-appliance: Prometheus-format rule files, groups evaluated at their
//! interval with the PromQL engine, recording rules written back into the metrics store,
//! alerting rules with Prometheus' pending / firing / resolved states and `ALERTS` series.
//!
//! - [`file`]: the rule file format and its validation (what `check-config` reports).
//! - [`group`]: evaluation semantics.
//! - [`manager`]: loading rule files, one evaluation loop per group, reload.

pub mod file;
pub mod group;
pub mod manager;

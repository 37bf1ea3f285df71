//! The scraper of obs-appliance.
//!
//! - [`parse`]: the Prometheus text format 0.0.4 and OpenMetrics 1.0 parsers, hand-written for
//!   the scrape hot path (labels borrowed from the body unless escaped).
//! - [`relabel`]: Prometheus' `relabel_config` with every action.
//! - [`config`]: `global`, `scrape_configs`, `scrape_config_files` and whole prometheus.yml
//!   files, with warnings for what has no effect here.
//! - [`target`]: targets through `relabel_configs` to labels and URL.
//! - [`manager`]: one loop per target, reconciled on reload and file_sd changes; stale markers
//!   when series or targets disappear.

pub mod config;
pub mod manager;
pub mod parse;
pub mod relabel;
pub mod scrape;
pub mod target;

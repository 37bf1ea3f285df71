//! Log queries: entries through the pipeline, at most `limit` of them, grouped per stream
//! (Loki's `readStreams`).

use std::collections::HashMap;
use std::ops::ControlFlow;

use obs_core::series::Labels;
use obs_logql::LogExpr;

use crate::labels::{LabelsBuilder, labels_string};
use crate::pipeline::{Pipeline, log_query_hints};
use crate::{
    Deadline, Direction, EngineError, EngineOptions, EntryResult, LogSource, QueryValue, SourceQuery,
    StreamResult, pushdown,
};

/// How often (in entries read) the deadline is checked.
pub(crate) const DEADLINE_CHECK_EVERY: u64 = 1024;

/// The entries a log query returns.
#[derive(Debug, Clone)]
pub(crate) struct LogWindow {
    pub(crate) start_ns: i64,
    pub(crate) end_ns: i64,
    pub(crate) direction: Direction,
    pub(crate) limit: usize,
    /// Loki's `interval`: entries closer than this to the previous one returned are skipped.
    pub(crate) interval_ns: i64,
}

/// Whether a stream matches a selector (a missing label has the value `""`).
pub(crate) fn selector_matches(selector: &[obs_logql::LabelMatcher], labels: &Labels) -> bool {
    selector
        .iter()
        .all(|matcher| matcher.matches(labels.get(matcher.name()).unwrap_or_default()))
}

/// Runs a log query.
pub(crate) fn query_logs(
    source: &dyn LogSource,
    log: &LogExpr,
    window: &LogWindow,
    options: &EngineOptions,
    deadline: &Deadline,
) -> Result<QueryValue, EngineError> {
    let pipeline = Pipeline::new(log).map_err(EngineError::BadQuery)?;
    if window.limit == 0 || window.end_ns <= window.start_ns {
        return Ok(QueryValue::Streams(Vec::new()));
    }
    let selector = log.matchers();
    let matches_stream = |labels: &Labels| selector_matches(selector, labels);
    let query = SourceQuery {
        matches_stream: &matches_stream,
        start_ns: window.start_ns,
        end_ns: window.end_ns,
        line_contains: pushdown::line_contains(log),
        keys: pushdown::correlation_keys(log, &[], &options.indexed_keys),
        direction: window.direction,
    };
    let mut labels = LabelsBuilder::new(log_query_hints());
    let mut streams: Vec<StreamResult> = Vec::new();
    let mut stream_index: HashMap<Labels, usize> = HashMap::new();
    let mut returned = 0usize;
    let mut last_returned_ns: Option<i64> = None;
    let mut read = 0u64;
    let mut failure: Option<EngineError> = None;
    source.select(&query, &mut |entry| {
        read += 1;
        if read.is_multiple_of(DEADLINE_CHECK_EVERY)
            && let Err(err) = deadline.check()
        {
            failure = Some(err);
            return ControlFlow::Break(());
        }
        if entry.timestamp_ns < window.start_ns || entry.timestamp_ns >= window.end_ns {
            return ControlFlow::Continue(());
        }
        labels.reset(entry.stream, &entry.metadata);
        let Some(line) = pipeline.process(entry.timestamp_ns, entry.line, &mut labels) else {
            return ControlFlow::Continue(());
        };
        if let Some(last) = last_returned_ns
            && window.interval_ns > 0
        {
            let far_enough = match window.direction {
                Direction::Forward => entry.timestamp_ns >= last.saturating_add(window.interval_ns),
                Direction::Backward => entry.timestamp_ns <= last.saturating_sub(window.interval_ns),
            };
            if !far_enough {
                return ControlFlow::Continue(());
            }
        }
        let stream_labels = labels.result_stream_labels();
        let index = *stream_index.entry(stream_labels.clone()).or_insert_with(|| {
            streams.push(StreamResult {
                labels: stream_labels,
                entries: Vec::new(),
            });
            streams.len() - 1
        });
        if let Some(stream) = streams.get_mut(index) {
            stream.entries.push(EntryResult {
                timestamp_ns: entry.timestamp_ns,
                line,
                structured_metadata: labels.result_metadata(),
                parsed: labels.result_parsed(),
            });
        }
        last_returned_ns = Some(entry.timestamp_ns);
        returned += 1;
        if returned >= window.limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    if let Some(err) = failure {
        return Err(err);
    }
    deadline.check()?;
    // Loki sorts streams by the text of their label set.
    let mut keyed: Vec<(String, StreamResult)> = streams
        .into_iter()
        .map(|stream| {
            let key = labels_string(
                stream
                    .labels
                    .iter()
                    .map(|label| (label.name.as_str(), label.value.as_str())),
            );
            (key, stream)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(QueryValue::Streams(
        keyed.into_iter().map(|(_, stream)| stream).collect(),
    ))
}

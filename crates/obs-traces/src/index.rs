//! One tantivy index per UTC day (of the spans' start): `<data>/traces/YYYY-MM-DD/`.
//!
//! Fields of a document (one span):
//! - `trace` (bytes, indexed): the 16-byte trace id — trace by id is one exact term lookup
//!   per day, never a probabilistic filter;
//! - `trace_hi`, `trace_lo` (u64, fast): the trace id again, read from the columns when a
//!   search collects its candidate traces;
//! - `start` (i64, fast), `dur` (u64, fast): start and duration in nanoseconds (range
//!   conditions are answered from the columns);
//! - `name` (raw string), `kind`, `status` (u64, indexed): the intrinsics;
//! - `attrs` (raw strings): one typed term per span and resource attribute value
//!   (`s\u{1}run_id\u{1}Sr-123`, `r\u{1}service.name\u{1}Sagixt`, `I` / `F` / `B` for ints,
//!   floats and booleans; values over 256 bytes are left out);
//! - `keys` (raw strings): one term per attribute name (`s\u{1}run_id`), for `!= nil` and tag
//!   autocompletion;
//! - `span` (bytes, stored in the zstd doc store): the span's payload (see `record`).

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{
    BytesOptions, FAST, Field, INDEXED, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::{
    DocAddress, DocId, Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, Searcher, SegmentReader,
    TantivyDocument, Term,
};

use crate::record::{SpanDoc, attribute_terms};

/// The memory an index writer may use before it writes a segment.
const WRITER_MEMORY_BYTES: usize = 16 << 20;
/// Bytes of spans per compressed doc-store block.
const DOCSTORE_BLOCK_BYTES: usize = 256 << 10;
/// Decompressed doc-store blocks a reader keeps per segment.
const STORE_CACHE_BLOCKS: usize = 16;
/// zstd level of the doc store.
const DOCSTORE_ZSTD_LEVEL: i32 = 9;

#[derive(Debug, Clone, Copy)]
struct Fields {
    trace: Field,
    trace_hi: Field,
    trace_lo: Field,
    start: Field,
    dur: Field,
    name: Field,
    kind: Field,
    status: Field,
    attrs: Field,
    keys: Field,
    span: Field,
}

fn raw_text() -> TextOptions {
    TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    )
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let fields = Fields {
        trace: builder.add_bytes_field("trace", BytesOptions::default().set_indexed()),
        trace_hi: builder.add_u64_field("trace_hi", FAST),
        trace_lo: builder.add_u64_field("trace_lo", FAST),
        start: builder.add_i64_field("start", FAST),
        dur: builder.add_u64_field("dur", FAST),
        name: builder.add_text_field("name", raw_text()),
        kind: builder.add_u64_field("kind", INDEXED),
        status: builder.add_u64_field("status", INDEXED),
        attrs: builder.add_text_field("attrs", raw_text()),
        keys: builder.add_text_field("keys", raw_text()),
        span: builder.add_bytes_field("span", BytesOptions::default().set_stored()),
    };
    (builder.build(), fields)
}

/// A condition a store pushes to the index.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Clause {
    /// The span's name is this.
    Name(String),
    /// The span's kind (OTLP number) is this.
    Kind(u64),
    /// The span's status (OTLP number) is this.
    Status(u64),
    /// The span's duration (ns) lies in this range.
    Duration(Bound<u64>, Bound<u64>),
    /// The span has one of these `attrs` terms.
    AnyValue(Vec<String>),
    /// The span has one of these `keys` terms.
    AnyKey(Vec<String>),
}

/// What to find in one day.
#[derive(Debug, Clone, Default)]
pub(crate) struct DayQuery {
    /// Span start in `[start_ns, end_ns)`.
    pub(crate) start_ns: i64,
    pub(crate) end_ns: i64,
    /// Conditions every hit satisfies.
    pub(crate) clauses: Vec<Clause>,
}

/// One matching span: its trace and start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub(crate) trace_id: [u8; 16],
    pub(crate) start_ns: i64,
}

/// A day's index with its reader and, while the day is written, its writer.
pub(crate) struct DayIndex {
    path: PathBuf,
    index: Index,
    reader: IndexReader,
    writer: Mutex<Option<IndexWriter<TantivyDocument>>>,
    fields: Fields,
}

impl std::fmt::Debug for DayIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DayIndex")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn index_error(path: &Path, err: impl std::fmt::Display) -> String {
    format!("trace index {}: {err}", path.display())
}

fn split_id(trace_id: &[u8; 16]) -> (u64, u64) {
    let mut hi = [0u8; 8];
    let mut lo = [0u8; 8];
    hi.copy_from_slice(&trace_id[..8]);
    lo.copy_from_slice(&trace_id[8..]);
    (u64::from_be_bytes(hi), u64::from_be_bytes(lo))
}

fn join_id(hi: u64, lo: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&hi.to_be_bytes());
    id[8..].copy_from_slice(&lo.to_be_bytes());
    id
}

impl DayIndex {
    /// Opens the index in `path`, creating it when missing.
    pub(crate) fn open(path: &Path) -> Result<DayIndex, String> {
        let (schema, fields) = schema();
        let index = if path.join("meta.json").exists() {
            Index::open_in_dir(path).map_err(|err| index_error(path, err))?
        } else {
            std::fs::create_dir_all(path).map_err(|err| index_error(path, err))?;
            let settings = IndexSettings {
                docstore_compression: Compressor::Zstd(ZstdCompressor {
                    compression_level: Some(DOCSTORE_ZSTD_LEVEL),
                }),
                docstore_blocksize: DOCSTORE_BLOCK_BYTES,
                ..IndexSettings::default()
            };
            Index::builder()
                .schema(schema)
                .settings(settings)
                .create_in_dir(path)
                .map_err(|err| index_error(path, err))?
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|err| index_error(path, err))?;
        Ok(DayIndex {
            path: path.to_owned(),
            index,
            reader,
            writer: Mutex::new(None),
            fields,
        })
    }

    /// The write-ahead log position the last commit covers (0 when never committed so).
    pub(crate) fn indexed_through(&self) -> Result<u64, String> {
        let metas = self
            .index
            .load_metas()
            .map_err(|err| index_error(&self.path, err))?;
        Ok(metas
            .payload
            .as_deref()
            .and_then(|payload| payload.strip_prefix("wal-lsn:"))
            .and_then(|lsn| lsn.parse().ok())
            .unwrap_or(0))
    }

    /// Adds spans and commits durably, recording that the log records before `through_lsn`
    /// are in the index; searchers see them after [`DayIndex::reload`].
    pub(crate) fn add_and_commit(&self, docs: &[&SpanDoc], through_lsn: u64) -> Result<(), String> {
        let mut writer_slot = self.writer.lock().unwrap_or_else(|poison| poison.into_inner());
        if writer_slot.is_none() {
            let writer = self
                .index
                .writer_with_num_threads(1, WRITER_MEMORY_BYTES)
                .map_err(|err| index_error(&self.path, err))?;
            *writer_slot = Some(writer);
        }
        let Some(writer) = writer_slot.as_mut() else {
            return Err(index_error(&self.path, "no writer"));
        };
        for doc in docs {
            let resource_spans = doc.resource_spans()?;
            let (values, keys) = attribute_terms(&resource_spans);
            let (hi, lo) = split_id(&doc.trace_id);
            let mut document = TantivyDocument::new();
            document.add_bytes(self.fields.trace, doc.trace_id.as_slice());
            document.add_u64(self.fields.trace_hi, hi);
            document.add_u64(self.fields.trace_lo, lo);
            document.add_i64(self.fields.start, doc.start_ns.min(i64::MAX as u64) as i64);
            document.add_u64(self.fields.dur, doc.duration_ns());
            document.add_text(self.fields.name, &doc.name);
            document.add_u64(self.fields.kind, doc.kind.max(0) as u64);
            document.add_u64(self.fields.status, doc.status.max(0) as u64);
            for value in &values {
                document.add_text(self.fields.attrs, value);
            }
            for key in &keys {
                document.add_text(self.fields.keys, key);
            }
            document.add_bytes(self.fields.span, doc.payload.as_slice());
            writer
                .add_document(document)
                .map_err(|err| index_error(&self.path, err))?;
        }
        let committed = writer.prepare_commit().and_then(|mut prepared| {
            prepared.set_payload(&format!("wal-lsn:{through_lsn}"));
            prepared.commit()
        });
        if let Err(err) = committed {
            *writer_slot = None;
            return Err(index_error(&self.path, err));
        }
        Ok(())
    }

    /// Makes the last commit visible to new searchers.
    pub(crate) fn reload(&self) -> Result<(), String> {
        self.reader.reload().map_err(|err| index_error(&self.path, err))
    }

    /// A point-in-time view.
    pub(crate) fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    /// Closes the writer; the next write opens a new one.
    pub(crate) fn close_writer(&self) {
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        if let Some(writer) = writer
            && let Err(err) = writer.wait_merging_threads()
        {
            tracing::warn!(index = %self.path.display(), error = %err, "trace index merge failed");
        }
    }

    /// Whether a writer is open.
    pub(crate) fn is_writing(&self) -> bool {
        self.writer
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .is_some()
    }

    /// Every span of `trace_id` in this day.
    pub(crate) fn trace(&self, searcher: &Searcher, trace_id: &[u8; 16]) -> Result<Vec<SpanDoc>, String> {
        let query = TermQuery::new(
            Term::from_field_bytes(self.fields.trace, trace_id),
            IndexRecordOption::Basic,
        );
        let addresses = searcher
            .search(&query, &AddressCollector)
            .map_err(|err| index_error(&self.path, err))?;
        self.fetch(searcher, &addresses)
    }

    /// The stored spans at `addresses`.
    fn fetch(&self, searcher: &Searcher, addresses: &[DocAddress]) -> Result<Vec<SpanDoc>, String> {
        let mut sorted = addresses.to_vec();
        sorted.sort();
        let mut docs = Vec::with_capacity(sorted.len());
        let mut current: Option<(u32, tantivy::store::StoreReader)> = None;
        for address in sorted {
            if current
                .as_ref()
                .is_none_or(|(segment, _)| *segment != address.segment_ord)
            {
                let reader = searcher
                    .segment_reader(address.segment_ord)
                    .get_store_reader(STORE_CACHE_BLOCKS)
                    .map_err(|err| index_error(&self.path, err))?;
                current = Some((address.segment_ord, reader));
            }
            let Some((_, reader)) = current.as_ref() else {
                continue;
            };
            let document: TantivyDocument = reader
                .get(address.doc_id)
                .map_err(|err| index_error(&self.path, err))?;
            let payload = document
                .get_first(self.fields.span)
                .and_then(|value| value.as_bytes())
                .ok_or_else(|| index_error(&self.path, "a document has no span"))?;
            docs.push(SpanDoc::from_payload(payload)?);
        }
        Ok(docs)
    }

    /// The trace and start of every span matching `query`, unordered.
    pub(crate) fn search(&self, searcher: &Searcher, query: &DayQuery) -> Result<Vec<Hit>, String> {
        if query.start_ns >= query.end_ns {
            return Ok(Vec::new());
        }
        searcher
            .search(&self.boolean_query(query), &HitCollector)
            .map_err(|err| index_error(&self.path, err))
    }

    /// The stored spans matching `query`, at most `max`, in storage order.
    pub(crate) fn search_docs(
        &self,
        searcher: &Searcher,
        query: &DayQuery,
        max: usize,
    ) -> Result<Vec<SpanDoc>, String> {
        if query.start_ns >= query.end_ns || max == 0 {
            return Ok(Vec::new());
        }
        let mut addresses = searcher
            .search(&self.boolean_query(query), &AddressCollector)
            .map_err(|err| index_error(&self.path, err))?;
        addresses.sort();
        addresses.truncate(max);
        self.fetch(searcher, &addresses)
    }

    fn boolean_query(&self, query: &DayQuery) -> BooleanQuery {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(
            Occur::Must,
            Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_i64(self.fields.start, query.start_ns)),
                Bound::Excluded(Term::from_field_i64(self.fields.start, query.end_ns)),
            )),
        )];
        let term = |field: Field, text: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, text),
                IndexRecordOption::Basic,
            ))
        };
        let any = |field: Field, texts: &[String]| -> Box<dyn Query> {
            Box::new(BooleanQuery::new(
                texts
                    .iter()
                    .map(|text| (Occur::Should, term(field, text)))
                    .collect(),
            ))
        };
        for clause in &query.clauses {
            let query: Box<dyn Query> = match clause {
                Clause::Name(name) => term(self.fields.name, name),
                Clause::Kind(kind) => Box::new(TermQuery::new(
                    Term::from_field_u64(self.fields.kind, *kind),
                    IndexRecordOption::Basic,
                )),
                Clause::Status(status) => Box::new(TermQuery::new(
                    Term::from_field_u64(self.fields.status, *status),
                    IndexRecordOption::Basic,
                )),
                Clause::Duration(low, high) => {
                    let bound = |bound: &Bound<u64>| match bound {
                        Bound::Included(value) => {
                            Bound::Included(Term::from_field_u64(self.fields.dur, *value))
                        }
                        Bound::Excluded(value) => {
                            Bound::Excluded(Term::from_field_u64(self.fields.dur, *value))
                        }
                        Bound::Unbounded => Bound::Unbounded,
                    };
                    Box::new(RangeQuery::new(bound(low), bound(high)))
                }
                Clause::AnyValue(values) => any(self.fields.attrs, values),
                Clause::AnyKey(keys) => any(self.fields.keys, keys),
            };
            clauses.push((Occur::Must, query));
        }
        BooleanQuery::new(clauses)
    }

    /// Distinct terms of `field` (`"name"`, `"attrs"` or `"keys"`) starting with `prefix`,
    /// at most `limit`, sorted.
    pub(crate) fn terms(
        &self,
        searcher: &Searcher,
        field: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, String> {
        let field = match field {
            "name" => self.fields.name,
            "attrs" => self.fields.attrs,
            _ => self.fields.keys,
        };
        let mut found: Vec<String> = Vec::new();
        let mut upper = prefix.as_bytes().to_vec();
        upper.push(0xff);
        for segment in searcher.segment_readers() {
            let inverted = segment
                .inverted_index(field)
                .map_err(|err| index_error(&self.path, err))?;
            let mut stream = inverted
                .terms()
                .range()
                .ge(prefix.as_bytes())
                .lt(&upper)
                .into_stream()
                .map_err(|err| index_error(&self.path, err))?;
            while stream.advance() {
                if let Ok(text) = std::str::from_utf8(stream.key()) {
                    found.push(text.to_owned());
                }
                if found.len() >= limit.saturating_mul(4).max(1024) {
                    break;
                }
            }
        }
        found.sort();
        found.dedup();
        found.truncate(limit);
        Ok(found)
    }
}

/// Collects document addresses.
struct AddressCollector;

struct SegmentAddresses {
    segment: u32,
    addresses: Vec<DocAddress>,
}

impl Collector for AddressCollector {
    type Fruit = Vec<DocAddress>;
    type Child = SegmentAddresses;

    fn for_segment(&self, segment: u32, _reader: &SegmentReader) -> tantivy::Result<SegmentAddresses> {
        Ok(SegmentAddresses {
            segment,
            addresses: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<DocAddress>>) -> tantivy::Result<Vec<DocAddress>> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

impl SegmentCollector for SegmentAddresses {
    type Fruit = Vec<DocAddress>;

    fn collect(&mut self, doc: DocId, _score: tantivy::Score) {
        self.addresses.push(DocAddress::new(self.segment, doc));
    }

    fn harvest(self) -> Vec<DocAddress> {
        self.addresses
    }
}

/// Collects the trace id and start of every hit from the fast fields.
struct HitCollector;

struct SegmentHits {
    hi: Column<u64>,
    lo: Column<u64>,
    start: Column<i64>,
    hits: Vec<Hit>,
}

impl Collector for HitCollector {
    type Fruit = Vec<Hit>;
    type Child = SegmentHits;

    fn for_segment(&self, _segment: u32, reader: &SegmentReader) -> tantivy::Result<SegmentHits> {
        Ok(SegmentHits {
            hi: reader.fast_fields().u64("trace_hi")?,
            lo: reader.fast_fields().u64("trace_lo")?,
            start: reader.fast_fields().i64("start")?,
            hits: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<Hit>>) -> tantivy::Result<Vec<Hit>> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

impl SegmentCollector for SegmentHits {
    type Fruit = Vec<Hit>;

    fn collect(&mut self, doc: DocId, _score: tantivy::Score) {
        let (Some(hi), Some(lo), Some(start_ns)) =
            (self.hi.first(doc), self.lo.first(doc), self.start.first(doc))
        else {
            return;
        };
        self.hits.push(Hit {
            trace_id: join_id(hi, lo),
            start_ns,
        });
    }

    fn harvest(self) -> Vec<Hit> {
        self.hits
    }
}

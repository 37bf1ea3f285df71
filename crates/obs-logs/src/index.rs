//! One tantivy index per UTC day: `<data>/logs/YYYY-MM-DD/`.
//!
//! Fields of a document (one log entry):
//! - `stream` (u64, indexed and fast): the stream id from the stream registry;
//! - `ts` (i64, fast): the timestamp in nanoseconds (range queries read the column);
//! - `line` (text, not stored): the line's words (split on non-alphanumeric characters,
//!   lowercased), document ids only (no frequencies, no positions), the pre-filter of
//!   substring line filters. Tokens of 40 bytes or more, and tokens of 8 bytes or more with a
//!   digit (ids, hashes, numbers: most of the distinct terms of a log, found through the
//!   correlation keys instead) are not indexed;
//! - `keys` (raw strings, not stored): one `name=value` term per correlation key of the entry;
//! - `entry` (bytes, stored in the zstd doc store): the entry in `walrec`'s entry form.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery, TermSetQuery};
use tantivy::schema::{
    BytesOptions, FAST, Field, INDEXED, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::tokenizer::{LowerCaser, SimpleTokenizer, TextAnalyzer, TokenFilter, TokenStream, Tokenizer};
use tantivy::{
    DocAddress, DocId, Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, Searcher, SegmentReader,
    TantivyDocument, Term,
};

use crate::model::LogEntry;
use crate::walrec;

/// Tokens this long or longer are not indexed.
const MAX_TOKEN_BYTES: usize = 40;
/// Tokens this long or longer that contain a digit are not indexed.
const MIN_ID_LIKE_BYTES: usize = 8;
/// The name of the line tokenizer, registered on every day index.
const LINE_TOKENIZER: &str = "log_words";

/// Whether the line index holds `token` (lowercased): not too long, not id-like.
fn is_indexed_token(token: &str) -> bool {
    token.len() < MAX_TOKEN_BYTES
        && !(token.len() >= MIN_ID_LIKE_BYTES && token.bytes().any(|byte| byte.is_ascii_digit()))
}

/// Drops the tokens [`is_indexed_token`] refuses.
#[derive(Clone)]
struct IndexedTokensFilter;

impl TokenFilter for IndexedTokensFilter {
    type Tokenizer<T: Tokenizer> = IndexedTokens<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> IndexedTokens<T> {
        IndexedTokens(tokenizer)
    }
}

#[derive(Clone)]
struct IndexedTokens<T>(T);

impl<T: Tokenizer> Tokenizer for IndexedTokens<T> {
    type TokenStream<'a> = IndexedTokenStream<T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        IndexedTokenStream(self.0.token_stream(text))
    }
}

struct IndexedTokenStream<S>(S);

impl<S: TokenStream> TokenStream for IndexedTokenStream<S> {
    fn advance(&mut self) -> bool {
        while self.0.advance() {
            if is_indexed_token(&self.0.token().text) {
                return true;
            }
        }
        false
    }

    fn token(&self) -> &tantivy::tokenizer::Token {
        self.0.token()
    }

    fn token_mut(&mut self) -> &mut tantivy::tokenizer::Token {
        self.0.token_mut()
    }
}

/// The line analyzer: words, lowercased, only the tokens [`is_indexed_token`] keeps.
fn line_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(LowerCaser)
        .filter(IndexedTokensFilter)
        .build()
}
/// The memory an index writer may use before it writes a segment.
const WRITER_MEMORY_BYTES: usize = 16 << 20;
/// Bytes of entries per compressed doc-store block.
const DOCSTORE_BLOCK_BYTES: usize = 512 << 10;
/// Decompressed doc-store blocks a query keeps per segment (16 MiB at most): hits are read in
/// time order, which crosses between the streams' runs of blocks.
const STORE_CACHE_BLOCKS: usize = 32;
/// zstd level of the doc store.
const DOCSTORE_ZSTD_LEVEL: i32 = 9;

#[derive(Debug, Clone, Copy)]
struct Fields {
    stream: Field,
    ts: Field,
    line: Field,
    keys: Field,
    entry: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let stream = builder.add_u64_field("stream", INDEXED | FAST);
    // Fast only: tantivy answers range queries on a fast field from the column, so a term per
    // distinct nanosecond would only cost disk.
    let ts = builder.add_i64_field("ts", FAST);
    let line = builder.add_text_field(
        "line",
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(LINE_TOKENIZER)
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        ),
    );
    let keys = builder.add_text_field(
        "keys",
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        ),
    );
    let entry = builder.add_bytes_field("entry", BytesOptions::default().set_stored());
    (
        builder.build(),
        Fields {
            stream,
            ts,
            line,
            keys,
            entry,
        },
    )
}

/// A document to index.
#[derive(Debug)]
pub(crate) struct IndexedEntry<'a> {
    pub(crate) stream: u32,
    pub(crate) entry: &'a LogEntry,
    pub(crate) keys: &'a [(String, String)],
}

/// What to find in one day.
#[derive(Debug, Default)]
pub(crate) struct DayQuery<'a> {
    /// Streams to consider (none: no stream matches).
    pub(crate) streams: &'a [u32],
    /// `[start_ns, end_ns)`.
    pub(crate) start_ns: i64,
    pub(crate) end_ns: i64,
    /// Lowercased tokens every matching line contains.
    pub(crate) tokens: &'a [String],
    /// `name=value` key terms every matching entry carries.
    pub(crate) keys: &'a [(String, String)],
}

/// One hit: where it is, its stream and time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub(crate) address: DocAddress,
    pub(crate) stream: u32,
    pub(crate) timestamp_ns: i64,
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
    format!("log index {}: {err}", path.display())
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
        index.tokenizers().register(LINE_TOKENIZER, line_analyzer());
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

    /// The write-ahead log position the last commit covers: every record before it is in
    /// this index (see [`DayIndex::add_and_commit`]). 0 for an index never committed so.
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

    /// Adds entries and commits durably, recording that the write-ahead log records before
    /// `through_lsn` are now in the index; searchers see them after [`DayIndex::reload`].
    pub(crate) fn add_and_commit(
        &self,
        entries: &[IndexedEntry<'_>],
        through_lsn: u64,
    ) -> Result<(), String> {
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
        let mut encoded = Vec::new();
        for indexed in entries {
            encoded.clear();
            walrec::encode_entry(indexed.entry, &mut encoded);
            let mut document = TantivyDocument::new();
            document.add_u64(self.fields.stream, u64::from(indexed.stream));
            document.add_i64(self.fields.ts, indexed.entry.timestamp_ns);
            document.add_text(self.fields.line, &indexed.entry.line);
            for (name, value) in indexed.keys {
                document.add_text(self.fields.keys, key_term(name, value));
            }
            document.add_bytes(self.fields.entry, encoded.as_slice());
            writer
                .add_document(document)
                .map_err(|err| index_error(&self.path, err))?;
        }
        let committed = writer.prepare_commit().and_then(|mut prepared| {
            prepared.set_payload(&format!("wal-lsn:{through_lsn}"));
            prepared.commit()
        });
        if let Err(err) = committed {
            // A failed commit leaves the writer unusable; the next flush opens a new one.
            *writer_slot = None;
            return Err(index_error(&self.path, err));
        }
        Ok(())
    }

    /// Makes the last commit visible to new searchers.
    pub(crate) fn reload(&self) -> Result<(), String> {
        self.reader.reload().map_err(|err| index_error(&self.path, err))
    }

    /// A point-in-time view for [`DayIndex::search`] and [`DayIndex::fetch`].
    pub(crate) fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    /// Closes the writer (merges in flight finish first); the next write opens a new one.
    pub(crate) fn close_writer(&self) {
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        if let Some(writer) = writer
            && let Err(err) = writer.wait_merging_threads()
        {
            tracing::warn!(index = %self.path.display(), error = %err, "log index merge failed");
        }
    }

    /// Whether a writer is open.
    pub(crate) fn is_writing(&self) -> bool {
        self.writer
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .is_some()
    }

    /// Every hit of `query`, unordered.
    pub(crate) fn search(&self, searcher: &Searcher, query: &DayQuery<'_>) -> Result<Vec<Hit>, String> {
        if query.streams.is_empty() || query.start_ns >= query.end_ns {
            return Ok(Vec::new());
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![
            (
                Occur::Must,
                Box::new(TermSetQuery::new(query.streams.iter().map(|&stream| {
                    Term::from_field_u64(self.fields.stream, u64::from(stream))
                }))),
            ),
            (
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Included(Term::from_field_i64(self.fields.ts, query.start_ns)),
                    Bound::Excluded(Term::from_field_i64(self.fields.ts, query.end_ns)),
                )),
            ),
        ];
        for token in query.tokens {
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(self.fields.line, token),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        for (name, value) in query.keys {
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(self.fields.keys, &key_term(name, value)),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        let boolean = BooleanQuery::new(clauses);
        searcher
            .search(&boolean, &HitCollector)
            .map_err(|err| index_error(&self.path, err))
    }

    /// The entries at `hits`, in that order; `None` for an entry whose stored bytes lack one of
    /// `needles` (checked before decoding, so a scan for a rare substring decodes little; a
    /// needle found in the metadata rather than the line is for the caller to rule out).
    pub(crate) fn fetch(
        &self,
        stores: &mut DocStores,
        hits: &[Hit],
        needles: &[String],
    ) -> Result<Vec<Option<LogEntry>>, String> {
        let finders: Vec<memchr::memmem::Finder<'_>> = needles
            .iter()
            .map(|needle| memchr::memmem::Finder::new(needle.as_bytes()))
            .collect();
        // Read in the stores' order (each block decompressed once), answered in the hits'.
        let mut order: Vec<usize> = (0..hits.len()).collect();
        order.sort_by_key(|&position| hits.get(position).map(|hit| hit.address));
        let mut entries: Vec<Option<LogEntry>> = vec![None; hits.len()];
        for position in order {
            let Some(hit) = hits.get(position) else { continue };
            let reader = stores
                .reader(hit.address.segment_ord)
                .map_err(|err| index_error(&self.path, err))?;
            if !finders.is_empty() {
                let raw = reader
                    .get_document_bytes(hit.address.doc_id)
                    .map_err(|err| index_error(&self.path, err))?;
                if !finders.iter().all(|finder| finder.find(raw.as_slice()).is_some()) {
                    continue;
                }
            }
            let document: TantivyDocument = reader
                .get(hit.address.doc_id)
                .map_err(|err| index_error(&self.path, err))?;
            let bytes = document
                .get_first(self.fields.entry)
                .and_then(|value| value.as_bytes())
                .ok_or_else(|| index_error(&self.path, "a document has no entry"))?;
            let entry = walrec::decode_entry(bytes).map_err(|err| index_error(&self.path, err))?;
            if let Some(slot) = entries.get_mut(position) {
                *slot = Some(entry);
            }
        }
        Ok(entries)
    }

    /// How many entries the day holds.
    #[cfg(test)]
    pub(crate) fn num_entries(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Every entry's stream and time (for tests and statistics).
    #[cfg(test)]
    pub(crate) fn all_hits(&self) -> Result<Vec<Hit>, String> {
        self.reader
            .searcher()
            .search(&tantivy::query::AllQuery, &HitCollector)
            .map_err(|err| index_error(&self.path, err))
    }
}

/// The doc-store readers of a searcher's segments, opened on first use and kept for a query
/// (opening one reads the store's index, far too costly per document).
pub(crate) struct DocStores {
    searcher: Searcher,
    readers: Vec<Option<tantivy::store::StoreReader>>,
}

impl DocStores {
    pub(crate) fn new(searcher: &Searcher) -> DocStores {
        DocStores {
            searcher: searcher.clone(),
            readers: Vec::new(),
        }
    }

    fn reader(&mut self, segment: u32) -> std::io::Result<&tantivy::store::StoreReader> {
        let index = segment as usize;
        if self.readers.len() <= index {
            self.readers.resize_with(index + 1, || None);
        }
        let slot = self
            .readers
            .get_mut(index)
            .ok_or_else(|| std::io::Error::other("segment out of range"))?;
        if slot.is_none() {
            *slot = Some(
                self.searcher
                    .segment_reader(segment)
                    .get_store_reader(STORE_CACHE_BLOCKS)?,
            );
        }
        slot.as_ref()
            .ok_or_else(|| std::io::Error::other("no store reader"))
    }
}

/// The term of a correlation key in the `keys` field.
fn key_term(name: &str, value: &str) -> String {
    format!("{name}={value}")
}

/// The indexed tokens of `needle` that every line containing `needle` has as whole tokens: a
/// token touching either end of the needle may be part of a longer token of the line, and a
/// token the index leaves out cannot narrow a search, so neither counts.
pub(crate) fn needle_tokens(needle: &str) -> Vec<String> {
    let mut analyzer = TextAnalyzer::from(SimpleTokenizer::default());
    let mut stream = analyzer.token_stream(needle);
    let mut tokens = Vec::new();
    while let Some(token) = stream.next() {
        let touches_start = token.offset_from == 0;
        let touches_end = token.offset_to == needle.len();
        let lowered = token.text.to_lowercase();
        if touches_start || touches_end || !is_indexed_token(&lowered) {
            continue;
        }
        tokens.push(lowered);
    }
    tokens.sort();
    tokens.dedup();
    tokens
}

/// Collects every matching document with its stream and timestamp from the fast fields.
struct HitCollector;

struct SegmentHits {
    segment: u32,
    streams: Column<u64>,
    timestamps: Column<i64>,
    hits: Vec<Hit>,
}

impl Collector for HitCollector {
    type Fruit = Vec<Hit>;
    type Child = SegmentHits;

    fn for_segment(&self, segment: u32, reader: &SegmentReader) -> tantivy::Result<SegmentHits> {
        Ok(SegmentHits {
            segment,
            streams: reader.fast_fields().u64("stream")?,
            timestamps: reader.fast_fields().i64("ts")?,
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
        let (Some(stream), Some(timestamp_ns)) = (self.streams.first(doc), self.timestamps.first(doc)) else {
            return;
        };
        self.hits.push(Hit {
            address: DocAddress::new(self.segment, doc),
            stream: stream as u32,
            timestamp_ns,
        });
    }

    fn harvest(self) -> Vec<Hit> {
        self.hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needle_tokens_are_only_whole_tokens_inside_the_needle() {
        assert_eq!(needle_tokens("ection refused to db"), vec!["refused", "to"]);
        assert_eq!(needle_tokens(" Refused "), vec!["refused"]);
        assert_eq!(needle_tokens("=r-123,"), vec!["123", "r"]);
        // Ids and long tokens are not indexed, so they cannot narrow a search.
        assert_eq!(needle_tokens(" user 3fa9b2c1d0 x "), vec!["user", "x"]);
        assert_eq!(needle_tokens(&format!(" {} ok ", "a".repeat(40))), vec!["ok"]);
        assert_eq!(
            needle_tokens(&format!(" {} ok ", "a".repeat(39))),
            vec!["a".repeat(39), "ok".to_owned()]
        );
        assert!(needle_tokens("abc").is_empty());
        assert!(needle_tokens("").is_empty());
    }

    #[test]
    fn entries_are_found_by_stream_time_token_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let index = DayIndex::open(&dir.path().join("2026-12-07")).unwrap();
        let make = |ts: i64, line: &str| LogEntry {
            timestamp_ns: ts,
            line: line.to_owned(),
            metadata: vec![("trace_id".to_owned(), format!("t{ts}"))],
        };
        let entries = [
            make(10, "GET /api ok"),
            make(20, "connection Refused by db"),
            make(30, "connection ok"),
        ];
        let keys: Vec<Vec<(String, String)>> = entries
            .iter()
            .map(|entry| vec![("run_id".to_owned(), format!("r-{}", entry.timestamp_ns))])
            .collect();
        let indexed: Vec<IndexedEntry<'_>> = entries
            .iter()
            .zip(&keys)
            .enumerate()
            .map(|(i, (entry, keys))| IndexedEntry {
                stream: (i % 2) as u32,
                entry,
                keys,
            })
            .collect();
        assert_eq!(index.indexed_through().unwrap(), 0);
        index.add_and_commit(&indexed, 42).unwrap();
        assert_eq!(index.indexed_through().unwrap(), 42);
        assert_eq!(index.num_entries(), 0, "not visible before the reload");
        index.reload().unwrap();
        assert_eq!(index.num_entries(), 3);
        let search = |streams: &[u32], start, end, tokens: &[String], keys: &[(String, String)]| {
            let mut hits: Vec<i64> = index
                .search(
                    &index.searcher(),
                    &DayQuery {
                        streams,
                        start_ns: start,
                        end_ns: end,
                        tokens,
                        keys,
                    },
                )
                .unwrap()
                .iter()
                .map(|hit| hit.timestamp_ns)
                .collect();
            hits.sort();
            hits
        };
        assert_eq!(search(&[0, 1], 0, 100, &[], &[]), vec![10, 20, 30]);
        assert_eq!(search(&[0], 0, 100, &[], &[]), vec![10, 30]);
        assert_eq!(search(&[0, 1], 10, 30, &[], &[]), vec![10, 20]);
        assert_eq!(search(&[0, 1], 0, 100, &["refused".to_owned()], &[]), vec![20]);
        assert_eq!(
            search(&[0, 1], 0, 100, &[], &[("run_id".to_owned(), "r-30".to_owned())]),
            vec![30]
        );
        assert!(search(&[], 0, 100, &[], &[]).is_empty());
        let hits = index
            .search(
                &index.searcher(),
                &DayQuery {
                    streams: &[1],
                    start_ns: 0,
                    end_ns: 100,
                    tokens: &[],
                    keys: &[],
                },
            )
            .unwrap();
        assert_eq!(
            index
                .fetch(&mut DocStores::new(&index.searcher()), &hits, &[])
                .unwrap(),
            vec![Some(entries[1].clone())]
        );
        assert_eq!(
            index
                .fetch(
                    &mut DocStores::new(&index.searcher()),
                    &hits,
                    &["Refused by".to_owned()]
                )
                .unwrap(),
            vec![Some(entries[1].clone())]
        );
        assert_eq!(
            index
                .fetch(
                    &mut DocStores::new(&index.searcher()),
                    &hits,
                    &["absent".to_owned()]
                )
                .unwrap(),
            vec![None]
        );
        // Reopened from disk.
        drop(index);
        let index = DayIndex::open(&dir.path().join("2026-12-07")).unwrap();
        assert_eq!(index.all_hits().unwrap().len(), 3);
        assert_eq!(index.indexed_through().unwrap(), 42);
    }
}

//! One tantivy index per UTC day: `<data>/logs/YYYY-MM-DD/`.
//!
//! A document is a block of entries of one stream (`block`), not an entry: the index finds
//! blocks, and the store reads their entries. Fields of a document:
//! - `stream` (u64, indexed and fast): the stream id from the stream registry;
//! - `id` (u64, indexed and fast): the block's id, by which a compaction replaces it;
//! - `min_ts`, `max_ts` (i64, fast): the first and last timestamps in nanoseconds (a range
//!   query reads the columns);
//! - `entries`, `line_bytes`, `level` (u64, fast): what the block holds and its zstd level,
//!   for compaction and statistics;
//! - `line` (text, not stored): each distinct word of the block's lines once (split on
//!   non-alphanumeric characters, lowercased), the pre-filter of substring line filters.
//!   Tokens of 40 bytes or more and tokens with a digit (ids, hashes, numbers: most of the
//!   distinct words of a log; ids are found through the correlation keys instead) are not
//!   indexed;
//! - `block` (bytes, stored): the block (`block`), compressed by itself, so the doc store adds
//!   no compression of its own.

use std::collections::HashSet;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::directory::OwnedBytes;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, RangeQuery, TermQuery, TermSetQuery};
use tantivy::schema::{
    BytesOptions, FAST, Field, INDEXED, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::store::Compressor;
use tantivy::tokenizer::{LowerCaser, SimpleTokenizer, TextAnalyzer, TokenFilter, TokenStream, Tokenizer};
use tantivy::{
    DocAddress, DocId, Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, Searcher, SegmentReader,
    TantivyDocument, Term,
};

use crate::block::{self, Decoded, Encoded};
use crate::model::LogEntry;

/// Tokens this long or longer are not indexed.
const MAX_TOKEN_BYTES: usize = 40;
/// The name of the line tokenizer, registered on every day index.
const LINE_TOKENIZER: &str = "log_words";

/// Whether the line index holds `token` (lowercased): not too long, and without a digit.
/// Tokens with digits (ids, hashes, numbers, addresses, durations) are most of the distinct
/// words of a log: indexing them per block cost more than all the rest of the index, and the
/// ids a user looks up are found through the correlation keys instead.
fn is_indexed_token(token: &str) -> bool {
    token.len() < MAX_TOKEN_BYTES && !token.bytes().any(|byte| byte.is_ascii_digit())
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
/// Bytes per doc-store block: a log block is usually larger, so each is alone in one and a
/// read copies only its own bytes.
const DOCSTORE_BLOCK_BYTES: usize = 16 << 10;
/// Doc-store blocks a query keeps per segment.
const STORE_CACHE_BLOCKS: usize = 4;

#[derive(Debug, Clone, Copy)]
struct Fields {
    stream: Field,
    id: Field,
    min_ts: Field,
    max_ts: Field,
    entries: Field,
    line_bytes: Field,
    level: Field,
    line: Field,
    block: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let stream = builder.add_u64_field("stream", INDEXED | FAST);
    let id = builder.add_u64_field("id", INDEXED | FAST);
    // Fast only: tantivy answers range queries on a fast field from the column.
    let min_ts = builder.add_i64_field("min_ts", FAST);
    let max_ts = builder.add_i64_field("max_ts", FAST);
    let entries = builder.add_u64_field("entries", FAST);
    let line_bytes = builder.add_u64_field("line_bytes", FAST);
    let level = builder.add_u64_field("level", FAST);
    let line = builder.add_text_field(
        "line",
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(LINE_TOKENIZER)
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        ),
    );
    let block = builder.add_bytes_field("block", BytesOptions::default().set_stored());
    (
        builder.build(),
        Fields {
            stream,
            id,
            min_ts,
            max_ts,
            entries,
            line_bytes,
            level,
            line,
            block,
        },
    )
}

/// Ids for new blocks: unique within a day index (they start at the clock's nanoseconds when
/// the process starts and only grow).
fn next_block_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let _ = NEXT.compare_exchange(
        0,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |since| since.as_nanos() as u64),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// An entry with its correlation keys.
pub(crate) type KeyedEntry<'a> = (&'a LogEntry, &'a [(String, String)]);

/// A block ready to be added: its bytes and what the index keeps about it.
#[derive(Debug)]
pub(crate) struct NewBlock {
    pub(crate) stream: u32,
    pub(crate) encoded: Encoded,
    /// The distinct indexed words of its lines, space-separated.
    pub(crate) words: String,
}

impl NewBlock {
    /// Encodes `entries` (one stream's, in time order) with their correlation keys.
    pub(crate) fn build(
        stream: u32,
        entries: &[(&LogEntry, &[(String, String)])],
        zstd_level: i32,
    ) -> NewBlock {
        let mut words: HashSet<String, foldhash::fast::RandomState> = HashSet::default();
        let mut keys: HashSet<u64, foldhash::fast::RandomState> = HashSet::default();
        for (entry, entry_keys) in entries {
            add_words(&entry.line, &mut words);
            for (name, value) in *entry_keys {
                keys.insert(block::key_hash(name, value));
            }
        }
        let refs: Vec<&LogEntry> = entries.iter().map(|(entry, _)| *entry).collect();
        let mut words: Vec<String> = words.into_iter().collect();
        words.sort_unstable();
        NewBlock {
            stream,
            encoded: block::encode(&refs, &keys.iter().copied().collect::<Vec<u64>>(), zstd_level),
            words: words.join(" "),
        }
    }
}

/// Adds the indexed words of `line` to `words`, as the line analyzer splits and filters them.
fn add_words(line: &str, words: &mut HashSet<String, foldhash::fast::RandomState>) {
    let mut lowered = String::new();
    for word in line.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let word: &str = if word
            .bytes()
            .any(|byte| byte.is_ascii_uppercase() || !byte.is_ascii())
        {
            lowered.clear();
            lowered.extend(word.chars().flat_map(char::to_lowercase));
            &lowered
        } else {
            word
        };
        if is_indexed_token(word) && !words.contains(word) {
            words.insert(word.to_owned());
        }
    }
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
}

/// One block found: where it is and what the index knows of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockHit {
    pub(crate) address: DocAddress,
    pub(crate) stream: u32,
    pub(crate) id: u64,
    pub(crate) min_ns: i64,
    pub(crate) max_ns: i64,
    pub(crate) entries: u64,
    pub(crate) line_bytes: u64,
    /// The zstd level of the block.
    pub(crate) level: u64,
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
            let index = Index::open_in_dir(path).map_err(|err| index_error(path, err))?;
            if index.schema() != schema {
                return Err(index_error(
                    path,
                    "written by an earlier version of obs-appliance (one document per entry); this version cannot read it: move the directory away",
                ));
            }
            index
        } else {
            std::fs::create_dir_all(path).map_err(|err| index_error(path, err))?;
            let settings = IndexSettings {
                docstore_compression: Compressor::None,
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

    fn with_writer<T>(
        &self,
        work: impl FnOnce(&mut IndexWriter<TantivyDocument>) -> tantivy::Result<T>,
    ) -> Result<T, String> {
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
        match work(writer) {
            Ok(value) => Ok(value),
            Err(err) => {
                // A failed commit leaves the writer unusable; the next write opens a new one.
                *writer_slot = None;
                Err(index_error(&self.path, err))
            }
        }
    }

    fn document(&self, block: &NewBlock) -> TantivyDocument {
        let mut document = TantivyDocument::new();
        document.add_u64(self.fields.stream, u64::from(block.stream));
        document.add_u64(self.fields.id, next_block_id());
        document.add_i64(self.fields.min_ts, block.encoded.min_ns);
        document.add_i64(self.fields.max_ts, block.encoded.max_ns);
        document.add_u64(self.fields.entries, u64::from(block.encoded.entries));
        document.add_u64(self.fields.line_bytes, block.encoded.line_bytes);
        document.add_u64(self.fields.level, block.encoded.level.max(0) as u64);
        document.add_text(self.fields.line, &block.words);
        document.add_bytes(self.fields.block, block.encoded.bytes.as_slice());
        document
    }

    /// Adds blocks and commits durably, recording that the write-ahead log records before
    /// `through_lsn` are now in the index; searchers see them after [`DayIndex::reload`].
    pub(crate) fn add_and_commit(&self, blocks: &[NewBlock], through_lsn: u64) -> Result<(), String> {
        self.with_writer(|writer| {
            for block in blocks {
                writer.add_document(self.document(block))?;
            }
            let mut prepared = writer.prepare_commit()?;
            prepared.set_payload(&format!("wal-lsn:{through_lsn}"));
            prepared.commit()?;
            Ok(())
        })
    }

    /// Replaces the blocks `old` with `new` in one durable commit that keeps the recorded log
    /// position, then merges the day into one segment (which drops the old blocks' bytes).
    pub(crate) fn replace(&self, old: &[u64], new: &[NewBlock]) -> Result<(), String> {
        let through = self.indexed_through()?;
        self.with_writer(|writer| {
            for id in old {
                writer.delete_term(Term::from_field_u64(self.fields.id, *id));
            }
            for block in new {
                writer.add_document(self.document(block))?;
            }
            let mut prepared = writer.prepare_commit()?;
            prepared.set_payload(&format!("wal-lsn:{through}"));
            prepared.commit()?;
            let segments = self.index.searchable_segment_ids()?;
            if segments.len() > 1 || !old.is_empty() {
                writer.merge(&segments).wait()?;
            }
            writer.garbage_collect_files().wait()?;
            Ok(())
        })
    }

    /// Makes the last commit visible to new searchers.
    pub(crate) fn reload(&self) -> Result<(), String> {
        self.reader.reload().map_err(|err| index_error(&self.path, err))
    }

    /// A point-in-time view for [`DayIndex::search`] and [`DayIndex::read`].
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

    /// Every block that may hold entries matching `query`, unordered.
    pub(crate) fn search(&self, searcher: &Searcher, query: &DayQuery<'_>) -> Result<Vec<BlockHit>, String> {
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
            // Overlapping [start, end): begins before the end and ends at or after the start.
            (
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Included(Term::from_field_i64(self.fields.min_ts, i64::MIN)),
                    Bound::Excluded(Term::from_field_i64(self.fields.min_ts, query.end_ns)),
                )),
            ),
            (
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Included(Term::from_field_i64(self.fields.max_ts, query.start_ns)),
                    Bound::Included(Term::from_field_i64(self.fields.max_ts, i64::MAX)),
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
        searcher
            .search(&BooleanQuery::new(clauses), &BlockCollector)
            .map_err(|err| index_error(&self.path, err))
    }

    /// Every block of the day.
    pub(crate) fn all_blocks(&self, searcher: &Searcher) -> Result<Vec<BlockHit>, String> {
        searcher
            .search(&AllQuery, &BlockCollector)
            .map_err(|err| index_error(&self.path, err))
    }

    /// The directory of the index.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes of the block at `address` (decode them with [`block::decode`]), without a
    /// copy when they can be read in place.
    pub(crate) fn read_bytes(
        &self,
        stores: &mut DocStores,
        address: DocAddress,
    ) -> Result<OwnedBytes, String> {
        let reader = stores
            .reader(address.segment_ord)
            .map_err(|err| index_error(&self.path, err))?;
        // The block is the document's only stored value, so its bytes end the stored
        // document: read them there, without tantivy deserializing the bytes one at a time
        // (which cost more than decompressing them). Anything else takes the long way.
        let stored = reader
            .get_document_bytes(address.doc_id)
            .map_err(|err| index_error(&self.path, err))?;
        if let Some(length) = block::at_end(stored.as_slice()).map(<[u8]>::len) {
            return Ok(stored.slice(stored.len() - length..stored.len()));
        }
        let document: TantivyDocument = reader
            .get(address.doc_id)
            .map_err(|err| index_error(&self.path, err))?;
        document
            .get_first(self.fields.block)
            .and_then(|value| value.as_bytes())
            .map(|bytes| OwnedBytes::new(bytes.to_vec()))
            .ok_or_else(|| index_error(&self.path, "a document has no block"))
    }

    /// The block at `address`, decompressed.
    pub(crate) fn read(&self, stores: &mut DocStores, address: DocAddress) -> Result<Decoded, String> {
        let bytes = self.read_bytes(stores, address)?;
        block::decode(bytes.as_slice()).map_err(|err| index_error(&self.path, err))
    }

    /// Every entry the day holds, in block order (for tests).
    #[cfg(test)]
    pub(crate) fn all_entries(&self) -> Result<Vec<LogEntry>, String> {
        let searcher = self.searcher();
        let mut stores = DocStores::new(&searcher);
        let mut entries = Vec::new();
        for hit in self.all_blocks(&searcher)? {
            let decoded = self.read(&mut stores, hit.address)?;
            for index in 0..decoded.len() {
                entries.push(decoded.entry(index).map_err(|err| err.to_string())?);
            }
        }
        Ok(entries)
    }
}

/// The doc-store readers of a searcher's segments, opened on first use and kept for a query
/// (opening one reads the store's index, far too costly per block).
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

/// Collects every matching block with what the fast fields know of it.
struct BlockCollector;

struct SegmentBlocks {
    segment: u32,
    columns: [Column<u64>; 5],
    times: [Column<i64>; 2],
    hits: Vec<BlockHit>,
}

impl Collector for BlockCollector {
    type Fruit = Vec<BlockHit>;
    type Child = SegmentBlocks;

    fn for_segment(&self, segment: u32, reader: &SegmentReader) -> tantivy::Result<SegmentBlocks> {
        let fast = reader.fast_fields();
        Ok(SegmentBlocks {
            segment,
            columns: [
                fast.u64("stream")?,
                fast.u64("id")?,
                fast.u64("entries")?,
                fast.u64("line_bytes")?,
                fast.u64("level")?,
            ],
            times: [fast.i64("min_ts")?, fast.i64("max_ts")?],
            hits: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<BlockHit>>) -> tantivy::Result<Vec<BlockHit>> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

impl SegmentCollector for SegmentBlocks {
    type Fruit = Vec<BlockHit>;

    fn collect(&mut self, doc: DocId, _score: tantivy::Score) {
        let [stream, id, entries, line_bytes, level] = &self.columns;
        let [min_ts, max_ts] = &self.times;
        let (
            Some(stream),
            Some(id),
            Some(entries),
            Some(line_bytes),
            Some(level),
            Some(min_ns),
            Some(max_ns),
        ) = (
            stream.first(doc),
            id.first(doc),
            entries.first(doc),
            line_bytes.first(doc),
            level.first(doc),
            min_ts.first(doc),
            max_ts.first(doc),
        )
        else {
            return;
        };
        self.hits.push(BlockHit {
            address: DocAddress::new(self.segment, doc),
            stream: stream as u32,
            id,
            min_ns,
            max_ns,
            entries,
            line_bytes,
            level,
        });
    }

    fn harvest(self) -> Vec<BlockHit> {
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
        assert_eq!(needle_tokens("=r-123,"), vec!["r"]);
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

    fn block(stream: u32, entries: &[LogEntry], run: &str) -> NewBlock {
        let keys = vec![("run_id".to_owned(), run.to_owned())];
        let with_keys: Vec<(&LogEntry, &[(String, String)])> =
            entries.iter().map(|entry| (entry, keys.as_slice())).collect();
        NewBlock::build(stream, &with_keys, 3)
    }

    fn entry(ts: i64, line: &str) -> LogEntry {
        LogEntry {
            timestamp_ns: ts,
            line: line.to_owned(),
            metadata: vec![("trace_id".to_owned(), format!("t{ts}"))],
        }
    }

    #[test]
    fn blocks_are_found_by_stream_time_token_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let index = DayIndex::open(&dir.path().join("2026-12-07")).unwrap();
        let first = [entry(10, "GET /api ok"), entry(30, "connection ok")];
        let second = [entry(20, "connection Refused by db")];
        let third = [entry(40, "GET /api ok")];
        assert_eq!(index.indexed_through().unwrap(), 0);
        index
            .add_and_commit(&[block(0, &first, "r-1"), block(1, &second, "r-2")], 42)
            .unwrap();
        assert_eq!(index.indexed_through().unwrap(), 42);
        assert!(
            index.all_blocks(&index.searcher()).unwrap().is_empty(),
            "not visible before the reload"
        );
        index.reload().unwrap();
        index.add_and_commit(&[block(0, &third, "r-3")], 50).unwrap();
        index.reload().unwrap();
        let search = |streams: &[u32], start, end, tokens: &[&str]| {
            let tokens: Vec<String> = tokens.iter().map(|token| (*token).to_owned()).collect();
            let mut found: Vec<(u32, i64, i64)> = index
                .search(
                    &index.searcher(),
                    &DayQuery {
                        streams,
                        start_ns: start,
                        end_ns: end,
                        tokens: &tokens,
                    },
                )
                .unwrap()
                .iter()
                .map(|hit| (hit.stream, hit.min_ns, hit.max_ns))
                .collect();
            found.sort();
            found
        };
        assert_eq!(
            search(&[0, 1], 0, 100, &[]),
            vec![(0, 10, 30), (0, 40, 40), (1, 20, 20)]
        );
        assert_eq!(search(&[0], 0, 100, &[]), vec![(0, 10, 30), (0, 40, 40)]);
        // Overlap with [start, end): a block spanning the range counts, one ending before it not.
        assert_eq!(search(&[0, 1], 15, 25, &[]), vec![(0, 10, 30), (1, 20, 20)]);
        assert_eq!(search(&[0, 1], 31, 40, &[]), vec![]);
        assert_eq!(search(&[0, 1], 31, 41, &[]), vec![(0, 40, 40)]);
        assert_eq!(search(&[0, 1], 0, 100, &["refused"]), vec![(1, 20, 20)]);
        assert_eq!(
            search(&[0, 1], 0, 100, &["get", "api"]),
            vec![(0, 10, 30), (0, 40, 40)]
        );
        // Correlation keys are in each block's key filter, not in the index.
        let searcher = index.searcher();
        let with_run = |run: &str| -> Vec<(u32, i64)> {
            let mut found: Vec<(u32, i64)> = index
                .all_blocks(&searcher)
                .unwrap()
                .iter()
                .filter(|hit| {
                    let bytes = index
                        .read_bytes(&mut DocStores::new(&searcher), hit.address)
                        .unwrap();
                    block::may_hold_keys(bytes.as_slice(), &[block::key_hash("run_id", run)])
                })
                .map(|hit| (hit.stream, hit.min_ns))
                .collect();
            found.sort();
            found
        };
        assert_eq!(with_run("r-3"), vec![(0, 40)]);
        assert_eq!(with_run("r-1"), vec![(0, 10)]);
        assert!(with_run("r-9").is_empty());
        assert!(search(&[], 0, 100, &[]).is_empty());
        let hits = index.all_blocks(&index.searcher()).unwrap();
        let second_hit = hits.iter().find(|hit| hit.stream == 1).unwrap();
        assert_eq!((second_hit.entries, second_hit.line_bytes), (1, 24));
        let searcher = index.searcher();
        let decoded = index
            .read(&mut DocStores::new(&searcher), second_hit.address)
            .unwrap();
        assert_eq!(decoded.entry(0).unwrap(), second[0]);
        // The stored document ends with the block, which `read_bytes` relies on to skip
        // tantivy's deserialization.
        let stored = searcher
            .segment_reader(second_hit.address.segment_ord)
            .get_store_reader(1)
            .unwrap()
            .get_document_bytes(second_hit.address.doc_id)
            .unwrap();
        assert!(block::at_end(stored.as_slice()).is_some());

        // A compaction replaces blocks in one commit and keeps the log position.
        let old: Vec<u64> = hits
            .iter()
            .filter(|hit| hit.stream == 0)
            .map(|hit| hit.id)
            .collect();
        let merged = [first[0].clone(), first[1].clone(), third[0].clone()];
        index.replace(&old, &[block(0, &merged, "r-1")]).unwrap();
        index.reload().unwrap();
        assert_eq!(search(&[0, 1], 0, 100, &[]), vec![(0, 10, 40), (1, 20, 20)]);
        assert_eq!(index.indexed_through().unwrap(), 50);
        assert_eq!(
            index.searcher().segment_readers().len(),
            1,
            "merged into one segment"
        );
        // Reopened from disk.
        drop(index);
        let index = DayIndex::open(&dir.path().join("2026-12-07")).unwrap();
        let mut entries = index.all_entries().unwrap();
        entries.sort_by_key(|entry| entry.timestamp_ns);
        assert_eq!(
            entries,
            vec![
                first[0].clone(),
                second[0].clone(),
                first[1].clone(),
                third[0].clone()
            ]
        );
        assert_eq!(index.indexed_through().unwrap(), 50);
    }

    /// Where the bytes of real day indexes go, part by part (a measuring aid, not a test):
    /// `OBS_LOGS_DIR=<data>/logs cargo test -p obs-logs --release -- --ignored --nocapture parts`.
    #[test]
    #[ignore = "measures a data directory named by OBS_LOGS_DIR"]
    fn parts_of_the_blocks_of_a_data_directory() {
        let Some(dir) = std::env::var_os("OBS_LOGS_DIR") else {
            return;
        };
        let mut totals: std::collections::BTreeMap<&str, (usize, usize)> = std::collections::BTreeMap::new();
        let (mut blocks, mut stored) = (0, 0);
        for day in std::fs::read_dir(dir).unwrap().flatten() {
            if !day.path().join("meta.json").exists() {
                continue;
            }
            let index = DayIndex::open(&day.path()).unwrap();
            let searcher = index.searcher();
            let mut stores = DocStores::new(&searcher);
            for hit in index.all_blocks(&searcher).unwrap() {
                let bytes = index.read_bytes(&mut stores, hit.address).unwrap();
                blocks += 1;
                stored += bytes.len();
                for (name, raw, compressed) in block::part_sizes(&bytes, 9) {
                    let total = totals.entry(name).or_default();
                    total.0 += raw;
                    total.1 += compressed;
                }
            }
        }
        println!("{blocks} blocks, {:.2} MB stored", stored as f64 / 1e6);
        for (name, (raw, compressed)) in totals {
            println!(
                "{name}: {:.2} MB raw, {:.2} MB compressed by itself",
                raw as f64 / 1e6,
                compressed as f64 / 1e6
            );
        }
    }

    #[test]
    fn key_hashes_are_fnv_1a_of_name_zero_value() {
        // Stable values: they are on disk.
        assert_eq!(block::key_hash("", ""), 0xaf63_bd4c_8601_b7df);
        assert_ne!(block::key_hash("run_id", "r-1"), block::key_hash("run_id", "r-2"));
        assert_ne!(block::key_hash("a", "bc"), block::key_hash("ab", "c"));
    }

    #[test]
    fn block_words_are_the_line_analyzer_tokens() {
        let mut words = HashSet::default();
        add_words("GET /Api 200 ÉCOLE user=a5884caf1 id-1234567 ok ok", &mut words);
        let mut words: Vec<String> = words.into_iter().collect();
        words.sort();
        assert_eq!(words, ["api", "get", "id", "ok", "user", "école"]);
        let mut analyzer = line_analyzer();
        let mut stream = analyzer.token_stream("GET /Api 200 ÉCOLE user=a5884caf1 id-1234567 ok ok");
        let mut analyzed = std::collections::BTreeSet::new();
        while let Some(token) = stream.next() {
            analyzed.insert(token.text.clone());
        }
        assert_eq!(analyzed.into_iter().collect::<Vec<_>>(), words);
    }
}

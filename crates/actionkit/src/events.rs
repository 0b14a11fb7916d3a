//! Streaming Segment events from NDJSON or a JSON array, in chunks, through a pool of workers.
//!
//! A reader thread cuts the input into chunks of raw lines (at most [`CHUNK_EVENTS`] events; a
//! chunk is also handed over whenever the reader's buffer is used up, so the next read might wait,
//! which keeps a slow stream such as `tail -f` that writes whole lines from being held back). A small pool of worker threads parses each chunk
//! and runs a caller-supplied function on every item, so an event is allocated, used and freed on
//! one thread. The results come back in input order: the reader queues one receiver per chunk in
//! a bounded channel, and the consumer awaits them in that order. Every channel is bounded, so
//! memory stays flat however long the input is.
//!
//! Each item is either an event (a JSON object) or a problem with the line it was found on; a
//! problem never stops the rest of an NDJSON stream. A JSON array cannot be cut into lines, so
//! it is parsed element by element on the reader thread and only the function runs in the pool.

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::Value;

/// The largest accepted event, in bytes; longer lines are reported and skipped.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 512 * 1024;

/// The most events in one chunk.
pub const CHUNK_EVENTS: usize = 256;

/// A chunk is handed over once its lines take this many bytes, even if it has fewer events.
const CHUNK_BYTES: usize = 1024 * 1024;

/// How many chunks may wait for a worker, per worker.
const QUEUED_CHUNKS_PER_WORKER: usize = 2;

/// One item of the input stream.
#[derive(Debug)]
pub struct Item {
    /// Zero-based position of the item in the input (events and problems alike).
    pub index: usize,
    /// One-based line the item starts on (0 when unknown).
    pub line: usize,
    /// The bytes the item took in the input, for throughput figures.
    pub bytes: usize,
    /// The event, or what is wrong with this item.
    pub event: Result<Value, String>,
}

/// The results of one chunk, in input order, once a worker has produced them.
pub type ChunkResult<R> = tokio::sync::oneshot::Receiver<Vec<R>>;

/// One NDJSON line of a chunk, as a range of the chunk's buffer.
struct Span {
    start: usize,
    end: usize,
    index: usize,
    line: usize,
    /// The full length of the line (it may be longer than the kept bytes).
    len: usize,
    too_long: bool,
}

/// What the reader hands to the workers.
enum Work {
    /// Raw NDJSON lines, parsed by the worker.
    Lines {
        data: Vec<u8>,
        spans: Vec<Span>,
        max_event_bytes: usize,
    },
    /// Items the reader already parsed (JSON arrays and read errors).
    Items(Vec<Item>),
}

impl Work {
    fn is_empty(&self) -> bool {
        match self {
            Work::Lines { spans, .. } => spans.is_empty(),
            Work::Items(items) => items.is_empty(),
        }
    }

    /// Parses the chunk's lines and runs `f` on every item, in order.
    fn run<R>(self, f: &impl Fn(Item) -> R) -> Vec<R> {
        match self {
            Work::Items(items) => items.into_iter().map(f).collect(),
            Work::Lines {
                data,
                spans,
                max_event_bytes,
            } => spans
                .into_iter()
                .map(|span| {
                    let event = if span.too_long {
                        Err(format!(
                            "the event is {} bytes, more than the limit of {max_event_bytes} bytes",
                            span.len
                        ))
                    } else {
                        parse_event(&data[span.start..span.end])
                    };
                    f(Item {
                        index: span.index,
                        line: span.line,
                        bytes: span.len,
                        event,
                    })
                })
                .collect(),
        }
    }
}

/// Where the reader sends work: the shared queue of the pool and, in input order, the receivers
/// of the results.
struct Dispatcher<R> {
    work: SyncSender<(Work, tokio::sync::oneshot::Sender<Vec<R>>)>,
    order: tokio::sync::mpsc::Sender<ChunkResult<R>>,
}

impl<R> Dispatcher<R> {
    /// Queues one chunk; false when the consumer has gone away.
    fn send(&self, work: Work) -> bool {
        if work.is_empty() {
            return true;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.order.blocking_send(rx).is_ok() && self.work.send((work, tx)).is_ok()
    }
}

/// Reads `reader` on a new thread and runs `f` on every item in a pool of `workers` threads;
/// the returned channel yields each chunk's results in input order.
///
/// Must be called from within a Tokio runtime's context only if the caller awaits the results
/// there; the threads themselves never block on the runtime.
pub fn spawn_pipeline<R, F>(
    reader: Box<dyn Read + Send>,
    max_event_bytes: usize,
    workers: usize,
    f: F,
) -> tokio::sync::mpsc::Receiver<ChunkResult<R>>
where
    R: Send + 'static,
    F: Fn(Item) -> R + Send + Sync + 'static,
{
    let workers = workers.max(1);
    let depth = workers * QUEUED_CHUNKS_PER_WORKER;
    let (work_tx, work_rx) = sync_channel::<(Work, tokio::sync::oneshot::Sender<Vec<R>>)>(depth);
    // The order channel holds every chunk that is queued, being worked on or done but not yet
    // consumed, which bounds memory.
    let (order_tx, order_rx) = tokio::sync::mpsc::channel(depth + workers + 1);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let f = Arc::new(f);
    for _ in 0..workers {
        let work_rx = Arc::clone(&work_rx);
        let f = Arc::clone(&f);
        std::thread::spawn(move || {
            loop {
                let next = match work_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok((work, done)) = next else { return };
                // The consumer may have gone away; the results are then dropped.
                let _ = done.send(work.run(&*f));
            }
        });
    }
    let dispatcher = Dispatcher {
        work: work_tx,
        order: order_tx,
    };
    std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(256 * 1024, reader);
        match first_significant_byte(&mut reader) {
            Ok((Some(b'['), skipped_lines)) => read_array(reader, skipped_lines, &dispatcher),
            Ok((_, skipped_lines)) => {
                read_ndjson(reader, skipped_lines, max_event_bytes, &dispatcher)
            }
            Err(err) => {
                dispatcher.send(Work::Items(vec![Item {
                    index: 0,
                    line: 1,
                    bytes: 0,
                    event: Err(format!("cannot read input: {err}")),
                }]));
            }
        }
    });
    order_rx
}

/// Skips white space before the first value and returns its first byte (without consuming it)
/// and how many newlines were skipped, so NDJSON line numbers stay right.
fn first_significant_byte(reader: &mut impl BufRead) -> std::io::Result<(Option<u8>, usize)> {
    let mut newlines = 0usize;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok((None, newlines));
        }
        let skip = buf.iter().position(|b| !b.is_ascii_whitespace());
        let consumed = skip.unwrap_or(buf.len());
        newlines += buf[..consumed].iter().filter(|&&b| b == b'\n').count();
        let first = skip.map(|idx| buf[idx]);
        reader.consume(consumed);
        if first.is_some() {
            return Ok((first, newlines));
        }
    }
}

/// Reads newline-delimited JSON into chunks of lines; each line is one event.
fn read_ndjson<R>(
    mut reader: BufReader<Box<dyn Read + Send>>,
    skipped_lines: usize,
    max_event_bytes: usize,
    dispatcher: &Dispatcher<R>,
) {
    let mut line_no = skipped_lines;
    let mut index = 0usize;
    let new_chunk = || Work::Lines {
        data: Vec::with_capacity(CHUNK_BYTES.min(64 * 1024)),
        spans: Vec::with_capacity(CHUNK_EVENTS),
        max_event_bytes,
    };
    let mut chunk = new_chunk();
    loop {
        let Work::Lines { data, spans, .. } = &mut chunk else {
            return;
        };
        line_no += 1;
        let start = data.len();
        let (len, too_long) = match read_line_bounded(&mut reader, data, max_event_bytes) {
            Ok(Some(res)) => res,
            Ok(None) => break,
            Err(err) => {
                data.truncate(start);
                let failed = Item {
                    index,
                    line: line_no,
                    bytes: 0,
                    event: Err(format!("cannot read input: {err}")),
                };
                if dispatcher.send(std::mem::replace(&mut chunk, new_chunk())) {
                    dispatcher.send(Work::Items(vec![failed]));
                }
                return;
            }
        };
        let (text_start, text_end) = trim_ascii_range(&data[start..]);
        if text_start == text_end && !too_long {
            data.truncate(start);
        } else {
            if too_long {
                data.truncate(start);
            }
            let (span_start, span_end) = if too_long {
                (start, start)
            } else {
                (start + text_start, start + text_end)
            };
            spans.push(Span {
                start: span_start,
                end: span_end,
                index,
                line: line_no,
                len,
                too_long,
            });
            index += 1;
        }
        // Hand the chunk over when it is full, or when the next line would make us wait for
        // input, so a slow stream is processed as it arrives.
        let full = spans.len() >= CHUNK_EVENTS || data.len() >= CHUNK_BYTES;
        if (full || reader.buffer().is_empty())
            && !dispatcher.send(std::mem::replace(&mut chunk, new_chunk()))
        {
            return;
        }
    }
    dispatcher.send(chunk);
}

/// Appends one line to `buf` (without the newline), keeping at most `max + 1` bytes of it;
/// returns the line's full length and whether it is longer than `max`, or `None` at the end of
/// the input.
fn read_line_bounded(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<(usize, bool)>> {
    let start = buf.len();
    // `read_until` finds the newline with a fast byte search; the limit lets it keep at most
    // `max + 1` bytes of the line plus the newline.
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(2);
    let n = (&mut *reader).take(limit).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        let len = n - 1;
        return Ok(Some((len, len > max)));
    }
    // No newline yet: the end of the input, or a line longer than the limit, whose rest is
    // skipped without being kept.
    buf.truncate(start + n.min(max.saturating_add(1)));
    let mut len = n;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(Some((len, len > max)));
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(idx) => {
                len += idx;
                reader.consume(idx + 1);
                return Ok(Some((len, len > max)));
            }
            None => {
                let taken = available.len();
                len += taken;
                reader.consume(taken);
            }
        }
    }
}

/// The range of `bytes` without leading and trailing ASCII white space.
fn trim_ascii_range(bytes: &[u8]) -> (usize, usize) {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |idx| idx + 1);
    (start, end)
}

/// Parses one event; it must be a JSON object. Lone UTF-16 surrogate escapes are read as U+FFFD,
/// as the intake reads them.
pub fn parse_event(bytes: &[u8]) -> Result<Value, String> {
    let parsed = match std::str::from_utf8(bytes) {
        Ok(text) => {
            serde_json::from_str::<Value>(&actionkit_intake::json::replace_lone_surrogates(text))
        }
        Err(_) => serde_json::from_slice::<Value>(bytes),
    };
    match parsed {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(other) => Err(format!(
            "expected a JSON object (a Segment event) but found {}",
            json_kind(&other)
        )),
        Err(err) => Err(format!(
            "invalid JSON at column {}: {}",
            err.column(),
            strip_position(&err)
        )),
    }
}

fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(idx) => text[..idx].to_owned(),
        None => text,
    }
}

/// A short description of a JSON value's kind, with an article.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What the reader of a JSON array has consumed so far, for line numbers and chunking.
#[derive(Default)]
struct Position {
    newlines: std::cell::Cell<usize>,
    bytes: std::cell::Cell<usize>,
    /// Whether the buffer was empty after the last read, so the next read may wait for input.
    drained: std::cell::Cell<bool>,
}

/// A reader that counts the newlines and bytes serde_json pulls through it.
struct Counting<'a> {
    inner: BufReader<Box<dyn Read + Send>>,
    position: &'a Position,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let newlines = buf[..n].iter().filter(|&&b| b == b'\n').count();
        let position = self.position;
        position.newlines.set(position.newlines.get() + newlines);
        position.bytes.set(position.bytes.get() + n);
        position.drained.set(self.inner.buffer().is_empty());
        Ok(n)
    }
}

/// Reads a JSON array element by element, handing over chunks of parsed elements.
fn read_array<R>(
    reader: BufReader<Box<dyn Read + Send>>,
    skipped_lines: usize,
    dispatcher: &Dispatcher<R>,
) {
    let position = Position::default();
    position.newlines.set(skipped_lines);
    let counting = Counting {
        inner: reader,
        position: &position,
    };
    // serde_json reads byte by byte; the inner reader is buffered.
    let mut de = serde_json::Deserializer::from_reader(counting);
    let mut sink = ArraySink {
        dispatcher,
        position: &position,
        chunk: Vec::with_capacity(CHUNK_EVENTS),
        sent: 0,
        gone: false,
    };
    let res = serde::Deserializer::deserialize_seq(&mut de, &mut sink);
    let mut chunk = std::mem::take(&mut sink.chunk);
    if sink.gone {
        return;
    }
    if let Err(err) = res {
        // An array cannot be resynchronised after a syntax error; report where it stopped.
        chunk.push(Item {
            index: sink.sent,
            line: err.line() + skipped_lines,
            bytes: 0,
            event: Err(format!(
                "invalid JSON array at column {}: {}; the rest of the input was not read",
                err.column(),
                strip_position(&err)
            )),
        });
    }
    dispatcher.send(Work::Items(chunk));
}

struct ArraySink<'a, R> {
    dispatcher: &'a Dispatcher<R>,
    position: &'a Position,
    chunk: Vec<Item>,
    /// Elements seen so far.
    sent: usize,
    /// Whether the consumer went away.
    gone: bool,
}

impl<'de, R> Visitor<'de> for &mut ArraySink<'_, R> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of Segment events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let bytes_before = self.position.bytes.get();
            let seed = ElementSeed {
                position: self.position,
                line: 0,
            };
            let Some((value, line)) = seq.next_element_seed(seed)? else {
                return Ok(());
            };
            let event = match value {
                value @ Value::Object(_) => Ok(value),
                other => Err(format!(
                    "expected a JSON object (a Segment event) but found {}",
                    json_kind(&other)
                )),
            };
            self.chunk.push(Item {
                index: self.sent,
                line,
                bytes: self.position.bytes.get() - bytes_before,
                event,
            });
            self.sent += 1;
            if self.chunk.len() >= CHUNK_EVENTS || self.position.drained.get() {
                let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_EVENTS));
                if !self.dispatcher.send(Work::Items(chunk)) {
                    self.gone = true;
                    return Ok(());
                }
            }
        }
    }
}

/// Deserialises one array element and notes the line it starts on.
struct ElementSeed<'a> {
    position: &'a Position,
    line: usize,
}

impl<'de> DeserializeSeed<'de> for ElementSeed<'_> {
    type Value = (Value, usize);

    fn deserialize<D: serde::Deserializer<'de>>(
        mut self,
        de: D,
    ) -> Result<(Value, usize), D::Error> {
        // serde_json has consumed the white space before the element and peeked at its first
        // byte, which is not a newline, so the newlines so far end the lines before it.
        self.line = self.position.newlines.get() + 1;
        let value = serde::Deserialize::deserialize(de)?;
        Ok((value, self.line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the whole pipeline with two workers and returns the items in the order received.
    fn collect_bytes(input: Vec<u8>, max_event_bytes: usize) -> Vec<Item> {
        let mut chunks = spawn_pipeline(
            Box::new(std::io::Cursor::new(input)),
            max_event_bytes,
            2,
            |item| item,
        );
        let mut items = Vec::new();
        while let Some(chunk) = chunks.blocking_recv() {
            items.extend(chunk.blocking_recv().expect("a worker answers"));
        }
        items
    }

    fn collect(input: &str) -> Vec<Item> {
        collect_bytes(input.as_bytes().to_vec(), 64)
    }

    #[test]
    fn ndjson_reports_bad_lines_and_keeps_going() {
        let items = collect("{\"type\":\"track\"}\n\nnot json\n[1]\n{\"type\":\"identify\"}\n");
        let lines: Vec<usize> = items.iter().map(|i| i.line).collect();
        assert_eq!(lines, vec![1, 3, 4, 5]);
        assert!(items[0].event.is_ok());
        assert!(
            items[1]
                .event
                .as_ref()
                .is_err_and(|e| e.starts_with("invalid JSON at column 2"))
        );
        assert_eq!(
            items[2].event.as_ref().err().map(String::as_str),
            Some("expected a JSON object (a Segment event) but found an array")
        );
        assert!(items[3].event.is_ok());
        assert_eq!(items[3].index, 3);
    }

    #[test]
    fn ndjson_rejects_long_lines_without_keeping_them() {
        let long = format!("{{\"type\":\"track\",\"event\":\"{}\"}}", "x".repeat(200));
        let items = collect(&format!("{long}\n{{\"type\":\"track\"}}\n"));
        assert_eq!(items.len(), 2);
        assert!(
            items[0]
                .event
                .as_ref()
                .is_err_and(|e| e.contains("more than the limit of 64 bytes"))
        );
        assert!(items[1].event.is_ok());
    }

    #[test]
    fn bounded_lines_are_cut_at_the_limit_and_skipped_to_the_newline() {
        let input = b"12345\n123456\n1234567890abc\nxy\n\nlast".to_vec();
        // A tiny buffer makes long lines span several reads.
        let mut reader = BufReader::with_capacity(4, std::io::Cursor::new(input));
        let mut buf = b"kept".to_vec();
        let mut lines = Vec::new();
        while let Some((len, too_long)) =
            read_line_bounded(&mut reader, &mut buf, 5).expect("reads")
        {
            lines.push((
                len,
                too_long,
                String::from_utf8_lossy(&buf[4..]).into_owned(),
            ));
            buf.truncate(4);
        }
        assert_eq!(
            lines,
            [
                (5, false, "12345".to_owned()),
                (6, true, "123456".to_owned()),
                (13, true, "123456".to_owned()),
                (2, false, "xy".to_owned()),
                (0, false, String::new()),
                (4, false, "last".to_owned()),
            ]
        );
        assert_eq!(buf, b"kept", "earlier bytes of the chunk are left alone");
    }

    #[test]
    fn ndjson_reports_invalid_utf8_with_its_line() {
        let mut bytes = b"{\"type\":\"track\"}\n{\"type\":\"tr".to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        bytes.extend_from_slice(b"ck\"}\n{\"type\":\"group\"}");
        let items = collect_bytes(bytes, 1024);
        assert_eq!(items.len(), 3);
        assert_eq!(items[1].line, 2);
        assert!(
            items[1]
                .event
                .as_ref()
                .is_err_and(|e| e.contains("invalid JSON"))
        );
        assert!(items[2].event.is_ok());
    }

    #[test]
    fn array_input_streams_elements() {
        let items = collect(" [ {\"type\":\"track\"}, 3, {\"type\":\"group\"} ]");
        assert_eq!(items.len(), 3);
        assert!(items[0].event.is_ok());
        assert!(items[1].event.is_err());
        assert_eq!(items[2].index, 2);
    }

    #[test]
    fn array_elements_carry_the_line_they_start_on() {
        let input = "\n[\n  {\"type\":\"track\"},\n  {\n    \"type\": \"group\"\n  }, 7\n]\n";
        let lines: Vec<usize> = collect(input).iter().map(|i| i.line).collect();
        assert_eq!(lines, vec![3, 4, 6]);
    }

    #[test]
    fn many_chunks_keep_input_order_and_line_numbers() {
        let n = CHUNK_EVENTS * 5 + 17;
        let mut input = String::new();
        for idx in 0..n {
            if idx % 100 == 0 {
                input.push('\n');
            }
            input.push_str(&format!("{{\"type\":\"track\",\"n\":{idx}}}\n"));
        }
        let items = collect_bytes(input.into_bytes(), 1024);
        assert_eq!(items.len(), n);
        for (idx, item) in items.iter().enumerate() {
            assert_eq!(item.index, idx);
            assert_eq!(item.line, idx + idx / 100 + 2);
            let event = item.event.as_ref().expect("an event");
            assert_eq!(event["n"], idx);
        }
    }

    #[test]
    fn truncated_array_reports_where_it_stopped() {
        let items = collect("[{\"type\":\"track\"}, {\"type\":");
        assert_eq!(items.len(), 2);
        assert!(
            items[1]
                .event
                .as_ref()
                .is_err_and(|e| e.contains("the rest of the input was not read"))
        );
    }
}

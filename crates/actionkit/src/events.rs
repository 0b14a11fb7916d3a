//! Streaming Segment events from NDJSON or a JSON array, one at a time.
//!
//! Input is read on a dedicated thread and handed over through a bounded channel, so memory
//! stays flat however long the input is. Each item is either an event (a JSON object) or a
//! problem with the line it was found on; a problem never stops the rest of an NDJSON stream.

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::Value;

/// The largest accepted event, in bytes; longer lines are reported and skipped.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 512 * 1024;

/// How many parsed items may wait between the reader thread and the consumer.
const CHANNEL_DEPTH: usize = 1024;

/// One item of the input stream.
#[derive(Debug)]
pub struct Item {
    /// Zero-based position of the item in the input (events and problems alike).
    pub index: usize,
    /// One-based line the item starts on.
    pub line: usize,
    /// The bytes the item took in the input, for throughput figures.
    pub bytes: usize,
    /// The event, or what is wrong with this item.
    pub event: Result<Value, String>,
}

/// Starts reading `reader` on a new thread; items arrive on the returned channel in order.
pub fn spawn_reader(reader: Box<dyn Read + Send>, max_event_bytes: usize) -> Receiver<Item> {
    let (tx, rx) = sync_channel(CHANNEL_DEPTH);
    std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(256 * 1024, reader);
        match first_significant_byte(&mut reader) {
            Ok((Some(b'['), _)) => read_array(reader, &tx),
            Ok((_, skipped_lines)) => read_ndjson(reader, skipped_lines, max_event_bytes, &tx),
            Err(err) => {
                let _ = tx.send(Item {
                    index: 0,
                    line: 1,
                    bytes: 0,
                    event: Err(format!("cannot read input: {err}")),
                });
            }
        }
    });
    rx
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

/// Reads newline-delimited JSON; each line is one event.
fn read_ndjson(
    mut reader: impl BufRead,
    skipped_lines: usize,
    max_event_bytes: usize,
    tx: &SyncSender<Item>,
) {
    let mut line_no = skipped_lines;
    let mut index = 0usize;
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        line_no += 1;
        let (len, too_long) = match read_line_bounded(&mut reader, &mut buf, max_event_bytes) {
            Ok(Some(res)) => res,
            Ok(None) => return,
            Err(err) => {
                let _ = tx.send(Item {
                    index,
                    line: line_no,
                    bytes: 0,
                    event: Err(format!("cannot read input: {err}")),
                });
                return;
            }
        };
        let text = trim_ascii(&buf);
        if text.is_empty() && !too_long {
            continue;
        }
        let event = if too_long {
            Err(format!(
                "the event is {len} bytes, more than the limit of {max_event_bytes} bytes"
            ))
        } else {
            parse_event(text)
        };
        if tx
            .send(Item {
                index,
                line: line_no,
                bytes: len,
                event,
            })
            .is_err()
        {
            return;
        }
        index += 1;
    }
}

/// Reads one line into `buf` (without the newline), keeping at most `max` bytes; returns the
/// line's full length and whether it was cut, or `None` at the end of the input.
fn read_line_bounded(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<(usize, bool)>> {
    let mut len = 0usize;
    let mut saw_any = false;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(saw_any.then_some((len, len > max)));
        }
        saw_any = true;
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(idx) => (&available[..idx], Some(idx + 1)),
            None => (available, None),
        };
        if buf.len() < max + 1 {
            let room = max + 1 - buf.len();
            buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        len += chunk.len();
        let consumed = done.unwrap_or(available.len());
        reader.consume(consumed);
        if done.is_some() {
            return Ok(Some((len, len > max)));
        }
    }
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |idx| idx + 1);
    &bytes[start..end]
}

/// Parses one event; it must be a JSON object.
pub fn parse_event(bytes: &[u8]) -> Result<Value, String> {
    match serde_json::from_slice::<Value>(bytes) {
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

/// Reads a JSON array element by element, sending each as it is parsed.
fn read_array(reader: impl Read, tx: &SyncSender<Item>) {
    let mut de = serde_json::Deserializer::from_reader(reader);
    let sink = ArraySink { tx, sent: 0 };
    if let Err(err) = serde::Deserializer::deserialize_seq(&mut de, sink) {
        // An array cannot be resynchronised after a syntax error; report where it stopped.
        let _ = tx.send(Item {
            index: usize::MAX,
            line: err.line(),
            bytes: 0,
            event: Err(format!(
                "invalid JSON array at column {}: {}; the rest of the input was not read",
                err.column(),
                strip_position(&err)
            )),
        });
    }
}

struct ArraySink<'a> {
    tx: &'a SyncSender<Item>,
    sent: usize,
}

impl<'de> Visitor<'de> for ArraySink<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of Segment events")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(value) = seq.next_element_seed(ElementSeed)? {
            let event = match value {
                value @ Value::Object(_) => Ok(value),
                other => Err(format!(
                    "expected a JSON object (a Segment event) but found {}",
                    json_kind(&other)
                )),
            };
            let item = Item {
                index: self.sent,
                line: 0,
                bytes: 0,
                event,
            };
            if self.tx.send(item).is_err() {
                return Ok(());
            }
            self.sent += 1;
        }
        Ok(())
    }
}

struct ElementSeed;

impl<'de> DeserializeSeed<'de> for ElementSeed {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        serde::Deserialize::deserialize(de)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &str) -> Vec<Item> {
        spawn_reader(
            Box::new(std::io::Cursor::new(input.as_bytes().to_vec())),
            64,
        )
        .into_iter()
        .collect()
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
    fn ndjson_reports_invalid_utf8_with_its_line() {
        let mut bytes = b"{\"type\":\"track\"}\n{\"type\":\"tr".to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        bytes.extend_from_slice(b"ck\"}\n{\"type\":\"group\"}");
        let items: Vec<Item> = spawn_reader(Box::new(std::io::Cursor::new(bytes)), 1024)
            .into_iter()
            .collect();
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

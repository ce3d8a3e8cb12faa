//! Reading NDJSON lines with a bound on their length, so one huge line cannot exhaust memory.

use std::io::{self, BufRead};
use std::sync::Mutex;

/// How many bytes of an oversized line are kept for the quarantine (the rest is skipped).
pub(crate) const OVERSIZED_PREFIX_BYTES: usize = 64 * 1024;

/// The content of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineContent {
    /// UTF-8 text without the line terminator.
    Text(String),
    /// Longer than the bound: only a prefix was kept.
    Oversized {
        /// The first bytes of the line.
        prefix: Vec<u8>,
        /// Length of the whole line in bytes (without the terminator).
        length: u64,
    },
    /// Not valid UTF-8.
    NotUtf8(Vec<u8>),
}

impl Drop for LineContent {
    /// Gives a text line's buffer back for a later line (see [`take_line_buffer`]).
    fn drop(&mut self) {
        if let LineContent::Text(text) = self {
            give_back_line_buffer(std::mem::take(text).into_bytes());
        }
    }
}

/// Line buffers no longer used, kept for the next lines. Why: every line is read into its own
/// buffer, which lives until its chunk is decided on another thread; fresh buffers for every
/// chunk cost page faults and allocator work (about a twentieth of intake's CPU), reused ones
/// do not. Bounded, so memory stays bounded: at most [`SPARE_BUFFER_BYTES`] are kept, each
/// buffer of at most [`SPARE_BUFFER_MAX`] bytes.
static SPARE_LINE_BUFFERS: Mutex<SpareBuffers> = Mutex::new(SpareBuffers {
    buffers: Vec::new(),
    bytes: 0,
});

/// Total capacity of the spare line buffers kept.
const SPARE_BUFFER_BYTES: usize = 32 * 1024 * 1024;
/// Larger buffers (of rare long lines) are freed, not kept.
const SPARE_BUFFER_MAX: usize = 1024 * 1024;

struct SpareBuffers {
    buffers: Vec<Vec<u8>>,
    /// Sum of the buffers' capacities.
    bytes: usize,
}

/// An empty buffer for a line: a spare one when there is one.
fn take_line_buffer() -> Vec<u8> {
    let mut spare = match SPARE_LINE_BUFFERS.lock() {
        Ok(spare) => spare,
        Err(poisoned) => poisoned.into_inner(),
    };
    match spare.buffers.pop() {
        Some(buffer) => {
            spare.bytes -= buffer.capacity();
            buffer
        }
        None => Vec::new(),
    }
}

fn give_back_line_buffer(mut buffer: Vec<u8>) {
    let capacity = buffer.capacity();
    if capacity == 0 || capacity > SPARE_BUFFER_MAX {
        return;
    }
    buffer.clear();
    let mut spare = match SPARE_LINE_BUFFERS.lock() {
        Ok(spare) => spare,
        Err(poisoned) => poisoned.into_inner(),
    };
    if spare.bytes + capacity <= SPARE_BUFFER_BYTES {
        spare.bytes += capacity;
        spare.buffers.push(buffer);
    }
}

/// One line of a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceLine {
    /// 1-based line number.
    pub number: u64,
    /// Bytes consumed, terminator included.
    pub bytes: u64,
    /// The content.
    pub content: LineContent,
}

/// Splits a reader into lines of at most `max_line_bytes` bytes each (longer ones are returned
/// as [`LineContent::Oversized`] after being skipped without being held whole).
pub(crate) struct BoundedLines<R> {
    reader: R,
    max_line_bytes: usize,
    next_number: u64,
}

impl<R: BufRead> BoundedLines<R> {
    pub(crate) fn new(reader: R, max_line_bytes: usize) -> Self {
        Self {
            reader,
            max_line_bytes: max_line_bytes.max(1),
            next_number: 1,
        }
    }

    /// The next line, or `None` at the end of the input.
    pub(crate) fn next_line(&mut self) -> io::Result<Option<SourceLine>> {
        let mut kept: Vec<u8> = take_line_buffer();
        let mut length: u64 = 0;
        let mut consumed: u64 = 0;
        let mut oversized = false;
        let mut saw_anything = false;
        loop {
            let buffer = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buffer.is_empty() {
                break;
            }
            saw_anything = true;
            // memchr scans a word or a vector at a time; a byte loop here was 4 % of intake.
            let (piece, found_newline) = match memchr::memchr(b'\n', buffer) {
                Some(pos) => (&buffer[..pos], true),
                None => (buffer, false),
            };
            length += piece.len() as u64;
            if !oversized && kept.len() + piece.len() > self.max_line_bytes {
                oversized = true;
                let room = OVERSIZED_PREFIX_BYTES.min(self.max_line_bytes);
                kept.truncate(room);
            }
            if oversized {
                let room = OVERSIZED_PREFIX_BYTES
                    .min(self.max_line_bytes)
                    .saturating_sub(kept.len());
                kept.extend_from_slice(&piece[..piece.len().min(room)]);
            } else {
                kept.extend_from_slice(piece);
            }
            let used = piece.len() + usize::from(found_newline);
            consumed += used as u64;
            self.reader.consume(used);
            if found_newline {
                break;
            }
        }
        if !saw_anything {
            return Ok(None);
        }
        let number = self.next_number;
        self.next_number += 1;
        let content = if oversized {
            LineContent::Oversized {
                prefix: kept,
                length,
            }
        } else {
            if kept.last() == Some(&b'\r') {
                kept.pop();
            }
            if number == 1 && kept.starts_with(&[0xEF, 0xBB, 0xBF]) {
                kept.drain(..3);
            }
            match String::from_utf8(kept) {
                Ok(text) => LineContent::Text(text),
                Err(e) => LineContent::NotUtf8(e.into_bytes()),
            }
        };
        Ok(Some(SourceLine {
            number,
            bytes: consumed,
            content,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn all(input: &[u8], max: usize, capacity: usize) -> Vec<SourceLine> {
        let mut lines = BoundedLines::new(BufReader::with_capacity(capacity, input), max);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().unwrap() {
            out.push(line);
        }
        out
    }

    #[test]
    fn splits_lines_and_counts_bytes() {
        let lines = all(b"\xEF\xBB\xBFab\r\n\ncd", 100, 3);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].content, LineContent::Text("ab".into()));
        assert_eq!(lines[0].bytes, 7);
        assert_eq!(lines[1].content, LineContent::Text(String::new()));
        assert_eq!(lines[2].content, LineContent::Text("cd".into()));
        assert_eq!(lines[2].number, 3);
        assert_eq!(lines.iter().map(|l| l.bytes).sum::<u64>(), 10);
    }

    #[test]
    fn oversized_lines_are_skipped_not_held() {
        let mut input = vec![b'x'; 50];
        input.extend_from_slice(b"\nok\n");
        let lines = all(&input, 10, 4);
        assert_eq!(lines.len(), 2);
        match &lines[0].content {
            LineContent::Oversized { prefix, length } => {
                assert_eq!(*length, 50);
                assert!(prefix.len() <= 10);
            }
            other => panic!("expected oversized, got {other:?}"),
        }
        assert_eq!(lines[1].content, LineContent::Text("ok".into()));
        assert_eq!(lines[1].number, 2);
    }

    #[test]
    fn reused_buffers_hold_only_their_own_line() {
        let first = all(b"a long first line\n", 100, 8);
        drop(first);
        let lines = all(b"xy\n\xEF\xBB\xBFz\n", 100, 8);
        assert_eq!(lines[0].content, LineContent::Text("xy".into()));
        assert_eq!(lines[1].content, LineContent::Text("\u{feff}z".into()));
        give_back_line_buffer(vec![0u8; SPARE_BUFFER_MAX + 1]);
        let spare = SPARE_LINE_BUFFERS.lock().unwrap();
        assert!(spare.bytes <= SPARE_BUFFER_BYTES);
        assert!(
            spare
                .buffers
                .iter()
                .all(|b| b.is_empty() && b.capacity() <= SPARE_BUFFER_MAX)
        );
    }

    #[test]
    fn invalid_utf8_is_reported() {
        let lines = all(b"\xff\xfe\n", 100, 8);
        assert!(matches!(lines[0].content, LineContent::NotUtf8(_)));
    }
}

//! Line framing: bytes in, whole lines out, however the stream was split.
//!
//! Lines end in `\n` and need not be UTF-8. A line longer than the limit is an error as soon as
//! it is known to be too long (no need to wait for its end), and none of it is ever returned.
//! A strict reader ([`LineReader::new`]) stops there: its caller drops the sender. A skipping
//! reader ([`LineReader::skipping`]) drops the whole line, up to its `\n`, and reads on.

/// A line exceeded the limit; everything buffered of it was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong {
    /// The limit, in bytes (excluding the `\n`).
    pub max_line_bytes: usize,
}

/// Reassembles lines from arbitrary chunks.
#[derive(Debug, Clone)]
pub struct LineReader {
    partial: Vec<u8>,
    max_line_bytes: usize,
    /// Whether an over-long line is skipped (true) or ends the reading (false).
    skip_overlong: bool,
    /// Inside an over-long line being skipped: bytes are dropped up to the next `\n`.
    skipping: bool,
}

impl LineReader {
    /// A reader that refuses lines longer than `max_line_bytes` (excluding the `\n`).
    pub fn new(max_line_bytes: usize) -> LineReader {
        LineReader {
            partial: Vec::new(),
            max_line_bytes,
            skip_overlong: false,
            skipping: false,
        }
    }

    /// A reader that drops a line longer than `max_line_bytes` whole, to its `\n`, and goes on
    /// with the next line: for a user's typing, where one long paste must neither end the
    /// session nor let the paste's tail through as a line of its own.
    pub fn skipping(max_line_bytes: usize) -> LineReader {
        LineReader {
            skip_overlong: true,
            ..LineReader::new(max_line_bytes)
        }
    }

    /// Bytes of an unfinished line held back.
    pub fn pending_bytes(&self) -> usize {
        self.partial.len()
    }

    /// Feeds a chunk; calls `on_line` with each complete line (without its `\n`), in order.
    /// Lines wholly inside `data` are passed without copying. On a too-long line, drops the
    /// line's bytes and returns the error: a strict reader stops there (the caller disconnects
    /// the sender); a skipping reader first reads the rest of `data`.
    pub fn push(
        &mut self,
        mut data: &[u8],
        mut on_line: impl FnMut(&[u8]),
    ) -> Result<(), LineTooLong> {
        let too_long = LineTooLong {
            max_line_bytes: self.max_line_bytes,
        };
        let mut refused = false;
        if self.skipping {
            let Some(nl) = memchr::memchr(b'\n', data) else {
                return Ok(());
            };
            data = &data[nl + 1..];
            self.skipping = false;
        }
        while let Some(nl) = memchr::memchr(b'\n', data) {
            let (head, rest) = (&data[..nl], &data[nl + 1..]);
            data = rest;
            if self.partial.len() + head.len() > self.max_line_bytes {
                self.partial.clear();
                if !self.skip_overlong {
                    return Err(too_long);
                }
                refused = true;
            } else if self.partial.is_empty() {
                on_line(head);
            } else {
                self.partial.extend_from_slice(head);
                on_line(&self.partial);
                self.partial.clear();
            }
        }
        if self.partial.len() + data.len() > self.max_line_bytes {
            self.partial.clear();
            self.skipping = self.skip_overlong;
            return Err(too_long);
        }
        self.partial.extend_from_slice(data);
        if refused { Err(too_long) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(reader: &mut LineReader, chunks: &[&[u8]]) -> Result<Vec<Vec<u8>>, LineTooLong> {
        let mut out = Vec::new();
        for c in chunks {
            reader.push(c, |l| out.push(l.to_vec()))?;
        }
        Ok(out)
    }

    #[test]
    fn any_split_gives_the_same_lines() {
        let stream = b"hello\nworld\n\nthird line\xff\x00\nunfinished";
        let whole = lines(&mut LineReader::new(64), &[stream]).unwrap();
        assert_eq!(whole, [&b"hello"[..], b"world", b"", b"third line\xff\x00"]);
        for cut in 0..stream.len() {
            let mut r = LineReader::new(64);
            assert_eq!(
                lines(&mut r, &[&stream[..cut], &stream[cut..]]).unwrap(),
                whole,
                "cut at {cut}"
            );
            assert_eq!(r.pending_bytes(), b"unfinished".len());
        }
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(lines(&mut LineReader::new(64), &bytewise).unwrap(), whole);
    }

    /// The limit is inclusive: a line of exactly `max` bytes passes, whole or in pieces;
    /// one byte more does not (found by cargo-mutants: `>` to `>=` survived).
    #[test]
    fn a_line_of_exactly_the_limit_passes_and_one_more_byte_does_not() {
        let max = 8;
        let exact = b"12345678\n";
        for cut in 0..exact.len() {
            let got = lines(&mut LineReader::new(max), &[&exact[..cut], &exact[cut..]]);
            assert_eq!(got, Ok(vec![b"12345678".to_vec()]), "cut at {cut}");
        }
        let over = b"123456789\n";
        for cut in 0..over.len() {
            let got = lines(&mut LineReader::new(max), &[&over[..cut], &over[cut..]]);
            assert!(got.is_err(), "cut at {cut}");
        }
        // Unfinished: exactly the limit waits for its newline; one more is refused at once.
        let mut r = LineReader::new(max);
        assert_eq!(r.push(b"12345678", |_| {}), Ok(()));
        assert_eq!(r.pending_bytes(), max);
        assert!(r.push(b"9", |_| {}).is_err());
    }

    #[test]
    fn an_over_long_line_is_refused_whole_even_before_its_end() {
        let mut r = LineReader::new(4);
        assert_eq!(lines(&mut r, &[b"1234\n"]).unwrap(), [b"1234"]);
        assert_eq!(lines(&mut r, &[b"12"]).unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(
            lines(&mut r, &[b"345"]),
            Err(LineTooLong { max_line_bytes: 4 })
        );
        assert_eq!(r.pending_bytes(), 0, "nothing of it is kept");
        assert_eq!(
            lines(&mut LineReader::new(4), &[b"ok\n12345\n"]),
            Err(LineTooLong { max_line_bytes: 4 })
        );
    }

    /// A skipping reader drops an over-long line whole, however it was split, and reads the
    /// lines around it; nothing of the long line's tail comes out as a line of its own.
    #[test]
    fn a_skipping_reader_drops_the_long_line_whole_and_reads_on() {
        let stream = b"ok\n123456789\nnext\n";
        for cut in 0..stream.len() {
            let mut r = LineReader::skipping(4);
            let mut out = Vec::new();
            let mut refused = 0;
            for chunk in [&stream[..cut], &stream[cut..]] {
                if r.push(chunk, |l| out.push(l.to_vec())).is_err() {
                    refused += 1;
                }
            }
            assert_eq!(out, [&b"ok"[..], b"next"], "cut at {cut}");
            assert_eq!(refused, 1, "the long line is reported once (cut at {cut})");
            assert_eq!(r.pending_bytes(), 0);
        }
        let mut strict = LineReader::new(4);
        let mut out = Vec::new();
        assert!(strict.push(stream, |l| out.push(l.to_vec())).is_err());
        assert_eq!(out, [b"ok"], "a strict reader stops at the long line");
    }
}

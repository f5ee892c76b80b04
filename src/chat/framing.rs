//! Line framing: bytes in, whole lines out, however the stream was split.
//!
//! Lines end in `\n` and need not be UTF-8. A line longer than the limit is an error as soon as
//! it is known to be too long (no need to wait for its end), and none of it is ever returned.

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
}

impl LineReader {
    /// A reader that refuses lines longer than `max_line_bytes` (excluding the `\n`).
    pub fn new(max_line_bytes: usize) -> LineReader {
        LineReader {
            partial: Vec::new(),
            max_line_bytes,
        }
    }

    /// Bytes of an unfinished line held back.
    pub fn pending_bytes(&self) -> usize {
        self.partial.len()
    }

    /// Feeds a chunk; calls `on_line` with each complete line (without its `\n`), in order.
    /// Lines wholly inside `data` are passed without copying. On a too-long line, stops, drops
    /// the line's bytes, and returns the error (the caller disconnects the sender).
    pub fn push(
        &mut self,
        mut data: &[u8],
        mut on_line: impl FnMut(&[u8]),
    ) -> Result<(), LineTooLong> {
        let too_long = LineTooLong {
            max_line_bytes: self.max_line_bytes,
        };
        while let Some(nl) = data.iter().position(|&b| b == b'\n') {
            let (head, rest) = (&data[..nl], &data[nl + 1..]);
            if self.partial.is_empty() {
                if head.len() > self.max_line_bytes {
                    return Err(too_long);
                }
                on_line(head);
            } else {
                if self.partial.len() + head.len() > self.max_line_bytes {
                    self.partial.clear();
                    return Err(too_long);
                }
                self.partial.extend_from_slice(head);
                on_line(&self.partial);
                self.partial.clear();
            }
            data = rest;
        }
        if self.partial.len() + data.len() > self.max_line_bytes {
            self.partial.clear();
            return Err(too_long);
        }
        self.partial.extend_from_slice(data);
        Ok(())
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
}

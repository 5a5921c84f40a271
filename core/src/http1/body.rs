//! Reading one message body by its framing: the one loop over
//! `Content-Length`, chunked and until-close bodies, shared by the request
//! the exchange reads, the answer it forwards and what the legacy bridge
//! reads from its backend.

use std::ops::Range;

use super::{BodyFraming, ChunkedDecoder, ChunkedError, Limits};

/// Where a body being read stands.
#[derive(Debug)]
enum State {
    /// This many bytes still to come.
    Length(u64),
    Chunked(Box<ChunkedDecoder>),
    /// Everything until the connection closes.
    UntilClose,
    /// The body is over (or there was none).
    Done,
}

/// What one [`BodyReader::read`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRead {
    /// Input bytes taken (framing included). Less than the input only when
    /// the body ended before it: the rest is the next message's, or stray.
    pub consumed: usize,
    /// The body ended.
    pub done: bool,
}

/// Reads one body of a known [`BodyFraming`], handing out ranges of its
/// input that are body data (no copy, chunk framing removed).
#[derive(Debug)]
pub struct BodyReader {
    state: State,
}

impl BodyReader {
    /// A reader for a body framed as `framing`; `limits` bound chunk lines.
    pub fn new(framing: BodyFraming, limits: &Limits) -> Self {
        let state = match framing {
            BodyFraming::None | BodyFraming::ContentLength(0) => State::Done,
            BodyFraming::ContentLength(n) => State::Length(n),
            BodyFraming::Chunked => State::Chunked(Box::new(ChunkedDecoder::new(limits))),
            BodyFraming::UntilClose => State::UntilClose,
        };
        BodyReader { state }
    }

    /// The body is over (or there was none).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The body ends only when the connection does.
    pub fn ends_at_eof(&self) -> bool {
        matches!(self.state, State::UntilClose)
    }

    /// Reads from `input`, handing each range of body data to `data` in
    /// order, and stops where the body ends. On a chunked framing error the
    /// data decoded before the fault has been handed out already.
    pub fn read(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(Range<usize>),
    ) -> Result<BodyRead, ChunkedError> {
        let read = match &mut self.state {
            State::Done => BodyRead {
                consumed: 0,
                done: true,
            },
            State::UntilClose => {
                if !input.is_empty() {
                    data(0..input.len());
                }
                BodyRead {
                    consumed: input.len(),
                    done: false,
                }
            }
            State::Length(remaining) => {
                let take = (*remaining).min(input.len() as u64) as usize;
                if take > 0 {
                    data(0..take);
                }
                *remaining -= take as u64;
                BodyRead {
                    consumed: take,
                    done: *remaining == 0,
                }
            }
            State::Chunked(decoder) => {
                let mut pos = 0;
                let mut done = false;
                while pos < input.len() && !done {
                    let step = decoder.decode(&input[pos..])?;
                    if let Some(r) = step.data
                        && !r.is_empty()
                    {
                        data(pos + r.start..pos + r.end);
                    }
                    done = step.done;
                    pos += step.consumed;
                    if step.consumed == 0 {
                        break;
                    }
                }
                BodyRead {
                    consumed: pos,
                    done,
                }
            }
        };
        if read.done {
            self.state = State::Done;
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(framing: BodyFraming, pieces: &[&[u8]]) -> (Vec<u8>, bool, usize) {
        let mut reader = BodyReader::new(framing, &Limits::default());
        let (mut body, mut done, mut left) = (Vec::new(), false, 0);
        for piece in pieces {
            let read = reader
                .read(piece, |r| body.extend_from_slice(&piece[r]))
                .unwrap();
            done = read.done;
            left += piece.len() - read.consumed;
        }
        (body, done, left)
    }

    #[test]
    fn each_framing_ends_where_it_says() {
        assert_eq!(
            read_all(BodyFraming::ContentLength(5), &[b"hel", b"lo!!"]),
            (b"hello".to_vec(), true, 2)
        );
        assert_eq!(
            read_all(
                BodyFraming::Chunked,
                &[b"3\r\nhel\r\n2\r", b"\nlo\r\n0\r\n\r\nX"]
            ),
            (b"hello".to_vec(), true, 1)
        );
        assert_eq!(
            read_all(BodyFraming::UntilClose, &[b"he", b"llo"]),
            (b"hello".to_vec(), false, 0)
        );
        assert_eq!(read_all(BodyFraming::None, &[b"x"]), (Vec::new(), true, 1));
        assert!(BodyReader::new(BodyFraming::ContentLength(0), &Limits::default()).is_done());
        assert!(BodyReader::new(BodyFraming::UntilClose, &Limits::default()).ends_at_eof());
    }

    #[test]
    fn data_before_a_chunk_error_is_handed_out() {
        let mut reader = BodyReader::new(BodyFraming::Chunked, &Limits::default());
        let input = b"2\r\nok\r\nzz\r\n";
        let mut body = Vec::new();
        assert!(
            reader
                .read(input, |r| body.extend_from_slice(&input[r]))
                .is_err()
        );
        assert_eq!(body, b"ok");
    }
}

//! The event stream as the client reads it: lines of the body, each an [`EventLine`].

use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::ClientError;
use crate::events::EventLine;

/// `GET /events`, open. [`EventStream::next`] gives the lines as they come.
pub struct EventStream {
    body: Incoming,
    buf: BytesMut,
    after: Option<u64>,
}

impl EventStream {
    pub(super) fn new(body: Incoming, after: Option<u64>) -> EventStream {
        EventStream { body, buf: BytesMut::new(), after }
    }

    /// The seq this stream began after (`?since=`, or the last event written when it was
    /// opened): where to resume when it ends before an event was read.
    pub fn after(&self) -> Option<u64> {
        self.after
    }

    /// The next line; `None` when the daemon ended the stream (it stopped, or this subscriber
    /// was too slow: the line before was then a gap).
    pub async fn next(&mut self) -> Option<Result<EventLine, ClientError>> {
        loop {
            if let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
                let line = self.buf.split_to(nl + 1);
                if line.len() > 1 {
                    return Some(serde_json::from_slice(&line[..nl]).map_err(ClientError::from));
                }
                continue;
            }
            match self.body.frame().await? {
                Ok(f) => {
                    if let Ok(mut d) = f.into_data() {
                        while d.has_remaining() {
                            let chunk = d.chunk();
                            self.buf.extend_from_slice(chunk);
                            let n = chunk.len();
                            d.advance(n);
                        }
                    }
                }
                Err(e) => return Some(Err(e.into())),
            }
        }
    }
}

//! The exec stream protocol, spoken over the upgraded HTTP connection of
//! `POST /containers/{id}/exec` and `POST …/execs/{exec_id}/attach` (and between the daemon,
//! the exec's shim and, for terminals, its helper).
//!
//! Every frame is `[kind: u8][length: u32, big endian][payload]`.
//! Client → daemon: 0 stdin data, 1 stdin closed, 2 window size (rows u16, cols u16), 5 a signal
//! (one byte, its number, from [`SIGNALS`]) for the exec's process group.
//! Daemon → client: 1 stdout data, 2 stderr data, 3 exit status (i32), 4 error message.

pub const MAX_FRAME: usize = 1 << 20;

/// The signals a client may send to an exec: HUP INT QUIT TERM KILL USR1 USR2 WINCH CONT STOP.
pub const SIGNALS: [i32; 10] = [
    1,  // SIGHUP
    2,  // SIGINT
    3,  // SIGQUIT
    15, // SIGTERM
    9,  // SIGKILL
    10, // SIGUSR1
    12, // SIGUSR2
    28, // SIGWINCH
    18, // SIGCONT
    19, // SIGSTOP
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InFrame {
    Stdin(Vec<u8>),
    StdinEof,
    Resize { rows: u16, cols: u16 },
    Signal(u8),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutFrame {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(i32),
    Error(String),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad exec frame: {0}")]
pub struct FrameError(pub String);

fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + payload.len());
    v.push(kind);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

impl InFrame {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            InFrame::Stdin(d) => encode(0, d),
            InFrame::StdinEof => encode(1, &[]),
            InFrame::Resize { rows, cols } => {
                let mut p = rows.to_be_bytes().to_vec();
                p.extend_from_slice(&cols.to_be_bytes());
                encode(2, &p)
            }
            InFrame::Signal(n) => encode(5, &[*n]),
        }
    }

    fn parse(kind: u8, p: Vec<u8>) -> Result<Self, FrameError> {
        match kind {
            0 => Ok(InFrame::Stdin(p)),
            1 => Ok(InFrame::StdinEof),
            2 if p.len() == 4 => Ok(InFrame::Resize { rows: u16::from_be_bytes([p[0], p[1]]), cols: u16::from_be_bytes([p[2], p[3]]) }),
            5 if p.len() == 1 && SIGNALS.contains(&i32::from(p[0])) => Ok(InFrame::Signal(p[0])),
            5 => Err(FrameError(format!("signal {:?} is not one an exec may be sent", p.first()))),
            k => Err(FrameError(format!("unexpected input frame kind {k} of {} bytes", p.len()))),
        }
    }
}

impl OutFrame {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            OutFrame::Stdout(d) => encode(1, d),
            OutFrame::Stderr(d) => encode(2, d),
            OutFrame::Exit(c) => encode(3, &c.to_be_bytes()),
            OutFrame::Error(m) => encode(4, m.as_bytes()),
        }
    }

    fn parse(kind: u8, p: Vec<u8>) -> Result<Self, FrameError> {
        match kind {
            1 => Ok(OutFrame::Stdout(p)),
            2 => Ok(OutFrame::Stderr(p)),
            3 if p.len() == 4 => Ok(OutFrame::Exit(i32::from_be_bytes([p[0], p[1], p[2], p[3]]))),
            4 => Ok(OutFrame::Error(String::from_utf8_lossy(&p).into_owned())),
            k => Err(FrameError(format!("unexpected output frame kind {k} of {} bytes", p.len()))),
        }
    }
}

/// Incremental decoder: push bytes as they arrive, take whole frames out.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    fn raw(&mut self) -> Result<Option<(u8, Vec<u8>)>, FrameError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_FRAME {
            return Err(FrameError(format!("frame of {len} bytes exceeds {MAX_FRAME}")));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let kind = self.buf[0];
        let payload = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Ok(Some((kind, payload)))
    }
}

/// Decoder of client → daemon frames.
#[derive(Default)]
pub struct FrameReader(Decoder);

impl FrameReader {
    pub fn push(&mut self, data: &[u8]) {
        self.0.push(data)
    }
    pub fn next_frame(&mut self) -> Result<Option<InFrame>, FrameError> {
        self.0.raw()?.map(|(k, p)| InFrame::parse(k, p)).transpose()
    }
}

/// Decoder of daemon → client frames.
#[derive(Default)]
pub struct OutFrameReader(Decoder);

impl OutFrameReader {
    pub fn push(&mut self, data: &[u8]) {
        self.0.push(data)
    }
    pub fn next_frame(&mut self) -> Result<Option<OutFrame>, FrameError> {
        self.0.raw()?.map(|(k, p)| OutFrame::parse(k, p)).transpose()
    }
}

/// The frames as a `tokio_util` codec (feature `codec`): `In` decodes what a client sends and
/// encodes what a daemon sends, or the other way round, as the side it is used on needs.
#[cfg(feature = "codec")]
pub mod codec {
    use bytes::{Buf, BufMut, BytesMut};

    use super::{FrameError, InFrame, MAX_FRAME, OutFrame};

    /// Client side: encodes [`InFrame`]s, decodes [`OutFrame`]s.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct ClientCodec;

    /// Daemon side: encodes [`OutFrame`]s, decodes [`InFrame`]s.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct ServerCodec;

    /// What reading or writing frames can fail with.
    #[derive(Debug, thiserror::Error)]
    pub enum CodecError {
        #[error("the exec stream's connection")]
        Io(#[from] std::io::Error),
        #[error(transparent)]
        Frame(#[from] FrameError),
    }

    fn raw(src: &mut BytesMut) -> Result<Option<(u8, Vec<u8>)>, FrameError> {
        if src.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[1], src[2], src[3], src[4]]) as usize;
        if len > MAX_FRAME {
            return Err(FrameError(format!("frame of {len} bytes exceeds {MAX_FRAME}")));
        }
        if src.len() < 5 + len {
            src.reserve(5 + len - src.len());
            return Ok(None);
        }
        let kind = src[0];
        src.advance(5);
        Ok(Some((kind, src.split_to(len).to_vec())))
    }

    impl tokio_util::codec::Decoder for ClientCodec {
        type Item = OutFrame;
        type Error = CodecError;
        fn decode(&mut self, src: &mut BytesMut) -> Result<Option<OutFrame>, CodecError> {
            Ok(raw(src)?.map(|(k, p)| OutFrame::parse(k, p)).transpose()?)
        }
    }

    impl tokio_util::codec::Encoder<InFrame> for ClientCodec {
        type Error = CodecError;
        fn encode(&mut self, f: InFrame, dst: &mut BytesMut) -> Result<(), CodecError> {
            dst.put_slice(&f.encode());
            Ok(())
        }
    }

    impl tokio_util::codec::Decoder for ServerCodec {
        type Item = InFrame;
        type Error = CodecError;
        fn decode(&mut self, src: &mut BytesMut) -> Result<Option<InFrame>, CodecError> {
            Ok(raw(src)?.map(|(k, p)| InFrame::parse(k, p)).transpose()?)
        }
    }

    impl tokio_util::codec::Encoder<OutFrame> for ServerCodec {
        type Error = CodecError;
        fn encode(&mut self, f: OutFrame, dst: &mut BytesMut) -> Result<(), CodecError> {
            dst.put_slice(&f.encode());
            Ok(())
        }
    }

    #[cfg(test)]
    mod tests {
        use tokio_util::codec::{Decoder, Encoder};

        use super::*;

        #[test]
        fn both_sides_round_trip_in_pieces() {
            let mut wire = BytesMut::new();
            let sent = [InFrame::Stdin(b"hi".to_vec()), InFrame::Signal(2), InFrame::StdinEof];
            for f in sent.clone() {
                ClientCodec.encode(f, &mut wire).unwrap();
            }
            let (mut got, mut src) = (vec![], BytesMut::new());
            for b in wire.chunks(2) {
                src.extend_from_slice(b);
                while let Some(f) = ServerCodec.decode(&mut src).unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, sent);
            let mut wire = BytesMut::new();
            ServerCodec.encode(OutFrame::Exit(7), &mut wire).unwrap();
            assert_eq!(ClientCodec.decode(&mut wire).unwrap(), Some(OutFrame::Exit(7)));
            let mut bad = BytesMut::from(&[0u8, 0xff, 0xff, 0xff, 0xff][..]);
            assert!(ServerCodec.decode(&mut bad).is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_pieces() {
        let frames = [InFrame::Stdin(b"hello".to_vec()), InFrame::Resize { rows: 40, cols: 120 }, InFrame::StdinEof];
        let bytes: Vec<u8> = frames.iter().flat_map(|f| f.encode()).collect();
        let mut r = FrameReader::default();
        let mut got = vec![];
        for b in bytes.chunks(3) {
            r.push(b);
            while let Some(f) = r.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn out_frames_round_trip() {
        let frames = [OutFrame::Stdout(b"x".to_vec()), OutFrame::Stderr(vec![]), OutFrame::Exit(-3), OutFrame::Error("boom".into())];
        let mut r = OutFrameReader::default();
        for f in &frames {
            r.push(&f.encode());
        }
        for f in frames {
            assert_eq!(r.next_frame().unwrap(), Some(f));
        }
    }

    #[test]
    fn the_signal_numbers_are_the_kernels() {
        assert_eq!(
            SIGNALS,
            [
                libc::SIGHUP,
                libc::SIGINT,
                libc::SIGQUIT,
                libc::SIGTERM,
                libc::SIGKILL,
                libc::SIGUSR1,
                libc::SIGUSR2,
                libc::SIGWINCH,
                libc::SIGCONT,
                libc::SIGSTOP
            ]
        );
    }

    #[test]
    fn oversize_and_unknown_frames_are_errors() {
        let mut r = FrameReader::default();
        r.push(&[0, 0xff, 0xff, 0xff, 0xff]);
        assert!(r.next_frame().is_err());
        let mut r = FrameReader::default();
        r.push(&[9, 0, 0, 0, 0]);
        assert!(r.next_frame().is_err());
    }
}

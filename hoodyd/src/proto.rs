//! The exec stream protocol, spoken over the upgraded HTTP connection of
//! `POST /containers/{id}/exec` (and, for terminals, between the daemon and its exec helper).
//!
//! Every frame is `[kind: u8][length: u32, big endian][payload]`.
//! Client → daemon: 0 stdin data, 1 stdin closed, 2 window size (rows u16, cols u16), 5 a signal
//! (one byte, its number, from [`SIGNALS`]) for the exec's process group.
//! Daemon → client: 1 stdout data, 2 stderr data, 3 exit status (i32), 4 error message.

use std::fmt;

pub const MAX_FRAME: usize = 1 << 20;

/// The signals a client may send to an exec: HUP INT QUIT TERM KILL USR1 USR2 WINCH CONT STOP.
pub const SIGNALS: [i32; 10] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGKILL,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
    libc::SIGSTOP,
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

#[derive(Debug, PartialEq, Eq)]
pub struct FrameError(pub String);

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad exec frame: {}", self.0)
    }
}

impl std::error::Error for FrameError {}

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
    fn oversize_and_unknown_frames_are_errors() {
        let mut r = FrameReader::default();
        r.push(&[0, 0xff, 0xff, 0xff, 0xff]);
        assert!(r.next_frame().is_err());
        let mut r = FrameReader::default();
        r.push(&[9, 0, 0, 0, 0]);
        assert!(r.next_frame().is_err());
    }
}

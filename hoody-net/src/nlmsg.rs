//! Walking netlink buffers: the messages of a datagram and the attributes of a message.

/// Length of `struct nlmsghdr`.
pub const HDRLEN: usize = 16;

/// Each whole message in `buf`: its type and its body (what follows the header).
pub fn messages(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
        if len < HDRLEN || len > buf.len() {
            return None;
        }
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        let body = &buf[HDRLEN..len];
        buf = &buf[(len.div_ceil(4) * 4).min(buf.len())..];
        Some((ty, body))
    })
}

/// The attributes (type without flag bits, value) of a netlink attribute stream.
pub fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let v = &b[4..len];
        b = &b[(len.div_ceil(4) * 4).min(b.len())..];
        Some((ty, v))
    })
}

/// The value of the first attribute of type `want`.
pub fn attr(b: &[u8], want: u16) -> Option<&[u8]> {
    attrs(b).find(|(t, _)| *t == want).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_messages_and_attributes_and_stops_at_garbage() {
        let mut m = vec![0u8; 16];
        m.extend_from_slice(&[6, 0, 1, 0, b'a', b'b', 0, 0, 5, 0, 2, 0x80, b'c', 0, 0, 0]);
        let len = m.len() as u32;
        m[..4].copy_from_slice(&len.to_ne_bytes());
        m[4..6].copy_from_slice(&7u16.to_ne_bytes());
        let mut buf = m.clone();
        buf.extend_from_slice(&[0xff; 10]);
        let msgs: Vec<_> = messages(&buf).collect();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].0, 7);
        assert_eq!(attrs(msgs[0].1).collect::<Vec<_>>(), vec![(1, &b"ab"[..]), (2, &b"c"[..])], "flag bits are masked");
        assert_eq!(attr(msgs[0].1, 2), Some(&b"c"[..]));
        assert_eq!(attr(msgs[0].1, 3), None);
    }
}

//! Reading rules straight from the netlink attributes of a dump (`NFT_MSG_NEWRULE` messages):
//! chain, handle, comment and counter — without building nftnl's full rule objects, which
//! made verifying a 20,000-rule table take longer than loading it.

use super::KernelElem;
use crate::compile::Elem;
use crate::nlmsg::attrs;

const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_COUNTER_BYTES: u16 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;

/// A rule read back from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedRule {
    pub chain: String,
    pub handle: u64,
    pub comment: String,
    pub packets: u64,
    pub bytes: u64,
}

fn be64(v: &[u8]) -> u64 {
    v.get(..8).map(|s| u64::from_be_bytes(s.try_into().expect("8 bytes"))).unwrap_or(0)
}

fn string(v: &[u8]) -> String {
    String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or(v)).into_owned()
}

/// The comment in rule user data: TLVs of (type u8, len u8, value); type 0 is the comment.
pub fn comment(mut ud: &[u8]) -> String {
    while ud.len() >= 2 {
        let (t, l) = (ud[0], ud[1] as usize);
        if ud.len() < 2 + l {
            break;
        }
        if t == 0 {
            return string(&ud[2..2 + l]);
        }
        ud = &ud[2 + l..];
    }
    String::new()
}

/// Parses the payload of one `NFT_MSG_NEWRULE` message (after the 16-byte netlink header).
pub fn rule(payload: &[u8]) -> Option<ParsedRule> {
    let body = payload.get(4..)?; // nfgenmsg
    let mut r = ParsedRule { chain: String::new(), handle: 0, comment: String::new(), packets: 0, bytes: 0 };
    for (ty, v) in attrs(body) {
        match ty {
            NFTA_RULE_CHAIN => r.chain = string(v),
            NFTA_RULE_HANDLE => r.handle = be64(v),
            NFTA_RULE_USERDATA => r.comment = comment(v),
            NFTA_RULE_EXPRESSIONS => {
                let mut c = (0, 0);
                for (_, elem) in attrs(v).filter(|(t, _)| *t == NFTA_LIST_ELEM) {
                    counter_of(elem, &mut c);
                }
                (r.packets, r.bytes) = c;
            }
            _ => {}
        }
    }
    (!r.chain.is_empty()).then_some(r)
}

const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
const NFTA_SET_ELEM_EXPIRATION: u16 = 5;
const NFTA_SET_ELEM_USERDATA: u16 = 6;
const NFTA_SET_ELEM_EXPR: u16 = 7;
const NFTA_SET_ELEM_KEY_END: u16 = 10;
const NFTA_SET_ELEM_EXPRESSIONS: u16 = 11;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CHAIN: u16 = 2;

fn data_value(v: &[u8]) -> Vec<u8> {
    attrs(v).find(|(t, _)| *t == NFTA_DATA_VALUE).map(|(_, d)| d.to_vec()).unwrap_or_default()
}

/// Adds the counter of one expression (name + data) to `(packets, bytes)`.
fn counter_of(expr: &[u8], out: &mut (u64, u64)) {
    let mut is_counter = false;
    for (t, x) in attrs(expr) {
        match t {
            NFTA_EXPR_NAME => is_counter = string(x) == "counter",
            NFTA_EXPR_DATA if is_counter => {
                for (ct, cv) in attrs(x) {
                    match ct {
                        NFTA_COUNTER_BYTES => out.1 += be64(cv),
                        NFTA_COUNTER_PACKETS => out.0 += be64(cv),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
}

/// Parses the payload of one `NFT_MSG_NEWSETELEM` message (after the 16-byte netlink header):
/// every element with its key, interval end, comment, goto chain and counter.
pub fn set_elems(payload: &[u8]) -> Vec<KernelElem> {
    let mut out = vec![];
    let Some(body) = payload.get(4..) else { return out };
    for (ty, list) in attrs(body) {
        if ty != NFTA_SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        for (_, el) in attrs(list).filter(|(t, _)| *t == NFTA_LIST_ELEM) {
            let mut e = Elem::key(vec![]);
            let mut counter = (0, 0);
            let mut expires = None;
            let be64 = |v: &[u8]| v.get(..8).map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
            for (t, v) in attrs(el) {
                match t {
                    NFTA_SET_ELEM_KEY => e.key = data_value(v),
                    NFTA_SET_ELEM_KEY_END => e.key_end = Some(data_value(v)),
                    NFTA_SET_ELEM_USERDATA => e.comment = Some(comment(v)).filter(|c| !c.is_empty()),
                    NFTA_SET_ELEM_DATA => {
                        for (dt, dv) in attrs(v).filter(|(t, _)| *t == NFTA_DATA_VERDICT) {
                            let _ = dt;
                            e.goto = attrs(dv).find(|(t, _)| *t == NFTA_VERDICT_CHAIN).map(|(_, c)| string(c));
                        }
                    }
                    NFTA_SET_ELEM_TIMEOUT => e.timeout_ms = be64(v).filter(|ms| *ms > 0),
                    NFTA_SET_ELEM_EXPIRATION => expires = be64(v),
                    NFTA_SET_ELEM_EXPR => counter_of(v, &mut counter),
                    NFTA_SET_ELEM_EXPRESSIONS => {
                        for (_, x) in attrs(v).filter(|(t, _)| *t == NFTA_LIST_ELEM) {
                            counter_of(x, &mut counter);
                        }
                    }
                    _ => {}
                }
            }
            if !e.key.is_empty() {
                out.push(KernelElem { elem: e, packets: counter.0, bytes: counter.1, expires_ms: expires });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ty: u16, v: &[u8]) -> Vec<u8> {
        let mut a = ((4 + v.len()) as u16).to_ne_bytes().to_vec();
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(v);
        a.resize(a.len().div_ceil(4) * 4, 0);
        a
    }

    #[test]
    fn parses_chain_handle_comment_and_counter() {
        let counter = [attr(NFTA_COUNTER_BYTES, &1234u64.to_be_bytes()), attr(NFTA_COUNTER_PACKETS, &7u64.to_be_bytes())].concat();
        let elem_counter = [attr(NFTA_EXPR_NAME, b"counter\0"), attr(NFTA_EXPR_DATA | 0x8000, &counter)].concat();
        let elem_other = [attr(NFTA_EXPR_NAME, b"immediate\0"), attr(NFTA_EXPR_DATA, &attr(1, &[9; 8]))].concat();
        let exprs = [attr(NFTA_LIST_ELEM, &elem_other), attr(NFTA_LIST_ELEM, &elem_counter)].concat();
        let mut payload = vec![1, 0, 0, 0];
        payload.extend(attr(1, b"hoody\0"));
        payload.extend(attr(NFTA_RULE_CHAIN, b"e_abc\0"));
        payload.extend(attr(NFTA_RULE_HANDLE, &42u64.to_be_bytes()));
        payload.extend(attr(NFTA_RULE_EXPRESSIONS | 0x8000, &exprs));
        payload.extend(attr(NFTA_RULE_USERDATA, b"\x00\x06r:abc\x00"));
        assert_eq!(
            rule(&payload),
            Some(ParsedRule { chain: "e_abc".into(), handle: 42, comment: "r:abc".into(), packets: 7, bytes: 1234 })
        );
    }

    #[test]
    fn parses_elements_with_interval_end_comment_verdict_and_counter() {
        let counter = [attr(NFTA_COUNTER_BYTES, &60u64.to_be_bytes()), attr(NFTA_COUNTER_PACKETS, &1u64.to_be_bytes())].concat();
        let expr = [attr(NFTA_EXPR_NAME, b"counter\0"), attr(NFTA_EXPR_DATA | 0x8000, &counter)].concat();
        let verdict = attr(NFTA_DATA_VERDICT | 0x8000, &[attr(1, &(-4i32).to_be_bytes()), attr(NFTA_VERDICT_CHAIN, b"es05\0")].concat());
        let el = [
            attr(NFTA_SET_ELEM_KEY | 0x8000, &attr(NFTA_DATA_VALUE, &[1, 2, 3, 4])),
            attr(NFTA_SET_ELEM_KEY_END | 0x8000, &attr(NFTA_DATA_VALUE, &[1, 2, 3, 9])),
            attr(NFTA_SET_ELEM_USERDATA, b"\x00\x05r:ab\x00"),
            attr(NFTA_SET_ELEM_DATA | 0x8000, &verdict),
            attr(NFTA_SET_ELEM_EXPR | 0x8000, &expr),
        ]
        .concat();
        let mut payload = vec![1, 0, 0, 0];
        payload.extend(attr(NFTA_SET_ELEM_LIST_ELEMENTS | 0x8000, &attr(NFTA_LIST_ELEM | 0x8000, &el)));
        let got = set_elems(&payload);
        assert_eq!(got.len(), 1);
        let e = &got[0];
        assert_eq!((e.packets, e.bytes), (1, 60));
        assert_eq!(e.elem.key, [1, 2, 3, 4]);
        assert_eq!(e.elem.key_end.as_deref(), Some(&[1, 2, 3, 9][..]));
        assert_eq!(e.elem.comment.as_deref(), Some("r:ab"));
        assert_eq!(e.elem.goto.as_deref(), Some("es05"));
    }

    #[test]
    fn garbage_is_not_a_rule() {
        assert_eq!(rule(&[]), None);
        assert_eq!(rule(&[1, 0, 0, 0, 0xff, 0xff]), None);
        assert_eq!(comment(b"\x00\x09"), "");
        assert_eq!(comment(b"\x05\x01x\x00\x03ok\x00"), "ok");
    }
}

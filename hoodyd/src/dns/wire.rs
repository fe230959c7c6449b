//! DNS messages (hickory's wire format): what a container asked, the fresh query hoodyd sends
//! upstream in its place, and the answer the container gets back.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

/// The payload size hoodyd offers (the DNS flag day's 1232 bytes).
pub const PAYLOAD: u16 = 1232;

/// A query as a container sent it.
pub struct ClientQuery {
    id: u16,
    recursion_desired: bool,
    /// Its question as sent (case and all), echoed in the answer.
    question: Option<Query>,
    /// EDNS payload size it offered (none: 512 bytes).
    edns: Option<u16>,
    /// Lower case, without the trailing dot.
    pub name: String,
    pub qtype: RecordType,
    /// One question of class IN, opcode QUERY.
    pub standard: bool,
}

impl ClientQuery {
    #[cfg(test)]
    pub fn for_test(name: &str, qtype: RecordType) -> ClientQuery {
        ClientQuery { id: 1, recursion_desired: true, question: None, edns: None, name: name.to_owned(), qtype, standard: true }
    }
}

/// `None`: not a DNS query at all (nothing is answered).
pub fn parse_query(bytes: &[u8]) -> Option<ClientQuery> {
    let m = Message::from_vec(bytes).ok()?;
    if m.metadata.message_type != MessageType::Query {
        return None;
    }
    let q = m.queries.first().cloned();
    let name = q.as_ref().map(|q| q.name().to_lowercase().to_ascii()).unwrap_or_default();
    let name = name.strip_suffix('.').unwrap_or(&name).to_owned();
    Some(ClientQuery {
        id: m.metadata.id,
        recursion_desired: m.metadata.recursion_desired,
        standard: m.metadata.op_code == OpCode::Query
            && m.queries.len() == 1
            && q.as_ref().is_some_and(|q| q.query_class() == DNSClass::IN),
        qtype: q.as_ref().map(|q| q.query_type()).unwrap_or(RecordType::NULL),
        question: q,
        edns: m.edns.as_ref().map(|e| e.max_payload().max(512)),
        name,
    })
}

fn response(q: &ClientQuery, code: ResponseCode) -> Message {
    let mut m = Message::response(q.id, OpCode::Query);
    m.metadata.recursion_desired = q.recursion_desired;
    m.metadata.recursion_available = true;
    m.metadata.response_code = code;
    if let Some(question) = &q.question {
        m.add_query(question.clone());
    }
    if q.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(PAYLOAD);
        m.set_edns(e);
    }
    m
}

fn encode(m: &Message) -> Vec<u8> {
    m.to_vec().unwrap_or_default()
}

pub fn refused(q: &ClientQuery) -> Vec<u8> {
    encode(&response(q, ResponseCode::Refused))
}

pub fn servfail(q: &ClientQuery) -> Vec<u8> {
    encode(&response(q, ResponseCode::ServFail))
}

/// The query hoodyd sends in the container's place: its own id, the lower-cased name, the type,
/// recursion desired, its own EDNS (payload size, no options) — nothing of the client's bytes.
pub fn upstream_query(name: &str, qtype: RecordType, id: u16) -> Option<Vec<u8>> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    let mut n = Name::from_ascii(name).ok()?;
    n.set_fqdn(true);
    m.add_query(Query::query(n, qtype));
    let mut e = Edns::new();
    e.set_max_payload(PAYLOAD);
    m.set_edns(e);
    m.to_vec().ok()
}

/// Whether `m` answers the query `upstream_query(name, qtype, id)` built.
pub fn answers_query(m: &Message, name: &str, qtype: RecordType, id: u16) -> bool {
    let asked = |q: &Query| q.query_type() == qtype && q.name().to_lowercase().to_ascii().trim_end_matches('.') == name;
    m.metadata.id == id && m.metadata.message_type == MessageType::Response && m.queries.len() == 1 && asked(&m.queries[0])
}

/// The IPv4 addresses the answer gives for `name`, following its CNAME chain, with their TTLs.
pub fn addresses(m: &Message, name: &str) -> Vec<(Ipv4Addr, u32)> {
    let norm = |n: &Name| n.to_lowercase().to_ascii().trim_end_matches('.').to_owned();
    let mut chain: BTreeSet<String> = [name.to_owned()].into();
    // A chain is at most as long as the answer; bounded all the same.
    for _ in 0..16 {
        let before = chain.len();
        for r in &m.answers {
            if let RData::CNAME(t) = &r.data
                && chain.contains(&norm(&r.name))
            {
                chain.insert(norm(&t.0));
            }
        }
        if chain.len() == before {
            break;
        }
    }
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) if chain.contains(&norm(&r.name)) => Some((a.0, r.ttl)),
            _ => None,
        })
        .collect()
}

/// The container's answer: its id and question, the upstream's code, answers and authority
/// records with TTLs capped at `max_ttl` (no additional records). Over UDP, an answer larger
/// than the client offered is sent truncated (TC), for it to ask again over TCP.
pub fn reply(q: &ClientQuery, upstream: &Message, max_ttl: u32, tcp: bool) -> Vec<u8> {
    let mut m = response(q, upstream.metadata.response_code);
    let cap = |mut r: hickory_proto::rr::Record| {
        r.ttl = r.ttl.min(max_ttl);
        r
    };
    m.insert_answers(upstream.answers.iter().cloned().map(cap).collect());
    m.insert_authorities(upstream.authorities.iter().cloned().map(cap).collect());
    let bytes = encode(&m);
    let limit = usize::from(q.edns.unwrap_or(512));
    if tcp || bytes.len() <= limit {
        return bytes;
    }
    let mut t = response(q, upstream.metadata.response_code);
    t.metadata.truncation = true;
    encode(&t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{A, CNAME};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn the_upstream_query_is_hoodys_own() {
        let mut client = Message::query();
        client.metadata.id = 0x1234;
        client.add_query(Query::query(name("API.Stripe.COM."), RecordType::A));
        let mut e = Edns::new();
        e.set_max_payload(4096);
        client.set_edns(e);
        let q = parse_query(&client.to_vec().unwrap()).unwrap();
        assert_eq!((q.name.as_str(), q.qtype, q.standard), ("api.stripe.com", RecordType::A, true));
        let up = Message::from_vec(&upstream_query(&q.name, q.qtype, 0x9999).unwrap()).unwrap();
        assert_eq!(up.metadata.id, 0x9999);
        assert_eq!(up.queries[0].name().to_ascii(), "api.stripe.com.", "lower case, no 0x20 bits of the client");
        assert!(up.edns.as_ref().is_some_and(|e| e.options().as_ref().is_empty() && e.max_payload() == PAYLOAD));
    }

    #[test]
    fn addresses_follow_the_cname_chain_only() {
        let mut m = Message::response(7, OpCode::Query);
        m.add_query(Query::query(name("api.github.com."), RecordType::A));
        m.add_answer(Record::from_rdata(name("api.github.com."), 60, RData::CNAME(CNAME(name("lb.GitHub.net.")))));
        m.add_answer(Record::from_rdata(name("lb.github.net."), 20, RData::A(A(Ipv4Addr::new(203, 0, 113, 7)))));
        m.add_answer(Record::from_rdata(name("other.example."), 20, RData::A(A(Ipv4Addr::new(203, 0, 113, 8)))));
        assert_eq!(addresses(&m, "api.github.com"), vec![(Ipv4Addr::new(203, 0, 113, 7), 20)]);
        assert!(!answers_query(&m, "api.github.com", RecordType::A, 8), "another id");
        assert!(answers_query(&m, "api.github.com", RecordType::A, 7));
    }

    #[test]
    fn a_large_answer_over_udp_is_truncated_and_ttls_are_capped() {
        let mut client = Message::query();
        client.metadata.id = 5;
        client.add_query(Query::query(name("big.example."), RecordType::A));
        let q = parse_query(&client.to_vec().unwrap()).unwrap();
        let mut up = Message::response(1, OpCode::Query);
        for i in 0..60u8 {
            up.add_answer(Record::from_rdata(name("big.example."), 86_400, RData::A(A(Ipv4Addr::new(203, 0, 113, i)))));
        }
        let udp = Message::from_vec(&reply(&q, &up, 3600, false)).unwrap();
        assert!(udp.metadata.truncation && udp.answers.is_empty());
        let tcp = Message::from_vec(&reply(&q, &up, 3600, true)).unwrap();
        assert_eq!((tcp.metadata.id, tcp.answers.len(), tcp.answers[0].ttl), (5, 60, 3600));
    }
}

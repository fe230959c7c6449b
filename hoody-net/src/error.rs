use std::io;

/// A refused input: the field (dotted path) and why. Nothing reached the kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid { field: field.into(), message: message.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("nftables transaction refused by the kernel ({ops} operations); the previous rules stay in force")]
    Rejected {
        ops: usize,
        #[source]
        source: io::Error,
    },
    #[error("nftables {what}")]
    Nft {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("firewall state differs from the policy after apply: {0}")]
    Verify(String),
    #[error("netlink {op} {iface}")]
    Netlink {
        op: &'static str,
        iface: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("{op} {target}")]
    Io {
        op: &'static str,
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("the address pool {0} is exhausted")]
    PoolExhausted(String),
}

pub type Result<T, E = NetError> = std::result::Result<T, E>;

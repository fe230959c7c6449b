//! Times as the daemon writes them.

/// Now, as RFC 3339 with milliseconds (UTC): how every record and answer gives a time.
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

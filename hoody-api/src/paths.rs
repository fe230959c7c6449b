//! Where things are: the API's prefix, the default socket, the exec stream's names.

/// Every endpoint is below this.
pub const PREFIX: &str = "/api/v1";
/// The daemon's socket unless `--socket` / `$HOODY_SOCKET` say otherwise.
pub const DEFAULT_SOCKET: &str = "/run/hoody/hoodyd.sock";
/// `Upgrade:` value of the exec stream.
pub const UPGRADE_PROTOCOL: &str = "hoody-exec";
/// The header of a `101` answer naming the exec instance (to re-attach to it).
pub const EXEC_ID_HEADER: &str = "x-hoody-exec-id";
/// On `GET /events`: the seq the stream begins after (`?since=`, or the last one written), so
/// that a subscriber that reads no event before the stream ends still knows where to resume.
pub const EVENTS_AFTER_HEADER: &str = "x-hoody-events-after";

/// A request header: answer this mutating request once; a retry with the same key and the
/// same request gets the first answer (24 hours), with another request 422.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// An answer header: `true` on the kept first answer given to a retry.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// An answer header of lists: the next page's `after`, present when more items follow.
pub const NEXT_CURSOR: &str = "x-next-cursor";

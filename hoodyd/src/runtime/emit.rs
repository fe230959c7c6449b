//! What the runtime tells the event stream: each emit comes after the change it reports is
//! recorded, so a subscriber that reads an event and then asks the API sees the change.

use hoody_api::events::{EventData, EventType};

use super::Runtime;
use crate::model::Container;

impl Runtime {
    pub fn events(&self) -> &std::sync::Arc<crate::events::EventLog> {
        &self.events
    }

    /// Emits `kind` about `c`, with `data` (its name filled in when `data` has none).
    pub(crate) fn emit(&self, kind: EventType, c: &Container, mut data: EventData) {
        if data.name.is_none() {
            data.name = Some(c.name.clone());
        }
        self.events.container(kind, &c.id, &c.realm_ids, data);
    }

    /// Emits `kind` about the container `id`, whose record is read for its realms and name
    /// (nothing is emitted for a container that is gone).
    pub(crate) async fn emit_for(&self, kind: EventType, id: &str, data: EventData) {
        if let Ok(c) = self.get(id).await {
            self.emit(kind, &c, data);
        }
    }
}

/// The data of an event that names a snapshot.
pub(crate) fn snapshot(name: &str) -> EventData {
    EventData { snapshot: Some(name.to_owned()), ..Default::default() }
}

//! Which events a subscriber gets: its realms', of the types and the container it asked for.

use hoody_api::events::{Event, EventType};

#[derive(Clone, Debug, PartialEq, Eq)]
enum TypeMatch {
    Exact(EventType),
    Class(&'static str),
}

#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// `None`: every realm's (an administrator).
    pub realms: Option<Vec<String>>,
    types: Option<Vec<TypeMatch>>,
    /// A container id.
    pub container: Option<String>,
}

impl Filter {
    /// `types`: `?type=` — comma-separated types (`container.exited`) or classes
    /// (`container`, `container.*`); an unknown one is refused, naming it.
    pub fn new(realms: Option<Vec<String>>, types: Option<&str>, container: Option<String>) -> Result<Filter, String> {
        let types = match types {
            None => None,
            Some(list) => Some(
                list.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| {
                        let class = t.strip_suffix(".*").unwrap_or(t);
                        if let Some(c) = EventType::ALL.iter().map(|k| k.class()).find(|c| *c == class) {
                            Ok(TypeMatch::Class(c))
                        } else {
                            t.parse().map(TypeMatch::Exact).map_err(|_| {
                                let mut classes: Vec<&str> = EventType::ALL.iter().map(|k| k.class()).collect();
                                classes.dedup();
                                format!("{t:?} is not an event type or class ({})", classes.join(", "))
                            })
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(Filter { realms, types, container })
    }

    pub fn admits(&self, e: &Event) -> bool {
        let realm = match &self.realms {
            None => true,
            Some(mine) => e.kind == EventType::DaemonReady || e.realm_ids.iter().any(|r| mine.contains(r)),
        };
        let kind = self.types.as_ref().is_none_or(|ts| {
            ts.iter().any(|t| match t {
                TypeMatch::Exact(k) => *k == e.kind,
                TypeMatch::Class(c) => e.kind.class() == *c,
            })
        });
        let container = self.container.as_ref().is_none_or(|c| e.container.as_ref() == Some(c));
        realm && kind && container
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoody_api::events::EventData;

    fn ev(kind: EventType, realms: &[&str], container: Option<&str>) -> Event {
        Event {
            seq: 1,
            time: String::new(),
            kind,
            realm_ids: realms.iter().map(|r| r.to_string()).collect(),
            container: container.map(str::to_owned),
            data: EventData::default(),
        }
    }

    #[test]
    fn realms_types_and_containers() {
        let mine = Filter::new(Some(vec!["r1".into()]), None, None).unwrap();
        assert!(mine.admits(&ev(EventType::ContainerStarted, &["r1"], Some("a"))));
        assert!(!mine.admits(&ev(EventType::ContainerStarted, &["r2"], Some("b"))), "another realm's");
        assert!(!mine.admits(&ev(EventType::ImageImported, &[], None)), "no realm: administrators only");
        assert!(mine.admits(&ev(EventType::DaemonReady, &[], None)));
        let admin = Filter::new(None, Some("container,snapshot.created"), Some("a".into())).unwrap();
        assert!(admin.admits(&ev(EventType::ContainerExited, &[], Some("a"))));
        assert!(admin.admits(&ev(EventType::SnapshotCreated, &[], Some("a"))));
        assert!(!admin.admits(&ev(EventType::SnapshotDeleted, &[], Some("a"))));
        assert!(!admin.admits(&ev(EventType::ContainerExited, &[], Some("b"))));
        assert!(Filter::new(None, Some("exec.*"), None).unwrap().admits(&ev(EventType::ExecExited, &[], None)));
        let e = Filter::new(None, Some("container.exploded"), None).unwrap_err();
        assert!(e.contains("container.exploded") && e.contains("firewall"), "{e}");
    }
}

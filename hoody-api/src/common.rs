//! Small shapes several endpoints share.

use serde::{Deserialize, Serialize};

/// The answer of a `DELETE`: what is gone (`id` or `name`, as the resource is named).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Deleted {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub deleted: bool,
}

impl Deleted {
    pub fn id(id: impl Into<String>) -> Deleted {
        Deleted { id: Some(id.into()), name: None, deleted: true }
    }

    pub fn name(name: impl Into<String>) -> Deleted {
        Deleted { id: None, name: Some(name.into()), deleted: true }
    }
}

/// A size: bytes as a number, or text with a unit (`"512MiB"`, `"1G"`, `"10GB"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

/// A port (`443`) or a range (`"8000-8080"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Port {
    Number(i64),
    Text(String),
}

impl Port {
    pub fn as_text(&self) -> String {
        match self {
            Port::Number(n) => n.to_string(),
            Port::Text(t) => t.clone(),
        }
    }
}

//! What the kube source reads each object from the API server into: its identity and its JSON
//! text. The view is then built straight from the text ([`Object::parse_kind_raw`]), in one pass
//! that skips what the views do not keep. A `DynamicObject` would first build a tree of the whole
//! object (`managedFields`, the pod template and all), and reading a view from it meant
//! serialising that into a second tree.

use crate::model::{Kind, Object, ObjectKey};
use kube::api::{ApiResource, ObjectMeta};
use kube::core::DynamicResourceScope;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::Arc;

/// One object of a list or watch event: its name, namespace and resourceVersion (what the watcher
/// needs), and the object's JSON text as the API server sent it.
#[derive(Clone, Debug)]
pub struct WatchedObject {
    metadata: ObjectMeta,
    raw: Box<RawValue>,
}

impl WatchedObject {
    /// An object from its JSON text (tests, and anything read outside a watch).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn key(&self, kind: Kind, cluster: &Arc<str>) -> ObjectKey {
        ObjectKey::in_cluster(
            kind,
            cluster,
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default(),
        )
    }

    /// The cached view of the object, or why it cannot be read.
    pub fn view(&self, kind: Kind, cluster: &Arc<str>) -> Result<Object, String> {
        let namespace = self.metadata.namespace.as_deref().unwrap_or_default();
        Object::parse_kind_raw(kind, &self.raw, namespace)
            .map(|object| object.in_cluster(cluster))
            .map_err(|e| e.to_string())
    }
}

impl<'de> Deserialize<'de> for WatchedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Identity {
            #[serde(default)]
            metadata: IdentityMeta,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct IdentityMeta {
            name: Option<String>,
            namespace: Option<String>,
            resource_version: Option<String>,
        }
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let identity: Identity = serde_json::from_str(raw.get()).map_err(|e| {
            D::Error::custom(format!(
                "expected an object with metadata name, namespace and resourceVersion: {e}"
            ))
        })?;
        let IdentityMeta {
            name,
            namespace,
            resource_version,
        } = identity.metadata;
        Ok(WatchedObject {
            metadata: ObjectMeta {
                name,
                namespace,
                resource_version,
                ..ObjectMeta::default()
            },
            raw,
        })
    }
}

/// Written out as the API server sent it.
impl Serialize for WatchedObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(serializer)
    }
}

impl kube::Resource for WatchedObject {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::WatchEvent;

    const SERVICE: &str = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"shop","resourceVersion":"42","managedFields":[{"manager":"kubectl"}]},"spec":{"selector":{"app":"web"}}}"#;

    #[test]
    fn reads_identity_and_view_from_the_text() {
        let o = WatchedObject::from_json(SERVICE).unwrap();
        assert_eq!(o.metadata.resource_version.as_deref(), Some("42"));
        let local: Arc<str> = Arc::from("");
        assert_eq!(
            o.key(Kind::Service, &local),
            ObjectKey::new(Kind::Service, "shop", "web")
        );
        let Ok(Object::Service(s)) = o.view(Kind::Service, &local) else {
            panic!("a Service view")
        };
        assert_eq!(&*s.meta.name, "web");
    }

    #[test]
    fn reads_from_watch_events_and_lists_as_the_client_does() {
        let line = format!(r#"{{"type":"MODIFIED","object":{SERVICE}}}"#);
        let event: WatchEvent<WatchedObject> = serde_json::from_str(&line).unwrap();
        assert!(
            matches!(event, WatchEvent::Modified(o) if o.metadata.name.as_deref() == Some("web"))
        );
        let bookmark = r#"{"type":"BOOKMARK","object":{"kind":"Service","apiVersion":"v1","metadata":{"resourceVersion":"43"}}}"#;
        let event: WatchEvent<WatchedObject> = serde_json::from_str(bookmark).unwrap();
        assert!(matches!(event, WatchEvent::Bookmark(b) if b.metadata.resource_version == "43"));
        let list = format!(
            r#"{{"apiVersion":"v1","kind":"ServiceList","metadata":{{"resourceVersion":"44"}},"items":[{SERVICE}]}}"#
        );
        let list: kube::core::ObjectList<WatchedObject> = serde_json::from_str(&list).unwrap();
        assert_eq!(list.items.len(), 1);
    }

    #[test]
    fn a_view_that_does_not_parse_is_an_error_not_a_lost_identity() {
        let broken = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"shop"},"spec":{"selector":3}}"#;
        let o = WatchedObject::from_json(broken).unwrap();
        assert!(o.view(Kind::Service, &Arc::from("")).is_err());
        assert!(WatchedObject::from_json(r#"{"metadata":{"name":3}}"#)
            .unwrap_err()
            .to_string()
            .contains("expected an object with metadata"));
    }
}

//! The bundled connectors, compiled from `plugins/` by the build script and embedded in
//! the binary so `flowd` needs nothing beside it.

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The component bytes of a bundled connector.
pub fn bytes(name: &str) -> Option<&'static [u8]> {
    BUNDLED.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

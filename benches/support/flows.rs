//! The flows the webhook benchmarks drive (benches/load.rs, benches/postgres.rs) and the
//! bodies they are sent.

/// The shape benches/load.rs began with: webhook, 2 transforms, log, respond.
pub const FLOW: &str = r#"
[flow]
name = "bench"
[trigger.http]
path = "/bench"

[[steps]]
name = "shape"
connector = "transform"
config = { from = "trigger.body", fields = { id = "id", total = "sum(items[].price)" } }

[[steps]]
name = "enrich"
connector = "transform"
config = { from = "steps.shape", keep = true, set = { currency = "EUR" } }

[[steps]]
name = "record"
connector = "log"
config = { category = "bench", message = "order {{ steps.shape.id }}" }

[[steps]]
name = "reply"
respond = { status = 200, body = "{{ steps.enrich }}" }
"#;

pub const BODY: &[u8] = br#"{"id":"A-1","items":[{"sku":"tea","price":4.5},{"sku":"cup","price":12}]}"#;

/// The shape users compare with n8n (issue 17): the flow `benches/peer/run.sh` runs, the
/// same four nodes as the n8n workflow.
pub const PEER_FLOW: &str = include_str!("../peer/flowd/flows/peer.toml");

/// ~200 bytes: the body the peer comparison sends.
pub const PEER_BODY: &[u8] = include_bytes!("../peer/body.json");

/// Webhook, a transform, a log record; answered 202 when stored, run after.
pub const ASYNC_FLOW: &str = r#"
[flow]
name = "async"
[trigger.http]
path = "/async"

[[steps]]
name = "shape"
connector = "transform"
config = { from = "trigger.body", fields = { id = "id", total = "sum(items[].price)" } }

[[steps]]
name = "record"
connector = "log"
config = { category = "bench", message = "order {{ steps.shape.id }}" }
"#;

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

/// The shape users compare with n8n (issue 17): the same four nodes as the n8n workflow.
pub const PEER_FLOW: &str = r#"
[flow]
name = "peer"
[trigger.http]
path = "/peer"

[[steps]]
name = "set_fields"
connector = "transform"
config = { from = "trigger.body", fields = { id = "id", customer = "customer", items = "items" } }

[[steps]]
name = "compute"
connector = "transform"
config = { from = "steps.set_fields", keep = true, fields = { items_count = "length(items)", items_sum = "sum(items[].price)" } }

[[steps]]
name = "mark"
connector = "transform"
config = { from = "steps.compute", keep = true, fields = { echo_id = "id" }, set = { ok = true } }

[[steps]]
name = "reply"
respond = { status = 200, body = "{{ steps.mark }}" }
"#;

/// ~200 bytes, as in the peer comparison.
pub const PEER_BODY: &[u8] = br#"{"id":"ord-10042","customer":"Ada Lovelace","email":"ada@example.com","items":[{"sku":"tea","qty":2,"price":4},{"sku":"cup","qty":1,"price":12},{"sku":"pot","qty":1,"price":30}],"note":"ring twice"}"#;

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

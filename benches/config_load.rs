//! Config load time against flow size: one flow of 1,000, 10,000 and 100,000 steps
//! (alternating `log` and `transform` steps, each with its own config and a placeholder
//! reading the step before), loaded as `flowd validate` loads it: parsed, resolved,
//! every step's config checked by its connector. Prints the time of each size, the time
//! per step, and each size's per-step time as a ratio to the smallest (1.0 everywhere
//! means linear growth). Each figure is the fastest of five runs (two at 100,000 steps).
//!
//! Run: `cargo bench --bench config_load` (`-- --quick` stops at 10,000 steps).

use flowd::config::{DaemonConfig, Flow, SourceFile};
use flowd::loader::{self, Purpose};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The allocator the `flowd` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONFIG: &str = "environment = \"bench\"\nflows = \"flows\"\n[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n[connectors.log]\nbundled = \"log\"\n[connectors.transform]\nbundled = \"transform\"\n";

fn flow(steps: usize) -> String {
    let mut s = String::from("[flow]\nname = \"big\"\n\n[trigger.manual]\n");
    for i in 0..steps {
        let _ = if i % 2 == 0 {
            write!(
                s,
                "\n[[steps]]\nname = \"s{i}\"\nconnector = \"log\"\nconfig = {{ message = \"step {i} after {{{{ trigger.id }}}}\" }}\n"
            )
        } else {
            write!(
                s,
                "\n[[steps]]\nname = \"s{i}\"\nconnector = \"transform\"\nconfig = {{ from = \"steps.s{}\", fields = {{ n = \"to_string(`{i}`)\" }} }}\n",
                i - 1
            )
        };
    }
    s
}

struct Timing {
    parse: Duration,
    load: Duration,
}

async fn measure(dir: &std::path::Path, steps: usize) -> Timing {
    let text = flow(steps);
    std::fs::write(dir.join("flows/big.toml"), &text).unwrap();
    let config = DaemonConfig::load(&dir.join("flowd.toml")).unwrap();
    let start = Instant::now();
    let parsed = Flow::parse(&SourceFile::new(dir.join("flows/big.toml"), text), &config).unwrap();
    let parse = start.elapsed();
    assert_eq!(parsed.steps.len(), steps);
    let start = Instant::now();
    let setup = loader::load(&config, &[], Purpose::Validate)
        .await
        .map_err(|f| f.errors.to_string())
        .unwrap();
    let load = start.elapsed();
    assert_eq!(setup.flows.by_name["big"].steps.len(), steps);
    Timing { parse, load }
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("flows")).unwrap();
    std::fs::write(dir.path().join("flowd.toml"), CONFIG).unwrap();
    // Compiles (or fetches from the cache) the bundled connectors once, outside the timings.
    measure(dir.path(), 10).await;
    let sizes: &[usize] = if quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    println!("steps    parse+resolve   whole load   per step   ratio to 1k");
    let mut base = None;
    for &n in sizes {
        // The fastest of a few runs: the machine's other work only ever adds time.
        let runs = if n >= 100_000 { 2 } else { 5 };
        let mut t = measure(dir.path(), n).await;
        for _ in 1..runs {
            let again = measure(dir.path(), n).await;
            t.parse = t.parse.min(again.parse);
            t.load = t.load.min(again.load);
        }
        let per_step = t.load.as_secs_f64() / n as f64;
        let ratio = per_step / *base.get_or_insert(per_step);
        println!(
            "{n:>7}  {:>11.1} ms  {:>8.1} ms  {:>6.1} us  {ratio:>10.2}",
            t.parse.as_secs_f64() * 1e3,
            t.load.as_secs_f64() * 1e3,
            per_step * 1e6
        );
    }
}

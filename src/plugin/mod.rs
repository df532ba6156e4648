//! The connector runtime: one wasmtime engine and linker, one `InstancePre` per connector
//! (compiled once, cached on disk), and a fresh bounded store per invocation: fuel, an
//! epoch deadline and a memory limiter, with overruns reported as the contract's kinds.

pub mod bindings;
pub mod bundled;
mod cache;
mod engine;
mod failure;
mod functions;
mod host;
pub mod imports;
mod invoke;
mod lanes;
mod log;
mod lru;
mod outbound;
mod preflight;
pub mod progress;
mod signature;
mod trap;

pub use cache::Origin;
pub use failure::{ErrorKind, Failure};
use functions::FunctionCache;
pub use imports::{Import, Verdict};
pub use log::{Level, LogRecord};

use crate::config::{ConnectorConfig, ConnectorSource, DaemonConfig, Grants, Limits, StepLimits};
use anyhow::{Context as _, anyhow};
use bindings::action::{ActionConnector, ActionConnectorPre};
use bindings::trigger::exports::flowd::connector::trigger as wit_trigger;
use bindings::trigger::{TriggerConnector, TriggerConnectorPre};
use host::HostState;
use invoke::{Held, invoke, output, step_failure};
use lanes::Lane;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, Linker, types::ComponentItem};

const ACTION_EXPORT: &str = "flowd:connector/action@0.1.0";
const TRIGGER_EXPORT: &str = "flowd:connector/trigger@0.1.0";

/// Which contract a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum World {
    Action,
    Trigger,
}

impl World {
    pub fn wit_name(self) -> &'static str {
        match self {
            World::Action => "flowd:connector/action-connector",
            World::Trigger => "flowd:connector/trigger-connector",
        }
    }
}

/// The engine, linker and epoch ticker shared by every connector.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<cache::Cache>,
    limits: Limits,
    /// One permit per pool slot: an invocation waits for a slot rather than failing.
    slots: Arc<tokio::sync::Semaphore>,
    _ticker: engine::EpochTicker,
}

/// Why a component cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("not WebAssembly: {0}")]
    NotWasm(String),
    #[error("not a valid WebAssembly component: {0}")]
    Compile(String),
    #[error(
        "a core WebAssembly module, not a component: make it one with `wasm-tools component new` (for a wasm32-wasip1 build, with the WASI preview1 reactor adapter), or build for wasm32-wasip2"
    )]
    CoreModule,
    #[error(
        "uses the component-model async ABI (`{0}`), which this host does not run: build it synchronously (componentize-qjs: add `--sync`)"
    )]
    AsyncAbi(String),
    #[error("implements neither flowd world: it exports no `{ACTION_EXPORT}` nor `{TRIGGER_EXPORT}`")]
    NoWorld,
    #[error("imports what this host does not offer: {}", .0.join("; "))]
    Refused(Vec<String>),
    #[error("cannot be linked: {0}")]
    Link(String),
    #[error("`{function}` does not match the world: the component has {found}, the world {expected}")]
    Signature {
        function: String,
        found: String,
        expected: String,
    },
}

/// What is known of a component after inspecting it.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub world: Option<World>,
    pub imports: Vec<Import>,
    pub exports: Vec<String>,
    /// Hex SHA-256 of the component bytes.
    pub sha256: String,
    pub size: u64,
    pub origin: Origin,
    #[serde(serialize_with = "ser_millis")]
    pub load_time: Duration,
}

fn ser_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

impl Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Origin::Compiled => "compiled",
            Origin::Cached => "cache",
            Origin::Skipped => "skipped",
        })
    }
}

enum Pre {
    Action(ActionConnectorPre<HostState>),
    Trigger(TriggerConnectorPre<HostState>),
}

/// A loaded connector, ready to instantiate.
pub struct Connector {
    pub name: String,
    pub info: Inspection,
    grants: Grants,
    pre: Pre,
}

/// The result of one invocation, whatever it was.
#[derive(Debug)]
pub struct Invocation<T> {
    pub result: Result<T, Failure>,
    pub fuel_used: u64,
    pub duration: Duration,
    pub logs: Vec<LogRecord>,
    /// Log records past the cap, counted but not kept.
    pub dropped_logs: u64,
}

/// A component's JSON output: the value, and the text the component gave for it (valid
/// JSON, as long as `limits.max_payload` at most), kept so that the host passes it on
/// and stores it without writing the value out again.
#[derive(Debug, Clone)]
pub struct Output {
    pub value: Value,
    pub text: String,
}

/// Who is calling, passed to the component.
#[derive(Debug, Clone, Serialize)]
pub struct CallContext {
    pub job_id: String,
    pub project: String,
    pub flow: String,
    pub step: String,
    pub attempt: u32,
    pub environment: String,
}

/// An event handed to a trigger connector.
#[derive(Debug, Clone)]
pub enum TriggerEvent {
    Http {
        method: String,
        path: String,
        query: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    Schedule {
        scheduled_at: String,
        fired_at: String,
    },
    Manual(Value),
}

impl TriggerEvent {
    /// A schedule's fire at `at` (its scheduled time), fired now.
    pub fn schedule(at: std::time::SystemTime) -> TriggerEvent {
        TriggerEvent::Schedule {
            scheduled_at: crate::time_format::rfc3339(at),
            fired_at: crate::time_format::rfc3339(std::time::SystemTime::now()),
        }
    }
}

/// A problem a connector found in a config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigProblem {
    pub path: String,
    pub message: String,
}

impl Runtime {
    pub fn new(config: &DaemonConfig) -> anyhow::Result<Runtime> {
        let functions = config
            .cache_dir
            .as_deref()
            .map(|dir| Arc::new(FunctionCache::new(&cache::functions_dir(dir))));
        let engine = engine::build(&config.limits, functions.clone())?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        // Linked for everyone, but `imports::classify` refuses wasi:http to a connector
        // without an http grant, and the hooks deny every request such a one could send.
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        bindings::log_iface::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;
        let cache = match &config.cache_dir {
            Some(dir) => match cache::Cache::open(dir, &engine, config.cache_size, functions) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "component cache disabled");
                    None
                }
            },
            None => None,
        };
        let ticker = engine::EpochTicker::start(engine.clone());
        let slots = Arc::new(tokio::sync::Semaphore::new(config.limits.instances as usize));
        Ok(Runtime {
            engine,
            linker,
            cache,
            limits: config.limits,
            slots,
            _ticker: ticker,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The bytes of a connector named in the daemon config.
    pub fn read_source(source: &ConnectorSource) -> Result<(Vec<u8>, Option<PathBuf>), LoadError> {
        match source {
            ConnectorSource::Bundled(name) => bundled::bytes(name)
                .map(|b| (b.to_vec(), None))
                .ok_or_else(|| LoadError::Compile(format!("no bundled connector named \"{name}\""))),
            ConnectorSource::File(path) => {
                std::fs::read(path)
                    .map(|b| (b, Some(path.clone())))
                    .map_err(|source| LoadError::Read {
                        path: path.clone(),
                        source,
                    })
            }
        }
    }

    /// Compiles (or loads from cache) and inspects a component, without linking it. The
    /// bytes are read first: a core module, the async ABI or an import this host refuses
    /// is reported without compiling (`component` is then `None`).
    /// `label` names the component in progress reports.
    pub fn inspect(
        &self,
        label: &str,
        bytes: &[u8],
        grants: &Grants,
    ) -> Result<(Option<Component>, Inspection), LoadError> {
        let start = Instant::now();
        let sha256: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
        let early = preflight::read(bytes)?;
        let classify = |name: &str, early: Option<&preflight::Preflight>| {
            let verdict = imports::classify(name, grants);
            match verdict {
                Verdict::NotOffered(_)
                    if name.starts_with("wasi:http/") && early.is_some_and(|p| p.is_componentize_js()) =>
                {
                    Verdict::NotOffered(preflight::HTTP_DEFAULT_HINT.into())
                }
                v => v,
            }
        };
        let info = |world, imports, exports, origin, load_time| Inspection {
            world,
            imports,
            exports,
            sha256: sha256.clone(),
            size: bytes.len() as u64,
            origin,
            load_time,
        };
        if let Some(p) = &early {
            let imports: Vec<Import> = p
                .imports
                .iter()
                .map(|name| Import {
                    name: name.clone(),
                    verdict: classify(name, Some(p)),
                })
                .collect();
            if !imports::refused(&imports).is_empty() {
                let world = world_of(&p.exports);
                let info = info(world, imports, p.exports.clone(), Origin::Skipped, start.elapsed());
                return Ok((None, info));
            }
        }
        let (component, origin) = match self.cache.as_ref().and_then(|c| c.load(&self.engine, &sha256)) {
            Some(c) => (c, Origin::Cached),
            None => {
                let size = bytes.len() as u64;
                progress::report(&progress::Compile::Started { label, size });
                let compiled = cache::compile(&self.engine, bytes).map_err(|e| {
                    progress::report(&progress::Compile::Failed { label, size });
                    LoadError::Compile(format!("{e:#}"))
                })?;
                let cached = self.cache.as_ref().is_some_and(|c| c.keep(&compiled, &sha256));
                let elapsed = start.elapsed();
                progress::report(&progress::Compile::Finished {
                    label,
                    size,
                    elapsed,
                    cached,
                });
                (compiled, Origin::Compiled)
            }
        };
        let load_time = start.elapsed();
        let ty = component.component_type();
        let imports = ty
            .imports(&self.engine)
            .map(|(name, _)| Import {
                name: name.to_string(),
                verdict: classify(name, early.as_ref()),
            })
            .collect();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
            .map(|(name, _)| name.to_string())
            .collect();
        let world = world_of(&exports);
        Ok((Some(component), info(world, imports, exports, origin, load_time)))
    }

    /// Loads a connector: compile, check every import against the sandbox policy, link.
    pub fn load(&self, name: &str, bytes: &[u8], grants: &Grants) -> Result<Connector, LoadError> {
        let (component, info) = self.inspect(name, bytes, grants)?;
        let refused = imports::refused(&info.imports);
        let component = match component {
            Some(c) if refused.is_empty() => c,
            _ => {
                return Err(LoadError::Refused(
                    refused.iter().map(|i| format!("{} ({})", i.name, i.verdict)).collect(),
                ));
            }
        };
        if let Some(world) = info.world {
            signature::check(&self.engine, &component, world)?;
        }
        let link = |e: wasmtime::Error| LoadError::Link(format!("{e:#}"));
        let instance_pre = self.linker.instantiate_pre(&component).map_err(link)?;
        let pre = match info.world {
            Some(World::Action) => Pre::Action(ActionConnectorPre::new(instance_pre).map_err(link)?),
            Some(World::Trigger) => Pre::Trigger(TriggerConnectorPre::new(instance_pre).map_err(link)?),
            None => return Err(LoadError::NoWorld),
        };
        Ok(Connector {
            name: name.to_string(),
            info,
            grants: grants.clone(),
            pre,
        })
    }

    /// Loads a connector named in the daemon config.
    pub fn load_configured(&self, c: &ConnectorConfig) -> anyhow::Result<Connector> {
        let (bytes, _) = Self::read_source(&c.source).map_err(|e| anyhow!("connector \"{}\": {e}", c.name))?;
        self.load(&c.name, &bytes, &c.grants)
            .map_err(|e| anyhow!("connector \"{}\": {e}", c.name))
    }
}

/// The world a component's instance exports implement.
fn world_of(exports: &[String]) -> Option<World> {
    if exports.iter().any(|e| e == ACTION_EXPORT) {
        Some(World::Action)
    } else if exports.iter().any(|e| e == TRIGGER_EXPORT) {
        Some(World::Trigger)
    } else {
        None
    }
}

fn wit_context(ctx: &CallContext) -> bindings::types::Context {
    bindings::types::Context {
        job_id: ctx.job_id.clone(),
        project: ctx.project.clone(),
        flow: ctx.flow.clone(),
        step: ctx.step.clone(),
        attempt: ctx.attempt,
        environment: ctx.environment.clone(),
    }
}

impl Connector {
    /// See [`Grants::reaches_out`].
    pub fn reaches_out(&self) -> bool {
        self.grants.reaches_out()
    }

    pub fn world(&self) -> World {
        match self.pre {
            Pre::Action(_) => World::Action,
            Pre::Trigger(_) => World::Trigger,
        }
    }

    /// Asks the component to check a config; `Ok(problems)` lists what it rejected.
    pub async fn validate(self: &Arc<Self>, rt: &Arc<Runtime>, config: &Value) -> Result<Vec<ConfigProblem>, Failure> {
        let (this, rt, text) = (self.clone(), rt.clone(), config.to_string());
        let lane = Lane::default();
        let work = Box::pin({
            let lane = lane.clone();
            async move {
                let limits = rt.limits.step;
                match &this.pre {
                    Pre::Action(pre) => {
                        invoke(&rt, &this.grants, &limits, limits.timeout, &lane, async |store| {
                            let inst: ActionConnector = pre.instantiate_async(&mut *store).await?;
                            let r = inst.flowd_connector_action().call_validate(&mut *store, &text).await?;
                            Ok(Ok(r))
                        })
                        .await
                    }
                    Pre::Trigger(pre) => {
                        invoke(&rt, &this.grants, &limits, limits.timeout, &lane, async |store| {
                            let inst: TriggerConnector = pre.instantiate_async(&mut *store).await?;
                            let r = inst.flowd_connector_trigger().call_validate(&mut *store, &text).await?;
                            Ok(Ok(r))
                        })
                        .await
                    }
                }
            }
        });
        match lane.run_then_release(work).await.result? {
            Ok(()) => Ok(Vec::new()),
            Err(errors) => Ok(errors
                .into_iter()
                .map(|e| ConfigProblem {
                    path: e.path,
                    message: e.message,
                })
                .collect()),
        }
    }

    /// Runs an action step with its config's JSON text. `timeout` may be shorter than the
    /// step's (the flow's time running out).
    pub async fn run(
        self: &Arc<Self>,
        rt: &Arc<Runtime>,
        ctx: &CallContext,
        config: Arc<str>,
        input: String,
        limits: &StepLimits,
        timeout: Duration,
    ) -> Invocation<Output> {
        if self.world() != World::Action {
            return not_this_world(World::Action);
        }
        let (this, rt, limits) = (self.clone(), rt.clone(), *limits);
        let ctx = wit_context(ctx);
        let lane = Lane::default();
        let work = Box::pin({
            let lane = lane.clone();
            async move {
                let Pre::Action(pre) = &this.pre else {
                    return (not_this_world(World::Action), Held::none());
                };
                let max = rt.limits.max_payload;
                invoke(&rt, &this.grants, &limits, timeout, &lane, async |store| {
                    let inst: ActionConnector = pre.instantiate_async(&mut *store).await?;
                    let r = inst
                        .flowd_connector_action()
                        .call_run(&mut *store, &ctx, &config, &input)
                        .await?;
                    Ok(match r {
                        Ok(text) => output(text, max),
                        Err(e) => Err(step_failure(e)),
                    })
                })
                .await
            }
        });
        lane.run_then_release(work).await
    }

    /// Hands an event to a trigger connector: `Ok(None)` means the event is dropped.
    pub async fn accept(
        self: &Arc<Self>,
        rt: &Arc<Runtime>,
        ctx: &CallContext,
        config: &Value,
        event: &TriggerEvent,
        limits: &StepLimits,
    ) -> Invocation<Option<Output>> {
        if self.world() != World::Trigger {
            return not_this_world(World::Trigger);
        }
        let (this, rt, limits) = (self.clone(), rt.clone(), *limits);
        let (ctx, config) = (wit_context(ctx), config.to_string());
        let event = match event {
            TriggerEvent::Http {
                method,
                path,
                query,
                headers,
                body,
            } => wit_trigger::Event::Http(wit_trigger::HttpRequest {
                method: method.clone(),
                path: path.clone(),
                query: query.clone(),
                headers: headers.clone(),
                body: body.clone(),
            }),
            TriggerEvent::Schedule { scheduled_at, fired_at } => {
                wit_trigger::Event::Schedule(wit_trigger::ScheduleTick {
                    scheduled_at: scheduled_at.clone(),
                    fired_at: fired_at.clone(),
                })
            }
            TriggerEvent::Manual(v) => wit_trigger::Event::Manual(v.to_string()),
        };
        let lane = Lane::default();
        let work = Box::pin({
            let lane = lane.clone();
            async move {
                let Pre::Trigger(pre) = &this.pre else {
                    return (not_this_world(World::Trigger), Held::none());
                };
                let max = rt.limits.max_payload;
                invoke(&rt, &this.grants, &limits, limits.timeout, &lane, async |store| {
                    let inst: TriggerConnector = pre.instantiate_async(&mut *store).await?;
                    let r = inst
                        .flowd_connector_trigger()
                        .call_accept(&mut *store, &ctx, &config, &event)
                        .await?;
                    Ok(match r {
                        Ok(Some(text)) => output(text, max).map(Some),
                        Ok(None) => Ok(None),
                        Err(e) => Err(step_failure(e)),
                    })
                })
                .await
            }
        });
        lane.run_then_release(work).await
    }
}

fn not_this_world<T>(wanted: World) -> Invocation<T> {
    Invocation {
        result: Err(Failure::new(
            ErrorKind::Host,
            format!("the component does not implement {}", wanted.wit_name()),
        )),
        fuel_used: 0,
        duration: Duration::ZERO,
        logs: Vec::new(),
        dropped_logs: 0,
    }
}

/// Connectors loaded for a daemon config, by name.
pub struct Registry {
    pub runtime: Arc<Runtime>,
    connectors: std::collections::BTreeMap<String, Arc<Connector>>,
}

impl Registry {
    /// Loads every connector the daemon config names; returns the registry and, per
    /// connector that failed, why.
    pub fn load(runtime: Arc<Runtime>, config: &DaemonConfig) -> (Registry, Vec<(String, anyhow::Error)>) {
        let mut connectors = std::collections::BTreeMap::new();
        let mut failed = Vec::new();
        for (name, c) in &config.connectors {
            match runtime.load_configured(c) {
                Ok(conn) => {
                    connectors.insert(name.clone(), Arc::new(conn));
                }
                Err(e) => failed.push((name.clone(), e)),
            }
        }
        (Registry { runtime, connectors }, failed)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Connector>> {
        self.connectors.get(name)
    }

    /// Adds (or replaces) a connector loaded from a file, for `flowd run --connector`.
    pub fn insert_file(&mut self, name: &str, path: &Path) -> anyhow::Result<()> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let c = self
            .runtime
            .load(name, &bytes, &Grants::default())
            .map_err(|e| anyhow!("connector \"{name}\" ({}): {e}", path.display()))?;
        self.connectors.insert(name.to_string(), Arc::new(c));
        Ok(())
    }
}

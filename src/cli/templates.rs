//! The projects `flowd plugin new` writes: the example greet connector of each language
//! (examples/connectors, which tests/connectors.rs runs), with the WIT this binary serves,
//! an example flow and event, and a README whose first line builds it and second runs it.

/// The WIT files this binary serves, as `wit/<file>`.
pub const WIT: &[(&str, &str)] = &[
    ("types.wit", include_str!("../../wit/types.wit")),
    ("log.wit", include_str!("../../wit/log.wit")),
    ("action.wit", include_str!("../../wit/action.wit")),
    ("trigger.wit", include_str!("../../wit/trigger.wit")),
    ("worlds.wit", include_str!("../../wit/worlds.wit")),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Js,
    Python,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TemplateWorld {
    Action,
    Trigger,
}

impl TemplateWorld {
    fn as_str(self) -> &'static str {
        match self {
            TemplateWorld::Action => "action",
            TemplateWorld::Trigger => "trigger",
        }
    }
}

const RUST_ACTION: &str = include_str!("../../examples/connectors/rust/action/src/lib.rs");
const RUST_TRIGGER: &str = include_str!("../../examples/connectors/rust/trigger/src/lib.rs");
const RUST_LOCK: &str = include_str!("../../examples/connectors/rust/Cargo.lock");
const JS_ACTION: &str = include_str!("../../examples/connectors/js/action.js");
const JS_TRIGGER: &str = include_str!("../../examples/connectors/js/trigger.js");
const JS_PACKAGE: &str = include_str!("../../examples/connectors/js/package.json");
const JS_LOCK: &str = include_str!("../../examples/connectors/js/package-lock.json");
const PY_ACTION: &str = include_str!("../../examples/connectors/python/action/app.py");
const PY_TRIGGER: &str = include_str!("../../examples/connectors/python/trigger/app.py");
const PY_REQUIREMENTS: &str = include_str!("../../examples/connectors/python/requirements.txt");

/// Every file of a new project (relative path, contents), `wit/` included.
pub fn files(lang: Lang, world: TemplateWorld, name: &str) -> Vec<(String, String)> {
    let w = world.as_str();
    let wit_world = format!("{w}-connector");
    let mut out: Vec<(String, String)> = WIT
        .iter()
        .map(|(f, text)| (format!("wit/{f}"), (*text).to_string()))
        .collect();
    let (build, wasm, sources): (String, String, Vec<(String, String)>) = match lang {
        Lang::Rust => {
            let crate_name = name.replace('-', "_");
            let lib = match world {
                TemplateWorld::Action => RUST_ACTION,
                TemplateWorld::Trigger => RUST_TRIGGER,
            };
            let lib = lib.replace("path: \"../../../../wit\"", "path: \"wit\"");
            let lock = RUST_LOCK.replace(&format!("name = \"greet-{w}\""), &format!("name = \"{name}\""));
            (
                "rustup target add wasm32-wasip2 && cargo build --release --target wasm32-wasip2".into(),
                format!("target/wasm32-wasip2/release/{crate_name}.wasm"),
                vec![
                    ("Cargo.toml".into(), rust_manifest(name)),
                    ("Cargo.lock".into(), lock),
                    ("src/lib.rs".into(), lib),
                    ("rust-toolchain.toml".into(), RUST_TOOLCHAIN.into()),
                    (".gitignore".into(), "/target\n".into()),
                ],
            )
        }
        Lang::Js => {
            let app = match world {
                TemplateWorld::Action => JS_ACTION,
                TemplateWorld::Trigger => JS_TRIGGER,
            };
            let package_name = "flowd-example-connectors-js";
            (
                format!("npm ci && npx componentize-qjs --sync --wit wit -n {wit_world} --js app.js -o {name}.wasm"),
                format!("{name}.wasm"),
                vec![
                    ("app.js".into(), app.into()),
                    ("package.json".into(), JS_PACKAGE.replace(package_name, name)),
                    ("package-lock.json".into(), JS_LOCK.replace(package_name, name)),
                    (".gitignore".into(), "node_modules/\n*.wasm\n".into()),
                ],
            )
        }
        Lang::Python => {
            let app = match world {
                TemplateWorld::Action => PY_ACTION,
                TemplateWorld::Trigger => PY_TRIGGER,
            };
            (
                format!(
                    "pip install -r requirements.txt && componentize-py -d wit -w {wit_world} componentize app -o {name}.wasm"
                ),
                format!("{name}.wasm"),
                vec![
                    ("app.py".into(), app.into()),
                    ("requirements.txt".into(), PY_REQUIREMENTS.into()),
                    (".gitignore".into(), "__pycache__/\n*.wasm\n".into()),
                ],
            )
        }
    };
    let run = format!("flowd run flow.toml --connector {name}={wasm} --input event.json");
    out.extend(sources);
    out.push(("README.md".into(), readme(lang, world, name, &build, &run)));
    out.push(("flow.toml".into(), flow(world, name)));
    out.push(("event.json".into(), "{\"name\": \"ada\"}\n".into()));
    out
}

const RUST_TOOLCHAIN: &str = "[toolchain]\nchannel = \"1.95.0\"\ntargets = [\"wasm32-wasip2\"]\n";

fn rust_manifest(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
serde_json = "1.0"
wit-bindgen = {{ version = "0.63", default-features = false, features = ["macros", "realloc", "std"] }}

[profile.release]
opt-level = "s"
lto = true
strip = true

# A project of its own, even when created inside another cargo workspace.
[workspace]
"#
    )
}

fn flow(world: TemplateWorld, name: &str) -> String {
    match world {
        TemplateWorld::Action => format!(
            r#"# Runs {name} once: `flowd run flow.toml --connector {name}=<the .wasm> --input event.json`.

[flow]
name = "{name}-example"

[trigger.manual]

[[steps]]
name = "greet"
connector = "{name}"
config = {{ greeting = "Hello", name = "{{{{ trigger.body.name }}}}" }}
"#
        ),
        TemplateWorld::Trigger => format!(
            r#"# Hands event.json to {name} as an HTTP request's body, then logs what it returned:
# `flowd run flow.toml --connector {name}=<the .wasm> --input event.json`.

[flow]
name = "{name}-example"

[trigger.http]
path = "/hooks/{name}"
method = "POST"

[trigger]
connector = "{name}"
config = {{ greeting = "Hello" }}

[[steps]]
name = "show"
connector = "log"
config = {{ level = "info", category = "example", message = "{{{{ trigger.message }}}}" }}
"#
        ),
    }
}

fn readme(lang: Lang, world: TemplateWorld, name: &str, build: &str, run: &str) -> String {
    let (language, notes) = match lang {
        Lang::Rust => (
            "Rust",
            "`wit-bindgen` generates the bindings from `wit/` at compile time. `Ok` is the output, \
             `Err(StepError {..})` a step error (`retryable: true` lets the step's retry policy \
             apply), a panic a trap whose message and location flowd shows.",
        ),
        Lang::Js => (
            "JavaScript",
            "Built with componentize-qjs (QuickJS, ~1.6 MB components); `--sync` is required, as \
             flowd does not run the component-model async ABI. QuickJS has no `console` and no \
             `TextDecoder`: log with the imported `log`. A returned value is the output, a thrown \
             `{code, message, retryable}` a step error, any other exception a trap. For \
             StarlingMonkey instead: `npx componentize-js app.js --wit wit -n WORLD -d http \
             fetch-event -o OUT.wasm` (~12 MB; without `-d http fetch-event` it imports wasi:http).",
        ),
        Lang::Python => (
            "Python",
            "Built with componentize-py (~18 MB components: the first run compiles for tens of \
             seconds, later runs load the cached machine code). A returned value is the output, \
             `raise Err(StepError(...))` a step error, any other exception a trap whose \
             exception line and location flowd shows.",
        ),
    };
    format!(
        "Build: `{build}`\n\
         Run: `{run}`\n\
         \n\
         # {name}\n\
         \n\
         A flowd {w} connector in {language}, implementing the `{w}-connector` world of `wit/`\n\
         (written by `flowd plugin new`; `flowd plugin wit` writes the WIT of your flowd). The first\n\
         line above builds it, the second runs `flow.toml` with `event.json`. Check what flowd\n\
         thinks of the component with `flowd plugin check <the .wasm>`.\n\
         \n\
         {notes}\n",
        w = world.as_str()
    )
}

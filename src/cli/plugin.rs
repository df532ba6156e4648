//! `flowd plugin new` and `flowd plugin wit`: a connector project to start from, in the
//! author's language, and the WIT this binary serves.

use super::templates::{self, Lang, TemplateWorld};
use super::{EXIT_CONFIG, EXIT_FAILED, EXIT_OK};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct NewArgs {
    /// The connector's name; also the project's directory (created; must not exist or be empty).
    name: String,
    /// The language of the project.
    #[arg(long, value_enum)]
    lang: Lang,
    /// The world it implements: a step (`action`) or a trigger.
    #[arg(long, value_enum, default_value_t = TemplateWorld::Action)]
    world: TemplateWorld,
    /// Where to create the project directory (default: the current directory).
    #[arg(long, value_name = "DIR", default_value = ".")]
    into: PathBuf,
}

#[derive(Args)]
pub struct WitArgs {
    /// The directory the `.wit` files are written to.
    #[arg(default_value = "wit")]
    dir: PathBuf,
}

pub fn new(args: NewArgs) -> u8 {
    if !crate::config::valid_name(&args.name) {
        eprintln!(
            "error: {:?} is not a connector name ({})",
            args.name,
            crate::config::NAME_RULE
        );
        return EXIT_CONFIG;
    }
    let dir = args.into.join(&args.name);
    if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        eprintln!("error: {} exists and is not empty", dir.display());
        return EXIT_CONFIG;
    }
    let files = templates::files(args.lang, args.world, &args.name);
    if let Err(e) = write_all(&dir, &files) {
        eprintln!("error: {e}");
        return EXIT_FAILED;
    }
    let readme = files
        .iter()
        .find(|(p, _)| p == "README.md")
        .map(|(_, t)| t.as_str())
        .unwrap_or_default();
    println!("created {} ({} files)", dir.display(), files.len());
    for line in readme.lines().take(2) {
        println!("  {line}");
    }
    EXIT_OK
}

pub fn wit(args: WitArgs) -> u8 {
    let files: Vec<(String, String)> = templates::WIT
        .iter()
        .map(|(f, t)| ((*f).to_string(), (*t).to_string()))
        .collect();
    match write_all(&args.dir, &files) {
        Ok(()) => {
            println!(
                "wrote {} ({}: flowd:connector@0.1.0)",
                args.dir.display(),
                files.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>().join(", ")
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}

fn write_all(dir: &Path, files: &[(String, String)]) -> Result<(), String> {
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

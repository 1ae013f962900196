//! The plugin dev kit: `opensports plugin new | build | test`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use opensports_proto::{Event, Sport};

use super::kits::{self, Lang};
use crate::plugin::harness::{Harness, SnapshotCheck};
use crate::sim;

/// Release settings for plugins, passed to cargo for the wasm build only: optimised for speed
/// (a plugin runs on every event; `opt-level = "s"` made the box score 1.5x slower for a
/// 130 KB module), fat LTO, stripped, abort on panic (the host turns the trap into a counted
/// failure).
const WASM_PROFILE: [(&str, &str); 6] = [
    ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3"),
    ("CARGO_PROFILE_RELEASE_LTO", "true"),
    ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1"),
    ("CARGO_PROFILE_RELEASE_DEBUG", "false"),
    ("CARGO_PROFILE_RELEASE_STRIP", "true"),
    ("CARGO_PROFILE_RELEASE_PANIC", "abort"),
];

/// Rust flags for the wasm build that make it reproducible: panic locations of dependencies
/// carry the cargo home's absolute path, mapped to `/cargo` (workspace sources are already
/// relative). The same sources and toolchain then give the same bytes on any machine, which
/// the test of the built-in plugins (`server/builtin/plugins`) relies on.
fn reproducible_flags() -> String {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    match home {
        Some(h) => format!("--remap-path-prefix={}=/cargo", h.display()),
        None => String::new(),
    }
}

/// Builds plugin crates for wasm32-unknown-unknown in release and returns their `.wasm` files.
/// `dir` is where cargo runs (a plugin crate or the workspace); `packages` empty = the crate in
/// `dir`; `target_dir` overrides cargo's (e.g. to share a build cache). Crates marked
/// `[package.metadata.opensports] abi = 2` are built on their own (cargo would otherwise
/// enable the SDK's `component` feature for every plugin of the build, changing the v1
/// modules' bytes) and made into components.
pub fn build(
    dir: &Path,
    packages: &[String],
    target_dir: Option<&Path>,
    quiet: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    if packages.is_empty() {
        let wasm = cargo_build(dir, packages, target_dir, quiet)?;
        return wasm.iter().map(|path| componentize(path, false)).collect();
    }
    let v2 = component_packages(dir)?;
    let (components, modules): (Vec<String>, Vec<String>) =
        packages.iter().cloned().partition(|p| v2.contains(p));
    let mut wasm = Vec::new();
    if !modules.is_empty() {
        wasm.extend(cargo_build(dir, &modules, target_dir, quiet)?);
    }
    if !components.is_empty() {
        for path in cargo_build(dir, &components, target_dir, quiet)? {
            wasm.push(componentize(&path, true)?);
        }
    }
    wasm.sort();
    Ok(wasm)
}

/// The packages of the workspace at `dir` marked `[package.metadata.opensports] abi = 2`.
fn component_packages(dir: &Path) -> anyhow::Result<Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(dir)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .stderr(std::process::Stdio::null())
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed in {} (exit {})", dir.display(), out.status);
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["opensports"]["abi"] == 2)
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect())
}

fn cargo_build(
    dir: &Path,
    packages: &[String],
    target_dir: Option<&Path>,
    quiet: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "--message-format",
            "json-render-diagnostics",
        ])
        .envs(WASM_PROFILE)
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS", reproducible_flags());
    for p in packages {
        cmd.args(["-p", p]);
    }
    if let Some(t) = target_dir {
        cmd.arg("--target-dir").arg(t);
    }
    if quiet {
        cmd.stderr(std::process::Stdio::null());
    }
    let out = cmd.output().context("running cargo (is the Rust toolchain installed?)")?;
    if !out.status.success() {
        bail!(
            "cargo build for wasm32-unknown-unknown failed (exit {}); is the target installed? `rustup target add wasm32-unknown-unknown`",
            out.status
        );
    }
    let mut wasm = Vec::new();
    for line in out.stdout.lines() {
        let line = line?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        for f in msg["filenames"].as_array().into_iter().flatten() {
            if let Some(f) = f.as_str().filter(|f| f.ends_with(".wasm")) {
                wasm.push(PathBuf::from(f));
            }
        }
    }
    wasm.sort();
    wasm.dedup();
    Ok(wasm)
}

/// A module built with the SDK's `component` feature carries its WIT world in a
/// `component-type` custom section (wit-bindgen): it is made into the component (ABI v2) at
/// `components/<file>` beside cargo's output, and that path returned. Cargo's own file is never
/// changed (cargo may link it again at any build, and another build may be reading it). Other
/// modules (ABI v1) are returned as they are, unless `required`.
fn componentize(path: &Path, required: bool) -> anyhow::Result<PathBuf> {
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    let has_world = wasmparser::Parser::new(0).parse_all(&bytes).any(
        |p| matches!(p, Ok(wasmparser::Payload::CustomSection(c)) if c.name().starts_with("component-type")),
    );
    if !has_world {
        if required {
            bail!(
                "{}: marked abi = 2 but carries no WIT world: depend on opensports-plugin-sdk with features = [\"component\"] and use export_component!",
                path.display()
            );
        }
        return Ok(path.to_path_buf());
    }
    let component = wit_component::ComponentEncoder::default()
        .module(&bytes)
        .and_then(|e| e.validate(true).encode())
        .with_context(|| format!("{}: making the component (ABI v2)", path.display()))?;
    let (dir, file) =
        (path.parent().unwrap_or(Path::new(".")).join("components"), path.file_name().unwrap_or_default());
    let out = dir.join(file);
    // Written aside and renamed: a reader sees the old component or the new one, whole.
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&tmp, component))
        .and_then(|()| std::fs::rename(&tmp, &out))
        .with_context(|| out.display().to_string())?;
    Ok(out)
}

/// The shipped plugins: every crate under `<workspace>/plugins/`.
pub fn shipped(workspace: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workspace.join("plugins"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").exists() && e.path().join("src/lib.rs").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The workspace this binary was built from, when it is still there (demo and tests).
pub fn source_workspace() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.to_path_buf();
    dir.join("plugins").is_dir().then_some(dir)
}

/// `opensports plugin build`: builds a plugin of any language (Rust crates and workspaces with
/// cargo; TypeScript and Python with their kits, [`kits`]) and prints each `.wasm`'s size.
pub fn build_cmd(dir: &Path, packages: &[String], target_dir: Option<&Path>) -> anyhow::Result<()> {
    let files = match Lang::detect(dir) {
        Some(Lang::Ts) => vec![kits::build_ts(dir)?],
        Some(Lang::Python) => vec![kits::build_python(dir)?],
        Some(Lang::Rust) => build(dir, packages, target_dir, false)?,
        None => bail!(
            "{}: no Cargo.toml, package.json or pyproject.toml: not a plugin (create one with `opensports plugin new`)",
            dir.display()
        ),
    };
    if files.is_empty() {
        bail!("no .wasm was produced: is the crate's `crate-type` [\"cdylib\", \"rlib\"]?");
    }
    for f in &files {
        let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        println!("{:>8.1} KiB  {}", size as f64 / 1024.0, f.display());
    }
    Ok(())
}

/// `opensports plugin new NAME --lang rust|ts|python`: a plugin with a test that builds as is.
pub fn new_cmd(name: &str, parent: &Path, lang: Lang) -> anyhow::Result<()> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        bail!("plugin names are lowercase letters, digits and '-' (they become a topic level)");
    }
    let dir = parent.join(name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    match lang {
        Lang::Rust => {}
        Lang::Ts | Lang::Python => {
            if lang == Lang::Ts {
                kits::new_ts(name, &dir)?;
            } else {
                kits::new_python(name, &dir)?;
            }
            let test = if lang == Lang::Ts { "npm test" } else { "python3 -m pytest" };
            println!("created {}", dir.display());
            println!("build it:  opensports plugin build {}", dir.display());
            println!("test it:   cd {} && {test}    (in process; needs `opensports` on PATH)", dir.display());
            println!(
                "try it:    opensports plugin test {}/build/{}.wasm --sim basketball",
                dir.display(),
                name.replace('-', "_")
            );
            return Ok(());
        }
    }
    std::fs::create_dir_all(dir.join("src"))?;
    let in_workspace =
        parent.ends_with("plugins") && parent.parent().is_some_and(|w| w.join("plugin-sdk").is_dir());
    // Outside this repository the SDK is written beside the plugin (the binary carries it), so
    // a plugin builds with only the released binary and the Rust toolchain.
    let sdk = if in_workspace {
        "opensports-plugin-sdk = { workspace = true }".to_string()
    } else {
        kits::write_rust_kit(&dir.join("opensports-kit"))?
    };
    let (version, workspace) = if in_workspace {
        ("version.workspace = true\nedition.workspace = true", "")
    } else {
        (
            "version = \"0.1.0\"\nedition = \"2024\"",
            "\n# A workspace of its own: the plugin builds wherever it is.\n[workspace]\n",
        )
    };
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\n{version}\npublish = false\n\n[lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n[dependencies]\n{sdk}\nserde = {{ version = \"1\", features = [\"derive\"] }}\n{workspace}"
        ),
    )?;
    if in_workspace {
        println!("add \"plugins/{name}\" to the workspace members in Cargo.toml");
    }
    std::fs::write(dir.join("src/lib.rs"), TEMPLATE)?;
    println!("created {}", dir.display());
    println!("build it:  opensports plugin build {}", dir.display());
    println!("try it:    opensports plugin test <the .wasm> --sim basketball");
    Ok(())
}

const TEMPLATE: &str = r#"//! An OpenSports plugin. Outputs: `events` → `{"count": N}` after every event of its sports.

use opensports_plugin_sdk::proto::Sport;
use opensports_plugin_sdk::proto::event::ArchivedEvent;
use opensports_plugin_sdk::{Ctx, Plugin, export_plugin, restore_json, snapshot_json};
use serde::{Deserialize, Serialize};

/// One game's state. Everything later outputs depend on is here, so the server can snapshot
/// it and restore it after a restart instead of replaying the game (`snapshot`/`restore`).
#[derive(Default, Serialize, Deserialize)]
pub struct MyPlugin {
    count: u64,
}

#[derive(Serialize)]
struct Count {
    count: u64,
}

impl Plugin for MyPlugin {
    const SPORTS: &'static [Sport] = &Sport::ALL;

    fn on_event(&mut self, ctx: &mut Ctx<'_>, _event: &ArchivedEvent) {
        self.count += 1;
        let _ = ctx.emit("events", &Count { count: self.count });
    }

    fn snapshot(&self) -> Vec<u8> {
        snapshot_json(self)
    }

    fn restore(&mut self, bytes: &[u8]) -> bool {
        restore_json(self, bytes)
    }
}

export_plugin!(MyPlugin);
"#;

/// Where `plugin test` takes its events from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A simulated game of this sport (seed 1).
    Sim(Sport, u64),
    /// A JSONL file of events in the wire JSON format, or a provider's feed file.
    Replay(PathBuf),
}

pub fn load_events(source: &Source) -> anyhow::Result<Vec<Event>> {
    match source {
        Source::Sim(sport, seed) => {
            Ok(sim::generate(*sport, *seed, 0).events.into_iter().map(|t| t.event).collect())
        }
        Source::Replay(path) => {
            let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
            if let Ok(format) = crate::feeds::detect(&bytes) {
                // A provider's feed file (NBA, StatsBomb, ...), read as `opensports replay` does.
                let stem = path.file_stem().and_then(|s| s.to_str());
                let opts = crate::feeds::Options { file_stem: stem, ..Default::default() };
                let parsed = crate::feeds::parse(format, &bytes, &opts)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                return Ok(parsed.game.events.into_iter().map(|t| t.event).collect());
            }
            let file = std::fs::File::open(path).with_context(|| path.display().to_string())?;
            let mut events = Vec::new();
            for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                let e: Event =
                    serde_json::from_str(&line).with_context(|| format!("{}:{}", path.display(), i + 1))?;
                events.push(e);
            }
            Ok(events)
        }
    }
}

/// `opensports plugin events`: the events `plugin test` would run a plugin on, as JSONL (the
/// wire JSON form): what the kits' in-process test sessions feed a plugin.
pub fn events_cmd(source: &Source) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = load_events(source)?.iter().try_for_each(|e| {
        serde_json::to_writer(&mut out, e)?;
        out.write_all(b"\n")
    });
    match written.and_then(|()| out.flush()) {
        // The reader went away (`| head`): not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// `opensports plugin test`: runs a plugin offline; prints or writes JSONL; with `expect`, diffs
/// against a golden file and fails on the first difference. Then checks that a snapshot taken
/// mid-stream and restored gives the same outputs as an uninterrupted run.
pub fn test_cmd(
    wasm: &Path,
    source: &Source,
    out: Option<&Path>,
    expect: Option<&Path>,
    config: &str,
    memory_mib: Option<usize>,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(wasm).with_context(|| wasm.display().to_string())?;
    let name =
        wasm.file_stem().map(|s| s.to_string_lossy().replace('_', "-")).unwrap_or_else(|| "plugin".into());
    let cache = std::env::temp_dir().join("opensports-plugin-cache");
    // The models of ./models (or of the source tree), as the server would have them.
    let dir = Some(PathBuf::from("models"))
        .filter(|d| d.join("manifest.toml").exists())
        .or_else(|| source_workspace().map(|w| w.join("models")));
    let models =
        std::sync::Arc::new(dir.map(|d| crate::model::ModelRegistry::load(&d).0).unwrap_or_default());
    let mut h = Harness::new(&name, &bytes, config.as_bytes(), &cache, &models, memory_mib)
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let events = load_events(source)?;
    let lines: Vec<String> = match h.run(&events) {
        Ok(lines) => lines.iter().map(|l| l.to_jsonl()).collect(),
        Err((seq, e)) => bail!("{name} failed on event seq {seq}: {e} ({})", e.kind()),
    };
    eprintln!(
        "{name}: {} events in, {} outputs; linear memory {} KiB (cap {} MiB: `memory_mib` of its [[plugins.load]] entry)",
        events.len(),
        lines.len(),
        h.memory_bytes() / 1024,
        memory_mib.unwrap_or(crate::config::PluginsConfig::default().memory_mib)
    );
    if let Some(path) = out {
        let mut f = std::fs::File::create(path)?;
        for l in &lines {
            writeln!(f, "{l}")?;
        }
    } else if expect.is_none() {
        let mut stdout = std::io::stdout().lock();
        for l in &lines {
            if writeln!(stdout, "{l}").is_err() {
                break;
            }
        }
    }
    if let Some(golden) = expect {
        let want: Vec<String> = std::fs::read_to_string(golden)
            .with_context(|| golden.display().to_string())?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        if let Some(i) = (0..want.len().max(lines.len())).find(|i| want.get(*i) != lines.get(*i)) {
            bail!(
                "output differs from {} at line {}:\n  expected: {}\n  got:      {}",
                golden.display(),
                i + 1,
                want.get(i).map(String::as_str).unwrap_or("<end of file>"),
                lines.get(i).map(String::as_str).unwrap_or("<end of output>")
            );
        }
        eprintln!("matches {} ({} lines)", golden.display(), want.len());
    }
    // What a server restart does to it: snapshot mid-stream, restore, the same outputs.
    match h.check_snapshots(&events) {
        Ok(SnapshotCheck::Identical { at, of }) => {
            eprintln!("snapshot: restored after event {at} of {of}; the rest of the outputs are identical")
        }
        Ok(SnapshotCheck::Unsupported) => eprintln!(
            "snapshot: none (no snapshot/restore exports, or empty state): a server restart replays this plugin's games whole"
        ),
        Err(e) => bail!("{name}: snapshot and restore change the outputs: {e}"),
    }
    Ok(())
}

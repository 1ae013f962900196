//! The plugin kits for TypeScript and Python (ABI v2), carried by the binary: `plugin new
//! --lang ts|python` writes the kit beside the new plugin (no checkout of this repository and
//! no package of ours in a registry needed), and `plugin build` builds a plugin of any language
//! into its `.wasm`, installing the language's tools from its registry when they are missing.
//!
//! The kits' sources are `plugin-sdk/ts`, `plugin-sdk/python` and the WIT `plugin-sdk/wit`;
//! the shipped examples use them in place.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// The ABI v2 contract.
pub const WIT: &str = include_str!("../../../plugin-sdk/wit/plugin.wit");

/// componentize-py, pinned: the Python kit is tested with this version.
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// `(path in the kit, content)` of the TypeScript kit (`@opensports/plugin`).
const TS_KIT: &[(&str, &str)] = &[
    ("package.json", include_str!("../../../plugin-sdk/ts/package.json")),
    ("bin/build.mjs", include_str!("../../../plugin-sdk/ts/bin/build.mjs")),
    ("src/index.ts", include_str!("../../../plugin-sdk/ts/src/index.ts")),
    ("src/testing.ts", include_str!("../../../plugin-sdk/ts/src/testing.ts")),
    ("src/schema.ts", include_str!("../../../plugin-sdk/ts/src/schema.ts")),
    ("wit/plugin.wit", WIT),
];

/// `(path in the kit, content)` of the Python kit (`opensports_plugin`).
const PY_KIT: &[(&str, &str)] = &[
    (
        "opensports_plugin/__init__.py",
        include_str!("../../../plugin-sdk/python/opensports_plugin/__init__.py"),
    ),
    (
        "opensports_plugin/component.py",
        include_str!("../../../plugin-sdk/python/opensports_plugin/component.py"),
    ),
    ("opensports_plugin/testing.py", include_str!("../../../plugin-sdk/python/opensports_plugin/testing.py")),
    ("opensports_plugin/events.py", include_str!("../../../plugin-sdk/python/opensports_plugin/events.py")),
    ("opensports_plugin/py.typed", ""),
];

/// `(path in the kit, content)` of the Rust SDK (ABI v1) and the event types it shares with the
/// server, with manifests that stand alone (no workspace).
const RUST_KIT: &[(&str, &str)] = &[
    ("opensports-plugin-sdk/Cargo.toml", RUST_SDK_MANIFEST),
    ("opensports-plugin-sdk/README.md", include_str!("../../../plugin-sdk/README.md")),
    ("opensports-plugin-sdk/src/lib.rs", include_str!("../../../plugin-sdk/src/lib.rs")),
    ("opensports-plugin-sdk/src/abi.rs", include_str!("../../../plugin-sdk/src/abi.rs")),
    ("opensports-plugin-sdk/src/testing.rs", include_str!("../../../plugin-sdk/src/testing.rs")),
    ("opensports-plugin-sdk/src/component.rs", include_str!("../../../plugin-sdk/src/component.rs")),
    ("opensports-plugin-sdk/wit/plugin.wit", WIT),
    ("opensports-proto/Cargo.toml", RUST_PROTO_MANIFEST),
    ("opensports-proto/src/basketball.rs", include_str!("../../proto/src/basketball.rs")),
    ("opensports-proto/src/codec.rs", include_str!("../../proto/src/codec.rs")),
    ("opensports-proto/src/control.rs", include_str!("../../proto/src/control.rs")),
    ("opensports-proto/src/domain.rs", include_str!("../../proto/src/domain.rs")),
    ("opensports-proto/src/error_code.rs", include_str!("../../proto/src/error_code.rs")),
    ("opensports-proto/src/event.rs", include_str!("../../proto/src/event.rs")),
    ("opensports-proto/src/f1.rs", include_str!("../../proto/src/f1.rs")),
    ("opensports-proto/src/football.rs", include_str!("../../proto/src/football.rs")),
    ("opensports-proto/src/keys.rs", include_str!("../../proto/src/keys.rs")),
    ("opensports-proto/src/lib.rs", include_str!("../../proto/src/lib.rs")),
    ("opensports-proto/src/limits.rs", include_str!("../../proto/src/limits.rs")),
    ("opensports-proto/src/plugin_abi.rs", include_str!("../../proto/src/plugin_abi.rs")),
    ("opensports-proto/src/schema.rs", include_str!("../../proto/src/schema.rs")),
    ("opensports-proto/src/soccer.rs", include_str!("../../proto/src/soccer.rs")),
    ("opensports-proto/src/topic.rs", include_str!("../../proto/src/topic.rs")),
    ("opensports-proto/src/tracking.rs", include_str!("../../proto/src/tracking.rs")),
    ("opensports-proto/src/ws.rs", include_str!("../../proto/src/ws.rs")),
];

const RUST_SDK_MANIFEST: &str = r#"[package]
name = "opensports-plugin-sdk"
version = "0.1.0"
edition = "2024"
description = "Write OpenSports Edge analytics plugins in Rust (written out by `opensports plugin new`)"
publish = false

[dependencies]
opensports-proto = { path = "../opensports-proto", features = ["std"] }
rkyv = { version = "0.8", default-features = false, features = ["alloc", "bytecheck"] }
serde = { version = "1", default-features = false, features = ["derive", "std"] }
serde_json = { version = "1", features = ["float_roundtrip"] }
wit-bindgen = { version = "0.46", optional = true, default-features = false, features = ["macros", "realloc"] }

[features]
# ABI v2: `export_component!` builds a component of the world `opensports:plugin/plugin@2.0.0`.
component = ["dep:wit-bindgen"]
"#;

// `schema` and `graphql` are the server's features (JSON Schema and GraphQL derives); a plugin
// never enables them.
const RUST_PROTO_MANIFEST: &str = r#"[package]
name = "opensports-proto"
version = "0.1.0"
edition = "2024"
description = "OpenSports Edge event types (written out by `opensports plugin new`)"
publish = false

[features]
default = ["std"]
std = ["serde/std", "serde_json/std", "rkyv/std"]
schema = []
graphql = []

[dependencies]
rkyv = { version = "0.8", default-features = false, features = ["alloc", "bytecheck"] }
serde = { version = "1", default-features = false, features = ["derive", "alloc"] }
serde_json = { version = "1", default-features = false, features = ["alloc"] }
"#;

/// Writes the Rust SDK into `dir` (`opensports-kit/`); returns the dependency line for the
/// plugin's manifest.
pub fn write_rust_kit(dir: &Path) -> anyhow::Result<String> {
    write_all(dir, RUST_KIT)?;
    Ok("opensports-plugin-sdk = { path = \"opensports-kit/opensports-plugin-sdk\" }".into())
}

/// A plugin's language, from the files in its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Ts,
    Python,
}

impl Lang {
    pub fn parse(s: &str) -> anyhow::Result<Lang> {
        Ok(match s {
            "rust" | "rs" => Lang::Rust,
            "ts" | "typescript" | "js" => Lang::Ts,
            "python" | "py" => Lang::Python,
            other => bail!("unknown language {other:?}: rust, ts or python"),
        })
    }

    /// The language of the plugin in `dir`, if it is one.
    pub fn detect(dir: &Path) -> Option<Lang> {
        if dir.join("Cargo.toml").exists() {
            Some(Lang::Rust)
        } else if dir.join("package.json").exists() {
            Some(Lang::Ts)
        } else if dir.join("pyproject.toml").exists() {
            Some(Lang::Python)
        } else {
            None
        }
    }
}

fn write_all(dir: &Path, files: &[(&str, &str)]) -> anyhow::Result<()> {
    for (path, content) in files {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, content).with_context(|| p.display().to_string())?;
    }
    Ok(())
}

/// `plugin new NAME --lang ts`: the plugin, a test, and the kit in `opensports-kit/`.
pub fn new_ts(name: &str, dir: &Path) -> anyhow::Result<()> {
    write_all(&dir.join("opensports-kit"), TS_KIT)?;
    let package = format!(
        r#"{{
  "name": "{name}",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "opensports": {{ "name": "{name}", "entry": "src/plugin.ts" }},
  "scripts": {{
    "build": "opensports-plugin-build",
    "test": "node --import tsx --test test/*.test.ts"
  }},
  "dependencies": {{ "@opensports/plugin": "file:./opensports-kit" }},
  "devDependencies": {{ "@types/node": "^20.19.0", "tsx": "^4.20.0", "typescript": "~5.9.3" }}
}}
"#
    );
    write_all(
        dir,
        &[
            ("package.json", &package),
            ("tsconfig.json", TS_CONFIG),
            ("src/plugin.ts", TS_TEMPLATE),
            ("test/plugin.test.ts", TS_TEST),
            (".gitignore", "node_modules/\nbuild/\n"),
            // The kit is copied into node_modules like a registry package (with its own tools).
            (".npmrc", "install-links=true\n"),
        ],
    )?;
    Ok(())
}

/// `plugin new NAME --lang python`: the plugin module, a pytest test, and the kit package.
pub fn new_python(name: &str, dir: &Path) -> anyhow::Result<()> {
    let module = name.replace('-', "_");
    write_all(dir, PY_KIT)?;
    let pyproject = format!(
        "[project]\nname = \"{name}\"\nversion = \"0.1.0\"\nrequires-python = \">=3.10\"\n\n\
         # `opensports plugin build` reads this: the module holding `PLUGIN`, and the plugin's name.\n\
         [tool.opensports]\nname = \"{name}\"\nmodule = \"{module}\"\n\n\
         [tool.pytest.ini_options]\npythonpath = [\".\"]\n"
    );
    let test = PY_TEST.replace("MODULE", &module).replace("NAME", name);
    write_all(
        dir,
        &[
            ("pyproject.toml", &pyproject),
            (&format!("{module}.py"), PY_TEMPLATE),
            (&format!("tests/test_{module}.py"), &test),
            (".gitignore", "build/\n.venv/\n__pycache__/\n"),
        ],
    )?;
    Ok(())
}

fn found(cmd: &str) -> bool {
    Command::new(cmd).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = cmd.stderr(Stdio::inherit()).output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed (exit {})", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Builds the TypeScript plugin in `dir` (npm, esbuild, componentize-js); returns its `.wasm`.
pub fn build_ts(dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = &std::fs::canonicalize(dir).with_context(|| dir.display().to_string())?;
    if !found("npm") {
        bail!("building a TypeScript plugin needs Node.js 20+ and npm (https://nodejs.org)");
    }
    if !dir.join("node_modules/@opensports/plugin").exists() {
        let ci = dir.join("package-lock.json").exists();
        eprintln!(
            "installing the TypeScript kit's tools from npm (esbuild, componentize-js){}...",
            if ci { " with npm ci" } else { "" }
        );
        run(
            Command::new("npm")
                .current_dir(dir)
                .args([if ci { "ci" } else { "install" }, "--no-audit", "--no-fund"])
                .stdout(Stdio::null()),
            "npm install",
        )?;
    }
    let wit = dir.join("build/plugin.wit");
    std::fs::create_dir_all(dir.join("build"))?;
    std::fs::write(&wit, WIT)?;
    let out = run(
        Command::new("npm").current_dir(dir).args(["run", "-s", "build"]).env("OPENSPORTS_WIT", &wit),
        "npm run build",
    )?;
    let path =
        out.lines().rev().find(|l| l.ends_with(".wasm")).context("npm run build printed no .wasm path")?;
    Ok(PathBuf::from(path.trim()))
}

/// `[tool.opensports]` of a Python plugin's pyproject.toml.
#[derive(Debug, serde::Deserialize)]
struct PyTool {
    name: String,
    module: String,
    /// Where the `opensports_plugin` package is (default: the plugin's directory).
    #[serde(default)]
    kit: Option<PathBuf>,
}

fn py_tool(dir: &Path) -> anyhow::Result<PyTool> {
    let path = dir.join("pyproject.toml");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let doc: toml::Table = toml::from_str(&text).with_context(|| path.display().to_string())?;
    let tool = doc
        .get("tool")
        .and_then(|t| t.get("opensports"))
        .with_context(|| format!("{}: no [tool.opensports] table (name, module)", path.display()))?;
    tool.clone().try_into().with_context(|| format!("{}: [tool.opensports]", path.display()))
}

/// componentize-py: on `PATH`, in the plugin's `.venv`, or installed there from PyPI now.
fn componentize_py(dir: &Path) -> anyhow::Result<PathBuf> {
    if found("componentize-py") {
        return Ok(PathBuf::from("componentize-py"));
    }
    let venv = dir.join(".venv");
    let bin = venv.join("bin/componentize-py");
    if !bin.exists() {
        eprintln!("installing {COMPONENTIZE_PY} from PyPI into {}...", venv.display());
        let python = if found("python3") { "python3" } else { "python" };
        run(
            Command::new(python).args(["-m", "venv"]).arg(&venv),
            "python3 -m venv (Python 3.10+ is needed)",
        )?;
        run(
            Command::new(venv.join("bin/pip")).args([
                "install",
                "-q",
                "--disable-pip-version-check",
                COMPONENTIZE_PY,
            ]),
            "pip install componentize-py",
        )?;
    }
    Ok(bin)
}

/// Builds the Python plugin in `dir` with componentize-py; returns its `.wasm`.
pub fn build_python(dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = &std::fs::canonicalize(dir).with_context(|| dir.display().to_string())?;
    let tool = py_tool(dir)?;
    let cpy = componentize_py(dir)?;
    let build = dir.join("build");
    let app = build.join("app");
    std::fs::create_dir_all(&app)?;
    std::fs::write(build.join("plugin.wit"), WIT)?;
    std::fs::write(
        app.join("opensports_app.py"),
        format!(
            "# Generated by `opensports plugin build`: the component's entry.\n\
             from {} import PLUGIN\nfrom opensports_plugin.component import world\n\nWitWorld = world(PLUGIN)\n",
            tool.module
        ),
    )?;
    let kit = dir.join(tool.kit.unwrap_or_else(|| PathBuf::from(".")));
    let out = build.join(format!("{}.wasm", tool.name.replace('-', "_")));
    run(
        Command::new(cpy)
            .current_dir(dir)
            .arg("-d")
            .arg(build.join("plugin.wit"))
            .args(["-w", "plugin", "componentize", "opensports_app", "-p"])
            .arg(&app)
            .args(["-p", "."])
            .arg("-p")
            .arg(&kit)
            .arg("-o")
            .arg(&out)
            .stdout(Stdio::null()),
        "componentize-py",
    )?;
    Ok(out)
}

const TS_CONFIG: &str = r#"{
  "compilerOptions": {
    "target": "ES2022",
    "module": "ESNext",
    "moduleResolution": "Bundler",
    "allowImportingTsExtensions": true,
    "noEmit": true,
    "strict": true,
    "skipLibCheck": true,
    "types": ["node"]
  },
  "include": ["src", "test"]
}
"#;

const TS_TEMPLATE: &str = r#"// An OpenSports plugin. Outputs: `events` → `{"count": N}` after every event of its sports.
import { definePlugin, type Ctx, type Event } from '@opensports/plugin';

class Counter {
  count = 0;

  onEvent(ctx: Ctx, _event: Event): void {
    this.count += 1;
    ctx.emit('events', { count: this.count });
  }

  // Everything later outputs depend on, so a restart restores instead of replaying.
  snapshot(): unknown {
    return { count: this.count };
  }

  restore(state: unknown): void {
    this.count = (state as { count: number }).count;
  }
}

export default definePlugin({ sports: ['basketball', 'football', 'soccer', 'f1'], create: () => new Counter() });
"#;

const TS_TEST: &str = r#"import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Session, events } from '@opensports/plugin/testing';
import plugin from '../src/plugin.ts';

test('counts every event of a simulated game', () => {
  const s = new Session(plugin, { name: 'plugin' });
  const evs = events({ sim: 'basketball', seed: 1 });
  const out = s.feed(evs);
  assert.equal(out.length, evs.length);
  assert.deepEqual(out.at(-1)?.data, { count: evs.length });
});
"#;

const PY_TEMPLATE: &str = r#""""An OpenSports plugin. Outputs: `events` -> {"count": N} after every event of its sports."""

from opensports_plugin import Ctx, Plugin
from opensports_plugin.events import Event


class Counter(Plugin):
    SPORTS = ("basketball", "football", "soccer", "f1")

    def __init__(self, config):
        super().__init__(config)
        self.count = 0

    def on_event(self, ctx: Ctx, event: Event) -> None:
        self.count += 1
        ctx.emit("events", {"count": self.count})

    # Everything later outputs depend on, so a restart restores instead of replaying.
    def snapshot(self):
        return {"count": self.count}

    def restore(self, state) -> None:
        self.count = state["count"]


PLUGIN = Counter
"#;

const PY_TEST: &str = r#"from opensports_plugin.testing import Session, events

from MODULE import PLUGIN


def test_counts_every_event_of_a_simulated_game():
    s = Session(PLUGIN, name="NAME")
    evs = events(sim="basketball", seed=1)
    out = s.feed(evs)
    assert len(out) == len(evs)
    assert out[-1]["data"] == {"count": len(evs)}
"#;

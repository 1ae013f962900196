//! The shipped plugins and models, embedded in the binary so it serves them from any directory
//! with no other files: the `.wasm` from `server/builtin/plugins/` (committed, built by
//! `opensports plugin build`: the four Rust plugins with reproducible flags, a test rebuilds
//! them and compares the bytes; the TypeScript and Python examples, whose toolchains do not
//! build byte for byte, a test checks against the examples' golden outputs) and `models/`
//! (manifest, ONNX files, ratings seed).
//!
//! At start they are written to `data_dir/builtin/` (only files whose bytes differ) and loaded
//! from there by the ordinary loaders: plugins when `[[plugins.load]]` is empty and
//! `plugins.builtin = true`, models when `models.dir` has no `manifest.toml` and
//! `models.builtin = true` (both the default). Configured ones always win.

use std::path::{Path, PathBuf};

/// `(file name, bytes)` of the shipped plugins.
pub const PLUGINS: &[(&str, &[u8])] = &[
    ("basketball_boxscore.wasm", include_bytes!("../builtin/plugins/basketball_boxscore.wasm")),
    ("football_drives.wasm", include_bytes!("../builtin/plugins/football_drives.wasm")),
    ("soccer_shots.wasm", include_bytes!("../builtin/plugins/soccer_shots.wasm")),
    ("f1_timing.wasm", include_bytes!("../builtin/plugins/f1_timing.wasm")),
    // ABI v2 components: plugins/basketball-runs-ts and plugins/soccer-passes-py.
    ("basketball_runs.wasm", include_bytes!("../builtin/plugins/basketball_runs.wasm")),
    ("soccer_passes.wasm", include_bytes!("../builtin/plugins/soccer_passes.wasm")),
];

/// Memory cap of the built-in plugins that carry a language runtime (TypeScript's
/// StarlingMonkey about 9 MiB, CPython about 14 MiB of linear memory at rest), MiB.
const RUNTIME_PLUGIN_MEMORY_MIB: usize = 64;

/// `(file name, bytes)` of the shipped models.
pub const MODELS: &[(&str, &[u8])] = &[
    ("manifest.toml", include_bytes!("../../models/manifest.toml")),
    ("ratings.json", include_bytes!("../../models/ratings.json")),
    ("nba_wp.onnx", include_bytes!("../../models/nba_wp.onnx")),
    ("nfl_wp.onnx", include_bytes!("../../models/nfl_wp.onnx")),
    ("nfl_ep.onnx", include_bytes!("../../models/nfl_ep.onnx")),
    ("soccer_xg.onnx", include_bytes!("../../models/soccer_xg.onnx")),
    ("soccer_xg_geo.onnx", include_bytes!("../../models/soccer_xg_geo.onnx")),
    ("f1_win.onnx", include_bytes!("../../models/f1_win.onnx")),
    ("f1_podium.onnx", include_bytes!("../../models/f1_podium.onnx")),
];

/// Writes `files` into `dir` (creating it), leaving files that already hold the same bytes;
/// returns their paths.
pub fn install(dir: &Path, files: &[(&str, &[u8])]) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut paths = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        let path = dir.join(name);
        if std::fs::read(&path).ok().as_deref() != Some(*bytes) {
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &path)?;
        }
        paths.push(path);
    }
    Ok(paths)
}

/// Applies the built-in defaults to `config` (see the module docs); returns what was used, for
/// the start-up log.
pub fn apply(config: &mut crate::Config) -> std::io::Result<Vec<String>> {
    let mut used = Vec::new();
    let root = config.server.data_dir.join("builtin");
    if config.plugins.load.is_empty() && config.plugins.builtin {
        let dir = root.join("plugins");
        config.plugins.load = install(&dir, PLUGINS)?
            .into_iter()
            .map(|path| {
                let v2 = std::fs::read(&path).is_ok_and(|b| crate::plugin::component::is_component(&b));
                let memory_mib = v2.then_some(RUNTIME_PLUGIN_MEMORY_MIB);
                crate::config::PluginEntry { memory_mib, ..crate::config::PluginEntry::new(path) }
            })
            .collect();
        used.push(format!("{} plugins built into the binary (in {})", PLUGINS.len(), dir.display()));
    }
    if config.models.builtin && !config.models.dir.join("manifest.toml").exists() {
        let dir = root.join("models");
        install(&dir, MODELS)?;
        used.push(format!(
            "the models built into the binary (in {}; {} has no manifest.toml)",
            dir.display(),
            config.models.dir.display()
        ));
        config.models.dir = dir;
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_writes_once_and_mends_a_changed_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let files: &[(&str, &[u8])] = &[("a.bin", b"one"), ("b.bin", b"two")];
        let paths = install(dir.path(), files).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(paths.len(), 2);
        std::fs::write(&paths[0], b"tampered").unwrap_or_else(|e| panic!("{e}"));
        install(dir.path(), files).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(&paths[0]).ok().as_deref(), Some(&b"one"[..]));
    }

    #[test]
    fn every_shipped_model_file_is_embedded() {
        let manifest = std::str::from_utf8(MODELS[0].1).unwrap_or_default();
        for line in manifest.lines().filter_map(|l| l.strip_prefix("file = ")) {
            let file = line.trim_matches('"');
            assert!(MODELS.iter().any(|(n, _)| *n == file), "{file} is in the manifest but not embedded");
        }
    }
}

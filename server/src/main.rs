//! `opensports`: parses the command line, binds, and calls the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use opensports_client::{Publisher, PublisherConfig, Trust};
use opensports_proto::Sport;
use opensports_proto::ws::Mode;
use opensports_server::cli;
use opensports_server::sim::Speed;
use opensports_server::{Config, Listeners};

#[derive(Parser)]
#[command(name = "opensports", version, about = "OpenSports Edge: low-latency live sports edge server")]
struct Cli {
    /// The log's format on stderr: `text` (default) or `json` (one object per line, for a log
    /// shipper; with `[telemetry]` on, a refused event's debug line carries the `trace_id` of
    /// its error span). Also `OPENSPORTS_LOG_FORMAT`.
    #[arg(long, global = true, value_parser = ["text", "json"])]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// Overrides of the `[server]` section, shared by `serve` and `demo`.
#[derive(clap::Args)]
struct ServerArgs {
    /// TOML configuration file (see opensports.example.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory: TLS certificate, event log, compiled-plugin cache.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// QUIC ingest address (UDP).
    #[arg(long)]
    quic_listen: Option<SocketAddr>,
    /// HTTP + WebSocket address (TCP).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// PEM certificate chain for QUIC (with --tls-key); default: self-signed in the data dir.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl ServerArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(d) = &self.data_dir {
            c.server.data_dir = d.clone();
        }
        if let Some(a) = self.quic_listen {
            c.server.quic_listen = a;
        }
        if let Some(a) = self.http_listen {
            c.server.http_listen = a;
        }
        if self.tls_cert.is_some() {
            c.server.tls_cert = self.tls_cert.clone();
            c.server.tls_key = self.tls_key.clone();
        }
        c.validate()?;
        Ok(c)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Server + four simulated live games + dashboard, on defaults. No setup.
    Demo {
        #[command(flatten)]
        server: ServerArgs,
        /// Pace of the simulated games: a factor (1 = real time) or `max`.
        #[arg(long, default_value = "10")]
        speed: Speed,
        /// First seed of the simulated games.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Replay this real feed file (see `replay`) instead of simulated games.
        #[arg(long)]
        replay: Option<PathBuf>,
    },
    /// Run the server.
    Serve {
        #[command(flatten)]
        server: ServerArgs,
        /// Only load and validate the configuration, then exit.
        #[arg(long)]
        check_config: bool,
    },
    /// Publish simulated games to a server over QUIC.
    Sim {
        #[command(flatten)]
        to: PublishArgs,
        /// Sports: comma-separated list of basketball, football, soccer, f1, or `all`.
        #[arg(long, default_value = "all")]
        sport: String,
        /// Pace of the games: a factor (1 = real time) or `max`.
        #[arg(long, default_value = "1")]
        speed: Speed,
        /// Seed of the first simulated game (the same seed gives the same game).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Events as JSON instead of rkyv.
        #[arg(long)]
        json: bool,
    },
    /// Replay a real provider feed file over QUIC with its source timing.
    Replay {
        /// The feed file (NBA live play-by-play JSON, ...).
        file: PathBuf,
        /// Feed format (default: detected from the content). Supported: nba-live, nba-stats, statsbomb, wyscout, nfl-gamecenter, f1-live-timing.
        #[arg(long)]
        format: Option<String>,
        /// Pace: a factor of the source timing (1 = as it happened, 10 = ten times faster) or `max`.
        #[arg(long, default_value = "1")]
        speed: Speed,
        /// Game id to publish under (default: from the feed, e.g. `nba-0022000001`).
        #[arg(long)]
        game_id: Option<String>,
        /// The home team's name, for feeds that do not say (StatsBomb, Wyscout).
        #[arg(long)]
        home: Option<String>,
        #[command(flatten)]
        to: PublishArgs,
    },
    /// Plugin dev kit: scaffold, build, test offline.
    Plugin {
        #[command(subcommand)]
        cmd: PluginCmd,
    },
    /// Export one game's logged events (JSONL or CSV).
    Export {
        /// Game id.
        #[arg(long)]
        game: String,
        /// Output format: one JSON event per line, or CSV with one column per field.
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
        format: String,
        /// Output file (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        source: LogSource,
    },
    /// Write a consistent copy of the event log (online through a running server).
    Backup {
        /// Backup file to write.
        #[arg(long)]
        to: PathBuf,
        #[command(flatten)]
        source: LogSource,
    },
    /// Install a backup as the event log of a data dir (server stopped).
    Restore {
        /// Backup file (from `opensports backup`).
        #[arg(long)]
        from: PathBuf,
        /// Data directory to install the log in.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// Replace an existing log (kept as opensports.redb.before-restore).
        #[arg(long)]
        force: bool,
        /// The key ring of an encrypted backup (as `[store.encryption] key_file`).
        #[arg(long, env = "OPENSPORTS_KEY_FILE")]
        key_file: Option<PathBuf>,
    },
    /// Rewrite every value of the event log under the key ring's newest key, or encrypt an
    /// unencrypted log (server stopped). Older keys may leave the ring afterwards.
    Rekey {
        /// Data directory holding the log.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// The key ring: every key the log uses now, the new one last.
        #[arg(long, env = "OPENSPORTS_KEY_FILE")]
        key_file: PathBuf,
    },
    /// Shrink the event log file after retention deleted games (server stopped).
    Compact {
        /// Data directory holding the log.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
    },
    /// API keys on a data dir (server stopped; while it runs use /v1/keys).
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
        /// Data directory holding auth.redb.
        #[arg(long, default_value = "./data", global = true)]
        data_dir: PathBuf,
    },
    /// A game's post-game report from a running server: a PDF (made here, no browser), the
    /// self-contained HTML page, or a summary on stdout.
    Report {
        /// Game id.
        game: String,
        /// Write the report as a PDF to this file.
        #[arg(long)]
        pdf: Option<PathBuf>,
        /// Write the report page (HTML, self-contained) to this file.
        #[arg(long)]
        html: Option<PathBuf>,
        /// The server's URL (https:// when it serves TLS).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// API key or JWT that may read the game (not needed for the server's public topics).
        #[arg(long, env = "OPENSPORTS_TOKEN")]
        token: Option<String>,
        /// For an https:// --url: trust this PEM certificate instead of the system's roots.
        #[arg(long)]
        ca_cert: Option<PathBuf>,
    },
    /// Print the JSON Schema of every wire type (events, control, WebSocket/SSE messages).
    Schema,
    /// Subscribe and print live messages.
    Watch {
        /// Topic patterns, e.g. 'game/+/state' or 'games'.
        #[arg(required = true)]
        patterns: Vec<String>,
        /// The server's URL, as for export and backup (`https://` when it serves TLS; a
        /// `ws://`/`wss://` URL is used as it is).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Show source times in UTC instead of this machine's time zone.
        #[arg(long)]
        utc: bool,
        /// Subscriber API key or JWT (not needed for the server's public topics).
        #[arg(long, env = "OPENSPORTS_TOKEN")]
        token: Option<String>,
        /// Delivery mode: all or latest.
        #[arg(long, default_value = "all", value_parser = ["all", "latest"])]
        mode: String,
        /// Raw JSON, one message per line.
        #[arg(long)]
        json: bool,
    },
}

/// Where `export` and `backup` read the log.
#[derive(clap::Args)]
struct LogSource {
    /// A running server's URL, e.g. http://127.0.0.1:8080 (https:// when it serves TLS).
    #[arg(long)]
    url: Option<String>,
    /// Or the data dir of a stopped server.
    #[arg(long, default_value = "./data", conflicts_with = "url")]
    data_dir: PathBuf,
    /// Admin API key for --url (export and backup are admin operations).
    #[arg(long, env = "OPENSPORTS_KEY", requires = "url")]
    key: Option<String>,
    /// For an https:// --url: trust this PEM certificate (the server's data_dir/tls/cert.pem,
    /// or its CA) instead of the system's roots.
    #[arg(long, requires = "url")]
    ca_cert: Option<PathBuf>,
    /// The key ring of an encrypted log or backup (as `[store.encryption] key_file`).
    #[arg(long, env = "OPENSPORTS_KEY_FILE")]
    key_file: Option<PathBuf>,
}

/// The key ring in `key_file`, when given.
fn seal_from(key_file: Option<PathBuf>) -> anyhow::Result<opensports_server::store::Seal> {
    let cfg = opensports_server::config::EncryptionConfig { key_file, ..Default::default() };
    opensports_server::store::Seal::load(&cfg).map_err(anyhow::Error::msg)
}

impl LogSource {
    fn source(self) -> anyhow::Result<cli::store::Source> {
        Ok(match self.url {
            Some(url) => {
                let ca_pem = self
                    .ca_cert
                    .map(|p| std::fs::read(&p).with_context(|| p.display().to_string()))
                    .transpose()?;
                cli::store::Source::Server(cli::store::Server { url, key: self.key, ca_pem })
            }
            None => cli::store::Source::DataDir(self.data_dir),
        })
    }
}

/// Where `sim` and `replay` publish, and how they trust the server.
#[derive(clap::Args)]
struct PublishArgs {
    /// The server's QUIC ingest address (UDP).
    #[arg(long, default_value = "127.0.0.1:4433")]
    quic: SocketAddr,
    /// Pin the server certificate by SHA-256 (as printed at server start).
    #[arg(long)]
    fingerprint: Option<String>,
    /// Or trust this PEM CA certificate (the server certificate must name `localhost`).
    #[arg(long, conflicts_with = "fingerprint")]
    ca_cert: Option<PathBuf>,
    /// Or pin the certificate found in this local data dir.
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Publisher API key (or a static `ingest.tokens` entry).
    #[arg(long, env = "OPENSPORTS_TOKEN")]
    token: String,
}

impl PublishArgs {
    fn config(self, name: &str) -> anyhow::Result<PublisherConfig> {
        let trust = match (self.fingerprint, self.ca_cert) {
            (Some(fp), _) => Trust::Fingerprint(fp),
            (None, Some(path)) => {
                Trust::CaPem(std::fs::read(&path).with_context(|| path.display().to_string())?)
            }
            (None, None) => cli::trust_from_data_dir(&self.data_dir)?,
        };
        let mut cfg = PublisherConfig::new(self.quic, trust, self.token);
        cfg.name = name.into();
        Ok(cfg)
    }
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Create a key and print it (shown once).
    Create {
        /// A label for people, e.g. the venue or partner.
        #[arg(long)]
        name: String,
        /// publisher, subscriber or admin.
        #[arg(long)]
        role: opensports_server::auth::Role,
        /// Game-id patterns (publisher, e.g. 'nba-*') or topic patterns (subscriber, e.g.
        /// 'game/nba-1/#'); repeat the flag for several.
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// List keys (never the keys themselves).
    List {
        /// The keys as a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id.
    Revoke {
        /// The key's id, as `keys list` shows it.
        id: String,
    },
}

#[derive(Subcommand)]
enum PluginCmd {
    /// Scaffold a plugin, with a test, that builds as is.
    New {
        /// Plugin name: [a-z0-9-]+ (it becomes a topic level).
        name: String,
        /// Parent directory (use `plugins` inside this repository).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Language: rust (ABI v1, the SDK crate), ts or python (ABI v2 components, the kit is
        /// written beside the plugin).
        #[arg(long, default_value = "rust")]
        lang: String,
    },
    /// Build a plugin into its .wasm and report sizes: a Rust crate (wasm32-unknown-unknown,
    /// release, stripped), a TypeScript package (esbuild + componentize-js) or a Python project
    /// (componentize-py); missing tools are installed from npm or PyPI.
    Build {
        /// The plugin's (or the Rust workspace's) directory.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Packages to build (default: the crate at PATH).
        #[arg(short, long)]
        package: Vec<String>,
        /// Cargo target directory (default: the crate's or workspace's `target/`).
        #[arg(long)]
        target_dir: Option<PathBuf>,
    },
    /// Print the events of a simulated game or a replay file as JSONL (what `plugin test` and
    /// the kits' test sessions run a plugin on).
    Events {
        /// Simulated game of this sport (basketball, football, soccer, f1).
        #[arg(long, conflicts_with = "replay")]
        sim: Option<String>,
        /// Seed of the simulated game.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// A provider's feed file (NBA, StatsBomb, ...) or JSONL of events.
        #[arg(long)]
        replay: Option<PathBuf>,
    },
    /// Run a plugin offline on a simulated game, a provider feed or a JSONL event file.
    Test {
        /// The plugin's .wasm file (`opensports plugin build` prints where it wrote it).
        wasm: PathBuf,
        /// Simulated game of this sport (basketball, football, soccer, f1).
        #[arg(long, conflicts_with = "replay")]
        sim: Option<String>,
        /// Seed of the simulated game.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// A provider's feed file (NBA, StatsBomb, ...) or JSONL of events (wire JSON format).
        #[arg(long)]
        replay: Option<PathBuf>,
        /// Write outputs as JSONL here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Golden JSONL file: exit non-zero on the first difference.
        #[arg(long)]
        expect: Option<PathBuf>,
        /// Plugin config (JSON) handed to `init`.
        #[arg(long, default_value = "{}")]
        config: String,
        /// Memory cap, MiB (default: the server's `plugins.memory_mib`, 16).
        #[arg(long)]
        memory_mib: Option<usize>,
    },
}

/// Where `plugin test` and `plugin events` take their events from.
fn plugin_source(
    sim: Option<String>,
    seed: u64,
    replay: Option<PathBuf>,
) -> anyhow::Result<cli::plugin::Source> {
    Ok(match (sim, replay) {
        (Some(s), _) => {
            cli::plugin::Source::Sim(Sport::parse(&s).with_context(|| format!("unknown sport {s:?}"))?, seed)
        }
        (None, Some(path)) => cli::plugin::Source::Replay(path),
        (None, None) => anyhow::bail!("give --sim SPORT or --replay FILE"),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let format = cli.log_format.clone().or_else(|| std::env::var("OPENSPORTS_LOG_FORMAT").ok());
    let log = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,quinn=warn".into()),
        )
        .with_writer(std::io::stderr);
    match format.as_deref() {
        Some("json") => log.json().flatten_event(true).init(),
        // Colours only on a terminal (and not under NO_COLOR): a log file or pipe gets plain text.
        _ => log
            .with_ansi(
                std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var_os("NO_COLOR").is_none(),
            )
            .init(),
    }
    match cli.command {
        Command::Demo { server, speed, seed, replay } => {
            cli::demo::run(server.config()?, speed, seed, replay.as_deref()).await
        }
        Command::Serve { server, check_config } => {
            let config = server.config()?;
            if check_config {
                println!("configuration OK");
                return Ok(());
            }
            let listeners = Listeners::bind(&config)?;
            let running = opensports_server::start(config, listeners).await?;
            for id in cli::demo::live_demo_keys(&running.auth) {
                tracing::warn!(
                    key = %id,
                    "this data dir holds the admin key `opensports demo` printed, and it still works: revoke it (`opensports keys revoke {id}`, server stopped) unless you mean to keep it"
                );
            }
            let _ = tokio::signal::ctrl_c().await;
            running.shutdown().await;
            Ok(())
        }
        Command::Sim { to, sport, speed, seed, json } => {
            let mut cfg = to.config("opensports-sim")?;
            if json {
                cfg.codec = opensports_proto::codec::Codec::Json;
            }
            cli::sim::run(cfg, &sport, speed, seed).await
        }
        Command::Replay { file, format, speed, game_id, home, to } => {
            let opts = opensports_server::feeds::Options {
                game_id: game_id.as_deref(),
                home: home.as_deref(),
                file_stem: None,
            };
            let feed = cli::replay::load(&file, format.as_deref(), &opts)?;
            let mut publisher = Publisher::connect(to.config("opensports-replay")?).await?;
            cli::replay::publish(&mut publisher, &feed, speed).await?;
            publisher.close(std::time::Duration::from_secs(30)).await?;
            Ok(())
        }
        Command::Schema => {
            print!("{}", opensports_server::api::schema_text());
            Ok(())
        }
        Command::Plugin { cmd } => match cmd {
            PluginCmd::New { name, dir, lang } => {
                cli::plugin::new_cmd(&name, &dir, cli::kits::Lang::parse(&lang)?)
            }
            PluginCmd::Events { sim, seed, replay } => {
                cli::plugin::events_cmd(&plugin_source(sim, seed, replay)?)
            }
            PluginCmd::Build { path, package, target_dir } => {
                cli::plugin::build_cmd(&path, &package, target_dir.as_deref())
            }
            PluginCmd::Test { wasm, sim, seed, replay, out, expect, config, memory_mib } => {
                let source = plugin_source(sim, seed, replay)?;
                cli::plugin::test_cmd(&wasm, &source, out.as_deref(), expect.as_deref(), &config, memory_mib)
            }
        },
        Command::Export { game, format, out, source } => {
            let format = format.parse().map_err(anyhow::Error::msg)?;
            let seal = seal_from(source.key_file.clone())?;
            cli::store::export_cmd(&source.source()?, &seal, &game, format, out.as_deref())
        }
        Command::Report { game, pdf, html, url, token, ca_cert } => {
            let ca_pem =
                ca_cert.map(|p| std::fs::read(&p).with_context(|| p.display().to_string())).transpose()?;
            let server = cli::store::Server { url, key: token, ca_pem };
            cli::report::report_cmd(&server, &game, pdf.as_deref(), html.as_deref())
        }
        Command::Backup { to, source } => {
            let seal = seal_from(source.key_file.clone())?;
            cli::store::backup_cmd(&source.source()?, &seal, &to)
        }
        Command::Restore { from, data_dir, force, key_file } => {
            cli::store::restore_cmd(&from, &data_dir, force, &seal_from(key_file)?)
        }
        Command::Rekey { data_dir, key_file } => {
            cli::store::rekey_cmd(&data_dir, &seal_from(Some(key_file))?)
        }
        Command::Compact { data_dir } => cli::store::compact_cmd(&data_dir),
        Command::Keys { cmd, data_dir } => match cmd {
            KeysCmd::Create { name, role, scopes } => cli::keys::create(&data_dir, &name, role, scopes),
            KeysCmd::List { json } => cli::keys::list(&data_dir, json),
            KeysCmd::Revoke { id } => cli::keys::revoke(&data_dir, &id),
        },
        Command::Watch { patterns, url, token, mode, json, utc } => {
            let mode = match mode.as_str() {
                "all" => Mode::All,
                "latest" => Mode::Latest,
                other => anyhow::bail!("--mode {other:?}: expected all or latest"),
            };
            let url = cli::watch::ws_url(&url);
            let url = match token {
                Some(t) => format!("{url}{}token={t}", if url.contains('?') { '&' } else { '?' }),
                None => url,
            };
            let zone = if utc { jiff::tz::TimeZone::UTC } else { jiff::tz::TimeZone::system() };
            cli::watch::run(&url, &patterns, mode, json, zone).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every flag and argument of every command says what it is in `--help`.
    #[test]
    fn every_argument_has_a_help_line() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&<Cli as clap::CommandFactory>::command(), "opensports", &mut missing);
        assert!(missing.is_empty(), "arguments without a help line: {missing:?}");
    }
}

//! Every integration test, in one binary: each module is one area (`auth`, `push`, …) and
//! keeps its own file. One binary links the server once instead of once per file; nextest
//! still runs each test in a process of its own, so no state is shared between tests.
//! Run one area: `cargo nextest run -p opensports-tests -E 'test(/^push::/)'`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod analyst;
mod auth;
mod bad_input;
mod boxscore;
mod chaos;
mod cli;
mod clients;
mod cluster;
mod cluster_seam;
mod console;
mod dashboard;
mod delay;
mod deploy;
mod devkit;
mod durability;
mod e2e;
mod encryption;
mod faults;
mod feeds;
mod finals;
mod fuzz;
mod graphics;
mod graphql;
mod hostile;
mod http_limits;
mod kits;
mod layering;
mod models;
mod observability;
mod openapi;
mod plugins;
mod push;
mod push_providers;
mod quality;
mod quic_limits;
mod report;
mod security_round2;
mod selfcontained;
mod snapshots;
mod sse;
mod telemetry;
mod transcript;
mod triggers;
mod ws_limits;

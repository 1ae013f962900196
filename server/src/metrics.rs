//! Prometheus metrics: the recorder, its upkeep, and every metric name in one place.
//!
//! Names follow `opensports_<subsystem>_<name>_<unit>`; labels come from closed sets only
//! (reason codes, kinds), never game, topic or client ids.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const INGEST_CONNECTIONS: &str = "opensports_ingest_connections";
pub const INGEST_CONNECTIONS_TOTAL: &str = "opensports_ingest_connections_total";
pub const INGEST_EVENTS_TOTAL: &str = "opensports_ingest_events_total";
pub const INGEST_REJECTED_TOTAL: &str = "opensports_ingest_rejected_total";
pub const INGEST_RETRIES_TOTAL: &str = "opensports_ingest_retries_total";
pub const HTTP_CONNECTIONS_REFUSED_TOTAL: &str = "opensports_http_connections_refused_total";
pub const INGEST_AUTH_FAILURES_TOTAL: &str = "opensports_ingest_auth_failures_total";
pub const AUTH_FAILURES_TOTAL: &str = "opensports_auth_failures_total";
pub const AUTH_DENIED_TOTAL: &str = "opensports_auth_denied_total";
pub const RATE_LIMITED_TOTAL: &str = "opensports_rate_limited_total";
pub const AUDIT_ENTRIES_TOTAL: &str = "opensports_audit_entries_total";
pub const INGEST_STREAM_ERRORS_TOTAL: &str = "opensports_ingest_stream_errors_total";
pub const INGEST_BACKPRESSURE_TOTAL: &str = "opensports_ingest_backpressure_waits_total";
pub const INGEST_DATAGRAMS_TOTAL: &str = "opensports_ingest_datagrams_total";
pub const INGEST_DUPLICATES_TOTAL: &str = "opensports_ingest_duplicates_total";
pub const INGEST_GAPS_TOTAL: &str = "opensports_ingest_gaps_total";
pub const INGEST_GAP_FILLS_TOTAL: &str = "opensports_ingest_gap_fills_total";
pub const PIPELINE_GAMES: &str = "opensports_pipeline_games";
pub const FEED_ISSUES_TOTAL: &str = "opensports_feed_issues_total";
pub const INGEST_CONFLICTS_TOTAL: &str = "opensports_ingest_conflicts_total";
pub const ANALYST_NOTES_TOTAL: &str = "opensports_analyst_notes_total";
pub const ANALYST_LLM_TOTAL: &str = "opensports_analyst_llm_total";
pub const PIPELINE_LATENCY_SECONDS: &str = "opensports_pipeline_latency_seconds";
pub const PIPELINE_QUEUE_SECONDS: &str = "opensports_pipeline_queue_seconds";
pub const FANOUT_DELIVERY_SECONDS: &str = "opensports_fanout_delivery_seconds";
pub const EVENT_AGE_SECONDS: &str = "opensports_event_age_seconds";
pub const FANOUT_PUBLICATIONS_TOTAL: &str = "opensports_fanout_publications_total";
pub const FANOUT_TOPICS: &str = "opensports_fanout_topics";
pub const FANOUT_TOPICS_REFUSED_TOTAL: &str = "opensports_fanout_topics_refused_total";
pub const FANOUT_DROPPED_TOTAL: &str = "opensports_fanout_dropped_total";
pub const FANOUT_LAGGED_TOTAL: &str = "opensports_fanout_lagged_total";
/// Release time minus due time (source time + delay) of each delayed message.
pub const DELAY_LATENESS_SECONDS: &str = "opensports_delay_release_lateness_seconds";
pub const DELAY_LINES: &str = "opensports_delay_lines";
pub const TRIGGERS_FIRED_TOTAL: &str = "opensports_triggers_fired_total";
/// Firings not published, by `reason` (`cooldown`).
pub const TRIGGERS_SUPPRESSED_TOTAL: &str = "opensports_triggers_suppressed_total";
pub const DELAY_BUFFERED_BYTES: &str = "opensports_delay_buffered_bytes";
pub const DELAY_DROPPED_TOTAL: &str = "opensports_delay_dropped_total";
pub const DELAY_LINES_REFUSED_TOTAL: &str = "opensports_delay_lines_refused_total";
/// Open subscriber sessions, by `transport` (ws, sse, graphql).
pub const SESSIONS: &str = "opensports_sessions";
/// Messages sent to subscribers, by `transport`.
pub const SESSION_MESSAGES_SENT_TOTAL: &str = "opensports_session_messages_sent_total";
/// Subscriber `error` messages, by `code` and `transport`.
pub const SESSION_ERRORS_TOTAL: &str = "opensports_session_errors_total";
/// Sessions the server ended by a lifetime rule, by `transport` and `reason`.
pub const SESSION_ENDED_TOTAL: &str = "opensports_session_ended_total";
pub const WS_FRAMES_SENT_TOTAL: &str = "opensports_ws_frames_sent_total";

pub const PLUGIN_FAILURES_TOTAL: &str = "opensports_plugin_failures_total";
pub const PLUGIN_DEADLINE_RETRIES_TOTAL: &str = "opensports_plugin_deadline_retries_total";
pub const PLUGIN_RECYCLED_TOTAL: &str = "opensports_plugin_recycled_total";
pub const PLUGIN_QUARANTINED: &str = "opensports_plugin_quarantined";
/// Games a plugin is quarantined for (it runs for the others).
pub const PLUGIN_QUARANTINED_GAMES: &str = "opensports_plugin_quarantined_games";
pub const PLUGIN_CALL_SECONDS: &str = "opensports_plugin_call_seconds";
pub const PLUGIN_SWAP_SECONDS: &str = "opensports_plugin_swap_seconds";

pub const STORE_EVENTS_TOTAL: &str = "opensports_store_events_total";
pub const STORE_COMMIT_SECONDS: &str = "opensports_store_commit_seconds";
pub const STORE_BATCH_EVENTS: &str = "opensports_store_batch_events";
pub const STORE_COMMIT_ERRORS_TOTAL: &str = "opensports_store_commit_errors_total";
pub const PLUGIN_HISTORY_EVENTS: &str = "opensports_plugin_history_events";
pub const PLUGIN_HISTORY_HELD_EVENTS: &str = "opensports_plugin_history_held_events";
pub const PLUGIN_MEMORY_BYTES: &str = "opensports_plugin_memory_bytes";
pub const HTTP_BODY_TIMEOUTS_TOTAL: &str = "opensports_http_body_timeouts_total";
pub const STORE_FAILING: &str = "opensports_store_failing";
pub const STORE_REOPENS_TOTAL: &str = "opensports_store_reopens_total";
pub const STORE_RETENTION_GAMES_TOTAL: &str = "opensports_store_retention_games_total";
pub const STORE_GAPS_FORGOTTEN_TOTAL: &str = "opensports_store_gaps_forgotten_total";
pub const STORE_RECOVERED_EVENTS: &str = "opensports_store_recovered_events";
pub const STORE_RECOVERY_SECONDS: &str = "opensports_store_recovery_seconds";
pub const STORE_RECOVERED_SNAPSHOTS: &str = "opensports_store_recovered_snapshots";
pub const STORE_SNAPSHOTS_TOTAL: &str = "opensports_store_snapshots_total";
pub const STORE_SNAPSHOTS_DROPPED_TOTAL: &str = "opensports_store_snapshots_dropped_total";
pub const STORE_SNAPSHOT_BYTES: &str = "opensports_store_snapshot_bytes";
pub const GRAPHICS_FILES_WRITTEN_TOTAL: &str = "opensports_graphics_files_written_total";
pub const PUSH_DEVICES: &str = "opensports_push_devices";
pub const PUSH_QUEUED_TOTAL: &str = "opensports_push_queued_total";
pub const PUSH_SENT_TOTAL: &str = "opensports_push_sent_total";
/// Failed attempts, by `reason` (`throttled`, `unavailable`, `gone`, `rejected`, `lagged`).
pub const PUSH_FAILED_TOTAL: &str = "opensports_push_failed_total";
pub const PUSH_DEAD_TOTAL: &str = "opensports_push_dead_total";
/// Queued pushes (due now, retrying or held).
pub const PUSH_QUEUED: &str = "opensports_push_queued";
/// Pushes held, by `reason` (`quiet_hours`, `rate_limit`).
pub const PUSH_HELD_TOTAL: &str = "opensports_push_held_total";
pub const PUSH_SUPERSEDED_TOTAL: &str = "opensports_push_superseded_total";
/// The event's source time to the provider's acceptance.
pub const PUSH_LATENCY_SECONDS: &str = "opensports_push_latency_seconds";
/// Provider tokens made, by `provider` (FCM OAuth access tokens, APNs provider tokens).
pub const PUSH_TOKENS_TOTAL: &str = "opensports_push_tokens_total";

/// Spans the OTLP endpoint accepted.
pub const TELEMETRY_SPANS_EXPORTED_TOTAL: &str = "opensports_telemetry_spans_exported_total";
/// Spans dropped: the exporter's queue was full, or the endpoint refused or never answered.
pub const TELEMETRY_SPANS_DROPPED_TOTAL: &str = "opensports_telemetry_spans_dropped_total";
/// Export requests tried again (429, 502-504, no connection).
pub const TELEMETRY_EXPORT_RETRIES_TOTAL: &str = "opensports_telemetry_export_retries_total";

pub const MODEL_INFER_SECONDS: &str = "opensports_model_infer_seconds";
pub const MODEL_REFUSED_TOTAL: &str = "opensports_model_refused_total";
pub const MODEL_SHADOW_ABS_DIFF: &str = "opensports_model_shadow_abs_diff";
pub const MODEL_OUTCOME_PREDICTIONS_TOTAL: &str = "opensports_model_outcome_predictions_total";
pub const MODEL_OUTCOME_BRIER_SUM: &str = "opensports_model_outcome_brier_accum";
pub const MODEL_OUTCOME_LOG_LOSS_SUM: &str = "opensports_model_outcome_log_loss_accum";

pub const CLUSTER_NODES: &str = "opensports_cluster_nodes";
pub const CLUSTER_CAUGHT_UP: &str = "opensports_cluster_caught_up";
pub const CLUSTER_PENDING: &str = "opensports_cluster_pending";
pub const CLUSTER_PUBLISHED_TOTAL: &str = "opensports_cluster_published_total";
pub const CLUSTER_PUBLISH_RETRIES_TOTAL: &str = "opensports_cluster_publish_retries_total";
/// Committed events past `cluster.max_pending` kept as a range and read back from the log.
pub const CLUSTER_SPILLED_TOTAL: &str = "opensports_cluster_spilled_total";
pub const CLUSTER_APPLIED_TOTAL: &str = "opensports_cluster_applied_total";
pub const CLUSTER_REFUSED_TOTAL: &str = "opensports_cluster_refused_total";
pub const CLUSTER_DUPLICATES_TOTAL: &str = "opensports_cluster_duplicates_total";
pub const CLUSTER_GAME_LAG_SECONDS: &str = "opensports_cluster_game_lag_seconds";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle. Later calls (several
/// servers in one test process) share it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01,
                    0.025, 0.05, 0.1, 0.25, 1.0,
                ])
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(STORE_BATCH_EVENTS.into()),
                        &[1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0],
                    )
                })
                // Fine steps where a hop's share of a millisecond is the question.
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(EVENT_AGE_SECONDS.into()),
                        &AGE_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(PUSH_LATENCY_SECONDS.into()),
                        &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(DELAY_LATENESS_SECONDS.into()),
                        &AGE_BUCKETS,
                    )
                })
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            describe();
            zero();
            handle
        })
        .clone()
}

/// Counters and gauges without labels start at 0, so a dashboard or an alert sees the series
/// (and `rate()` its first increase) before the first event of their kind.
fn zero() {
    for name in [
        INGEST_EVENTS_TOTAL,
        INGEST_CONNECTIONS_TOTAL,
        INGEST_RETRIES_TOTAL,
        INGEST_DATAGRAMS_TOTAL,
        INGEST_DUPLICATES_TOTAL,
        INGEST_GAPS_TOTAL,
        INGEST_GAP_FILLS_TOTAL,
        FANOUT_PUBLICATIONS_TOTAL,
        FANOUT_DROPPED_TOTAL,
        FANOUT_LAGGED_TOTAL,
        DELAY_DROPPED_TOTAL,
        TRIGGERS_FIRED_TOTAL,
        PUSH_QUEUED_TOTAL,
        PUSH_SENT_TOTAL,
        PUSH_DEAD_TOTAL,
        PUSH_SUPERSEDED_TOTAL,
        WS_FRAMES_SENT_TOTAL,
        STORE_EVENTS_TOTAL,
    ] {
        metrics::counter!(name).absolute(0);
    }
    for name in [INGEST_CONNECTIONS, PIPELINE_GAMES, FANOUT_TOPICS, DELAY_LINES, DELAY_BUFFERED_BYTES] {
        metrics::gauge!(name).increment(0.0);
    }
    for transport in ["ws", "sse", "graphql"] {
        metrics::gauge!(SESSIONS, "transport" => transport).increment(0.0);
        metrics::counter!(SESSION_MESSAGES_SENT_TOTAL, "transport" => transport).absolute(0);
    }
}

/// Drains histogram buckets periodically so memory stays flat between scrapes.
pub async fn upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(INGEST_CONNECTIONS, "Open QUIC publisher connections");
    describe_gauge!(CLUSTER_NODES, "Cluster nodes with a live membership key (cluster only)");
    describe_gauge!(
        CLUSTER_CAUGHT_UP,
        "1 once this node has applied the cluster stream to its end since start"
    );
    describe_gauge!(
        CLUSTER_PENDING,
        "Cluster stream messages this node has still to apply (replay progress)"
    );
    describe_counter!(CLUSTER_PUBLISHED_TOTAL, "Local events JetStream acknowledged");
    describe_counter!(TELEMETRY_SPANS_EXPORTED_TOTAL, "Trace spans the OTLP endpoint accepted");
    describe_counter!(
        TELEMETRY_SPANS_DROPPED_TOTAL,
        "Trace spans dropped (exporter queue full, or the OTLP endpoint refused or never answered)"
    );
    describe_counter!(TELEMETRY_EXPORT_RETRIES_TOTAL, "OTLP export requests tried again");
    describe_counter!(
        CLUSTER_PUBLISH_RETRIES_TOTAL,
        "Times the replicator sent its window to JetStream again"
    );
    describe_counter!(
        CLUSTER_SPILLED_TOTAL,
        "Committed events past cluster.max_pending, replicated later from the log (ack = local)"
    );
    describe_counter!(CLUSTER_APPLIED_TOTAL, "Events other nodes ingested, applied here");
    describe_counter!(
        CLUSTER_REFUSED_TOTAL,
        "Cluster events this node could not apply (terminated in JetStream)"
    );
    describe_counter!(
        CLUSTER_DUPLICATES_TOTAL,
        "Stream events this node already had (its own, or redelivered): acked once committed here"
    );
    describe_gauge!(
        CLUSTER_GAME_LAG_SECONDS,
        "Per game: seconds from JetStream storing the last applied event to this node applying it"
    );
    describe_counter!(INGEST_CONNECTIONS_TOTAL, "QUIC publisher connections accepted (after hello)");
    describe_counter!(INGEST_EVENTS_TOTAL, "Events accepted into the pipeline");
    describe_counter!(INGEST_REJECTED_TOTAL, "Events or frames rejected, by reason code");
    describe_counter!(
        HTTP_CONNECTIONS_REFUSED_TOTAL,
        "HTTP connections closed at accept: server.max_http_connections reached"
    );
    describe_counter!(INGEST_RETRIES_TOTAL, "QUIC Retry sent to validate an address under a handshake flood");
    describe_counter!(INGEST_AUTH_FAILURES_TOTAL, "Publisher hellos refused");
    describe_counter!(AUTH_FAILURES_TOTAL, "HTTP and WebSocket credentials refused, by reason");
    describe_counter!(
        AUTH_DENIED_TOTAL,
        "Valid credentials asking for something their role or scopes do not allow, by operation"
    );
    describe_counter!(
        RATE_LIMITED_TOTAL,
        "Times a per-client rate or count limit held a client back, by limit"
    );
    describe_counter!(AUDIT_ENTRIES_TOTAL, "Entries appended to the audit log");
    describe_counter!(INGEST_STREAM_ERRORS_TOTAL, "Event streams closed by the server, by code");
    describe_counter!(INGEST_BACKPRESSURE_TOTAL, "Times a stream paused because its shard queue was full");
    describe_counter!(INGEST_DATAGRAMS_TOTAL, "Tracking datagrams accepted");
    describe_counter!(
        INGEST_DUPLICATES_TOTAL,
        "Events dropped as retries of an accepted (game, seq); acked after its commit"
    );
    describe_counter!(
        INGEST_GAPS_TOTAL,
        "Seq jumps: events missing before an accepted one (the publisher is told the range)"
    );
    describe_counter!(INGEST_GAP_FILLS_TOTAL, "Events accepted into a previously missing range");
    describe_counter!(STORE_EVENTS_TOTAL, "Events committed to the durable log");
    describe_histogram!(STORE_COMMIT_SECONDS, "Group commit latency (write transaction with fsync)");
    describe_histogram!(STORE_BATCH_EVENTS, "Events per group commit");
    describe_counter!(
        STORE_COMMIT_ERRORS_TOTAL,
        "Failed commits (retried; publishers are not acked meanwhile)"
    );
    describe_gauge!(
        STORE_FAILING,
        "1 while the event log cannot commit (see /readyz for the reason), else 0"
    );
    describe_counter!(
        STORE_REOPENS_TOTAL,
        "Times the event log was closed and reopened after a failed commit"
    );
    describe_gauge!(
        PLUGIN_HISTORY_EVENTS,
        "Events kept per shard to rebuild plugins by replay (at most plugins.max_history_events per game)"
    );
    describe_gauge!(
        PLUGIN_HISTORY_HELD_EVENTS,
        "Of those, events held in memory with their bytes (not yet committed to the log, or no log)"
    );
    describe_gauge!(
        PLUGIN_MEMORY_BYTES,
        "Linear memory of a shard's plugin instances (grows, never shrinks; each at most plugins.memory_mib)"
    );
    describe_counter!(
        HTTP_BODY_TIMEOUTS_TOTAL,
        "Requests whose body did not arrive within server.http_body_timeout_secs (408)"
    );
    describe_counter!(STORE_RETENTION_GAMES_TOTAL, "Ended games deleted from the log by retention");
    describe_counter!(STORE_GAPS_FORGOTTEN_TOTAL, "Missing ranges forgotten (more than 64 open per game)");
    describe_gauge!(STORE_RECOVERED_EVENTS, "Events replayed from the log at the last start");
    describe_gauge!(STORE_RECOVERY_SECONDS, "Seconds the last start spent replaying the log");
    describe_gauge!(
        STORE_RECOVERED_SNAPSHOTS,
        "Games the last start restored from a state snapshot (then replayed only the events after it)"
    );
    describe_counter!(
        STORE_SNAPSHOTS_TOTAL,
        "Game state snapshots taken (every store.snapshot_every events of a game, and at its end)"
    );
    describe_counter!(
        STORE_SNAPSHOTS_DROPPED_TOTAL,
        "Snapshots not queued because the log writer's queue was full (the next one replaces them)"
    );
    describe_histogram!(STORE_SNAPSHOT_BYTES, "Size of each game state snapshot taken");
    describe_counter!(
        GRAPHICS_FILES_WRITTEN_TOTAL,
        "Graphics documents written to graphics.drop_dir (each atomically, on change)"
    );
    describe_gauge!(PUSH_DEVICES, "Devices registered for push notifications");
    describe_counter!(PUSH_QUEUED_TOTAL, "Pushes recorded in the outbox (one per device and moment)");
    describe_counter!(PUSH_SENT_TOTAL, "Pushes the provider accepted, by provider");
    describe_counter!(
        PUSH_FAILED_TOTAL,
        "Failed push attempts by reason: throttled (429), unavailable (5xx, no answer), gone (device removed), rejected (other 4xx), lagged (firings the dispatcher missed)"
    );
    describe_counter!(PUSH_DEAD_TOTAL, "Pushes dead-lettered (no more attempts)");
    describe_gauge!(PUSH_QUEUED, "Pushes queued in the outbox (due, retrying or held)");
    describe_counter!(
        PUSH_HELD_TOTAL,
        "Pushes held by reason: quiet_hours (the device's), rate_limit (push.max_per_game_per_minute)"
    );
    describe_counter!(
        PUSH_SUPERSEDED_TOTAL,
        "Held pushes replaced by a newer one of the same collapse key, never sent"
    );
    describe_histogram!(PUSH_LATENCY_SECONDS, "Event source time to the push provider's acceptance, seconds");
    describe_counter!(
        PUSH_TOKENS_TOTAL,
        "Provider tokens made by provider: fcm (OAuth access tokens), apns (provider tokens)"
    );
    describe_gauge!(PIPELINE_GAMES, "Games held in memory");
    describe_counter!(
        INGEST_CONFLICTS_TOTAL,
        "Events sent under a seq already accepted with different content (acked as retries; the first stands)"
    );
    describe_counter!(
        ANALYST_NOTES_TOTAL,
        "Analyst notes by outcome: published, stale (a fact no longer matched the state when its turn came: dropped), expired (old news before its turn), superseded (a newer note on the same subject replaced it)"
    );
    describe_counter!(
        ANALYST_LLM_TOTAL,
        "Analyst rephrasing requests by outcome: rephrased, refused (a number or name not in the facts), timeout, error, budget (over analyst.llm.max_requests_per_minute), busy (queue full)"
    );
    describe_counter!(
        FEED_ISSUES_TOTAL,
        "Feed-quality issues by kind: stale, gap, late, clock_backwards, period_backwards, time_backwards, score_correction, impossible, duplicate_conflict (game/{id}/quality)"
    );
    describe_histogram!(
        PIPELINE_LATENCY_SECONDS,
        metrics::Unit::Seconds,
        "Time from reading an event off QUIC to its publication"
    );
    describe_histogram!(
        PIPELINE_QUEUE_SECONDS,
        metrics::Unit::Seconds,
        "Time from reading an event off QUIC to its shard taking it (ingest and the shard queue)"
    );
    describe_histogram!(
        FANOUT_DELIVERY_SECONDS,
        metrics::Unit::Seconds,
        "Time from a publication to its WebSocket write being flushed (the oldest message of each write)"
    );
    describe_histogram!(
        EVENT_AGE_SECONDS,
        metrics::Unit::Seconds,
        "Age of an event (the server's clock minus the event's source ts) as it passes a stage: \
         read off QUIC, taken by its shard, published, flushed to a WebSocket (the oldest message \
         of each write); with a source that stamps ts at capture, the freshness at each hop"
    );
    describe_counter!(FANOUT_PUBLICATIONS_TOTAL, "Publications to topics");
    describe_gauge!(FANOUT_TOPICS, "Topics held");
    describe_counter!(FANOUT_TOPICS_REFUSED_TOTAL, "Publications dropped because max_topics was reached");
    describe_counter!(FANOUT_DROPPED_TOTAL, "Messages dropped from full subscriber queues");
    describe_counter!(FANOUT_LAGGED_TOTAL, "Lagged notices sent to subscribers");
    describe_histogram!(
        DELAY_LATENESS_SECONDS,
        "Delay lines: release time minus due time (source time + delay) per released message"
    );
    describe_counter!(TRIGGERS_FIRED_TOTAL, "Trigger firings published on game/{id}/triggers");
    describe_counter!(TRIGGERS_SUPPRESSED_TOTAL, "Trigger firings not published, by reason (cooldown)");
    describe_gauge!(DELAY_LINES, "Delay lines (a topic at one delay, with subscribers)");
    describe_gauge!(DELAY_BUFFERED_BYTES, "Bytes of publications delay lines hold before release");
    describe_counter!(DELAY_DROPPED_TOTAL, "Messages a delay line dropped at its byte bound");
    describe_counter!(
        DELAY_LINES_REFUSED_TOTAL,
        "Delay lines not created because max_delay_lines was reached"
    );
    describe_counter!(
        PLUGIN_FAILURES_TOTAL,
        "Plugin failures by plugin and kind (trap, deadline, memory, bad_output, compile)"
    );
    describe_counter!(PLUGIN_DEADLINE_RETRIES_TOTAL, "Deadline misses retried once with a longer deadline");
    describe_counter!(
        PLUGIN_RECYCLED_TOTAL,
        "Component instances rebuilt (by replay) before their memory reached the cap: a language runtime whose garbage is never given back"
    );
    describe_gauge!(PLUGIN_QUARANTINED, "1 while a plugin is quarantined for every game");
    describe_counter!(
        SESSION_ENDED_TOTAL,
        "Subscriber sessions the server ended, by transport and reason (token_expired, key_revoked, idle_timeout, lifetime)"
    );
    describe_gauge!(PLUGIN_QUARANTINED_GAMES, "Games a plugin is quarantined for (it runs for the others)");
    describe_histogram!(
        PLUGIN_CALL_SECONDS,
        metrics::Unit::Seconds,
        "Time of one plugin call (event copy included)"
    );
    describe_histogram!(
        PLUGIN_SWAP_SECONDS,
        metrics::Unit::Seconds,
        "Hot-reload swap time per shard, backfill included"
    );
    describe_histogram!(
        MODEL_INFER_SECONDS,
        metrics::Unit::Seconds,
        "One model inference at batch 1, by model"
    );
    describe_histogram!(
        MODEL_SHADOW_ABS_DIFF,
        "Absolute difference between the shadow and the active version, per call"
    );
    describe_counter!(
        MODEL_OUTCOME_PREDICTIONS_TOTAL,
        "Predictions scored against game outcomes, by model and version"
    );
    describe_gauge!(MODEL_OUTCOME_BRIER_SUM, "Sum of Brier scores against outcomes (divide by predictions)");
    describe_gauge!(MODEL_OUTCOME_LOG_LOSS_SUM, "Sum of log losses against outcomes (divide by predictions)");
    describe_counter!(MODEL_REFUSED_TOTAL, "Models refused at load (file, sha256, shape or ops)");
    describe_gauge!(SESSIONS, "Open subscriber sessions, by transport (ws, sse, graphql)");
    describe_counter!(SESSION_MESSAGES_SENT_TOTAL, "Messages sent to subscribers, by transport");
    describe_counter!(SESSION_ERRORS_TOTAL, "Subscriber error messages sent, by code and transport");
    describe_counter!(
        WS_FRAMES_SENT_TOTAL,
        "WebSocket frames written (a batch frame holds several messages)"
    );
}

/// [`EVENT_AGE_SECONDS`] buckets: every 25 µs up to 1 ms (a hop's share of a light-load
/// millisecond is the question), then coarser up to 10 s.
const AGE_BUCKETS: [f64; 56] = {
    const TAIL: [f64; 16] = [
        1.25e-3, 1.5e-3, 2e-3, 2.5e-3, 3e-3, 4e-3, 5e-3, 7.5e-3, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0,
        10.0,
    ];
    let mut b = [0.0; 56];
    let mut i = 0;
    while i < 56 {
        // A quotient of integers is the double nearest the decimal: `le` prints as written.
        b[i] = if i < 40 { (i + 1) as f64 * 25.0 / 1e6 } else { TAIL[i - 40] };
        i += 1;
    }
    b
};

/// The `stage` labels of [`EVENT_AGE_SECONDS`], in path order.
pub const AGE_STAGES: [&str; 4] = ["read", "shard", "published", "flushed"];

/// Seconds from a source time (µs since the Unix epoch) to now on the wall clock, the one
/// clock a source, the server and a subscriber on one machine share; 0 for a ts in the future.
pub fn age_secs(ts_us: i64) -> f64 {
    age_secs_at(now_us(), ts_us)
}

/// [`age_secs`] against a wall-clock reading taken once for many events.
pub fn age_secs_at(now_us: i64, ts_us: i64) -> f64 {
    now_us.saturating_sub(ts_us).max(0) as f64 / 1e6
}

/// The wall clock in µs since the Unix epoch.
pub fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// The process and build lines appended to every scrape, in the exposition format, read at
/// scrape time: `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
/// `process_start_time_seconds` (the names Prometheus's own clients use; Linux `/proc`, absent
/// elsewhere) and `opensports_build_info{version, target}` (always 1).
///
/// Not `metrics-process` (tried, 2.4): it records `process_cpu_seconds_total` as a counter of
/// whole seconds (`absolute(u64)`), so `rate(...[1m])` on the dashboard moves in steps of 1/60 of
/// a core and a light load reads as zero; its gauge option breaks the `_total` naming rule
/// `promtool check metrics` enforces. Reading these four `/proc` files is less code than
/// working around either.
pub fn process_text() -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut line = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
    };
    if let Some(p) = proc_stat() {
        line("process_cpu_seconds_total", "counter", "User and system CPU time, seconds", p.cpu_seconds);
        line("process_resident_memory_bytes", "gauge", "Resident memory, bytes", p.rss_bytes);
        line("process_virtual_memory_bytes", "gauge", "Virtual memory, bytes", p.vsize_bytes);
        line("process_start_time_seconds", "gauge", "Start time, seconds since the Unix epoch", p.start_time);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        line("process_open_fds", "gauge", "Open file descriptors", fds.count() as f64);
    }
    if let Some(max) = max_fds() {
        line("process_max_fds", "gauge", "Limit on open file descriptors", max);
    }
    let _ = write!(
        out,
        "# HELP opensports_build_info The running build\n# TYPE opensports_build_info gauge\n\
         opensports_build_info{{version=\"{}\",target=\"{}-{}\"}} 1\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS
    );
    out
}

struct ProcStat {
    cpu_seconds: f64,
    rss_bytes: f64,
    vsize_bytes: f64,
    start_time: f64,
}

/// `/proc/self/stat` (fields after the parenthesised command name) and `/proc/stat`'s boot time.
fn proc_stat() -> Option<ProcStat> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the name: state is field 3, so field n is at index n - 3.
    let num = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let page = page_size()?;
    let boot: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(ProcStat {
        cpu_seconds: (num(14)? + num(15)?) / USER_HZ,
        start_time: boot + num(22)? / USER_HZ,
        vsize_bytes: num(23)?,
        rss_bytes: num(24)? * page,
    })
}

/// USER_HZ, the unit of `/proc` CPU times: 100 on every Linux architecture (the kernel fixes it
/// for userspace whatever its own tick rate).
const USER_HZ: f64 = 100.0;

fn page_size() -> Option<f64> {
    // From the auxiliary vector's AT_PAGESZ (type 6), without unsafe code.
    let auxv = std::fs::read("/proc/self/auxv").ok()?;
    auxv.chunks_exact(16).find_map(|kv| {
        let key = u64::from_ne_bytes(kv[..8].try_into().ok()?);
        (key == 6).then(|| u64::from_ne_bytes(kv[8..].try_into().unwrap_or_default()) as f64)
    })
}

fn max_fds() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

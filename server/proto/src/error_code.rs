//! Every error code a peer can see. PROTOCOL.md lists them with their meaning; keep both in step.

/// QUIC application error codes: connection close codes and stream STOP_SENDING/RESET codes.
pub mod quic {
    /// Normal close.
    pub const NO_ERROR: u32 = 0x00;
    /// Connection: the hello's token was not accepted.
    pub const AUTH_FAILED: u32 = 0x01;
    /// Connection: the control stream broke the protocol (first message not `hello`, a frame
    /// that is not a control message, control stream closed early, no hello in time).
    pub const PROTOCOL_VIOLATION: u32 = 0x02;
    /// Connection: the server is shutting down; reconnect later and resend un-acked events.
    pub const SHUTTING_DOWN: u32 = 0x03;
    /// Connection: per-IP or global connection limit reached.
    pub const TOO_MANY_CONNECTIONS: u32 = 0x04;
    /// Connection: the API key it authenticated with was revoked (closed within a second).
    pub const KEY_REVOKED: u32 = 0x05;
    /// Stream: a frame's length is over the server's `max_frame_bytes`.
    pub const FRAME_TOO_LARGE: u32 = 0x10;
    /// Stream: a frame's length is 0, or the stream ended inside a frame.
    pub const FRAME_MALFORMED: u32 = 0x11;
    /// Stream: the codec byte is neither `0x01` (JSON) nor `0x02` (rkyv).
    pub const UNKNOWN_CODEC: u32 = 0x12;
    /// Stream: a frame was started but not finished within the server's
    /// `ingest.frame_timeout_secs` (a half-open stream holds server memory).
    pub const FRAME_TIMEOUT: u32 = 0x13;

    /// Name of a code, for logs and metric labels.
    pub fn name(code: u32) -> &'static str {
        match code {
            NO_ERROR => "no_error",
            AUTH_FAILED => "auth_failed",
            PROTOCOL_VIOLATION => "protocol_violation",
            SHUTTING_DOWN => "shutting_down",
            TOO_MANY_CONNECTIONS => "too_many_connections",
            KEY_REVOKED => "key_revoked",
            FRAME_TOO_LARGE => "frame_too_large",
            FRAME_MALFORMED => "frame_malformed",
            UNKNOWN_CODEC => "unknown_codec",
            FRAME_TIMEOUT => "frame_timeout",
            _ => "unknown",
        }
    }
}

/// Codes of `reject` (QUIC control stream) and `error` (WebSocket) messages.
pub mod reason {
    /// The body is not well-formed JSON.
    pub const BAD_JSON: &str = "bad_json";
    /// Well-formed JSON that is not a valid event: unknown `sport`/`type`, missing or mistyped field.
    pub const BAD_EVENT: &str = "bad_event";
    /// The rkyv body failed validation.
    pub const BAD_RKYV: &str = "bad_rkyv";
    /// The event decoded but broke a rule: version, game id syntax, seq 0.
    pub const INVALID_EVENT: &str = "invalid_event";
    /// An event for another game on a stream already carrying a game.
    pub const GAME_MISMATCH: &str = "game_mismatch";
    /// An event whose sport differs from the game's sport.
    pub const SPORT_MISMATCH: &str = "sport_mismatch";
    /// Within one stream, a seq not greater than the previous one.
    pub const SEQ_NOT_INCREASING: &str = "seq_not_increasing";
    /// A frame over the size limit (also the stream code [`super::quic::FRAME_TOO_LARGE`]).
    pub const FRAME_TOO_LARGE: &str = "frame_too_large";
    /// A zero-length frame, or a stream ending inside a frame.
    pub const FRAME_MALFORMED: &str = "frame_malformed";
    /// A codec byte other than 0x01/0x02.
    pub const UNKNOWN_CODEC: &str = "unknown_codec";
    /// A frame started and not finished in time (also the stream code
    /// [`super::quic::FRAME_TIMEOUT`]).
    pub const FRAME_TIMEOUT: &str = "frame_timeout";
    /// (datagram) tracking for a game the server does not have (send its events first).
    pub const UNKNOWN_GAME: &str = "unknown_game";
    /// Too many games in flight on the server (`pipeline.max_games`).
    pub const TOO_MANY_GAMES: &str = "too_many_games";
    /// The credential is valid but does not allow this: an event for a game outside the
    /// publisher key's scopes, or (WebSocket) a pattern outside the subscriber's topic scopes.
    pub const FORBIDDEN: &str = "forbidden";
    /// A new game beyond the publisher key's `auth.max_games_per_key`.
    pub const GAME_QUOTA: &str = "game_quota";
    /// WebSocket: the session's API key was revoked; the connection closes (1008).
    pub const KEY_REVOKED: &str = "key_revoked";
    /// WebSocket: the session's JWT reached its `exp`; the connection closes (1008).
    pub const TOKEN_EXPIRED: &str = "token_expired";
    /// A subscriber session (WebSocket, GraphQL) without any subscription for
    /// `fanout.idle_timeout_secs`: closed (1008), no `error` first.
    pub const IDLE_TIMEOUT: &str = "idle_timeout";
    /// An SSE stream reached `fanout.sse_max_lifetime_secs`: it ends; the client resumes.
    pub const LIFETIME: &str = "lifetime";
    /// A seq more than `ingest.max_seq_jump` past the game's highest seq (a game's first seq
    /// counts from 0). Refused, not recorded: send the seqs in between first.
    pub const SEQ_TOO_FAR: &str = "seq_too_far";
    /// A seq that would leave more than 64 ranges of the game missing. Refused, not recorded:
    /// fill the gaps first (the server never forgets a gap to make room).
    pub const TOO_MANY_GAPS: &str = "too_many_gaps";
    /// A seq below what the server remembers of a game recovered from an old log: whether it
    /// was accepted is unknown, so it is refused (never acked).
    pub const SEQ_UNKNOWN: &str = "seq_unknown";
    /// The game was created by another publisher identity; writing it takes a `shared:`
    /// scope or the admin role.
    pub const GAME_OWNED: &str = "game_owned";
    /// A tracking datagram for a new entity beyond `ingest.max_tracking_entities_per_game`.
    pub const TOO_MANY_ENTITIES: &str = "too_many_entities";

    /// WebSocket: the op is unknown or its fields are wrong.
    pub const BAD_OP: &str = "bad_op";
    /// WebSocket: a topic pattern is malformed (see PROTOCOL.md, Topics).
    pub const BAD_PATTERN: &str = "bad_pattern";
    /// WebSocket: `since` names a topic that is not a concrete topic or not in `topics`' matches.
    pub const BAD_SINCE: &str = "bad_since";
    /// WebSocket: `delay_ms` over `fanout.max_delay_ms`, more distinct delays than a connection
    /// may hold (4), or `fanout.max_delay_lines` reached.
    pub const BAD_DELAY: &str = "bad_delay";
    /// WebSocket: the connection holds `fanout.max_subscriptions` patterns already.
    pub const TOO_MANY_SUBSCRIPTIONS: &str = "too_many_subscriptions";
    /// WebSocket: a client message over `fanout.max_client_message_bytes`.
    pub const MESSAGE_TOO_LARGE: &str = "message_too_large";
    /// WebSocket: binary frames are not part of the protocol.
    pub const BINARY_NOT_SUPPORTED: &str = "binary_not_supported";
}

/// Codes of HTTP API errors: the body is `{"error":{"code":...,"message":...}}` (PROTOCOL.md
/// §3). Besides these, the API answers with [`reason`] codes where the same rule applies
/// (`bad_pattern`, `bad_since`, `bad_op`, `too_many_subscriptions`).
pub mod http {
    /// 401: no credential where one is needed, or a wrong one (and an admin key sent in the query string).
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// 403: a valid credential whose role or scopes do not allow the request.
    pub const FORBIDDEN: &str = "forbidden";
    /// 429: this wrong credential failed too often from this address (or a console sign-in's
    /// codes failed too often for its key); retry later.
    pub const BACKOFF: &str = "backoff";
    /// 403: a console call without the session's `X-CSRF-Token`, not JSON, or from another origin.
    pub const CSRF: &str = "csrf";
    /// 429 (per address) or 503 (server-wide): a stream (WebSocket, SSE) over its connection limits.
    pub const TOO_MANY_CONNECTIONS: &str = "too_many_connections";
    /// 400: a body or parameter that is not what the endpoint takes (the message names it).
    pub const BAD_REQUEST: &str = "bad_request";
    /// 400: a request to /ws that is not a WebSocket upgrade.
    pub const BAD_UPGRADE: &str = "bad_upgrade";
    /// 400: an uploaded plugin that does not compile or breaks the ABI.
    pub const BAD_PLUGIN: &str = "bad_plugin";
    /// 404: no such path under a catch-all route.
    pub const NOT_FOUND: &str = "not_found";
    /// 404: a game the server (or its log) does not have.
    pub const NO_SUCH_GAME: &str = "no_such_game";
    /// 404: nothing was published on the topic.
    pub const NO_SUCH_TOPIC: &str = "no_such_topic";
    /// 404: an API key id that does not exist.
    pub const NO_SUCH_KEY: &str = "no_such_key";
    /// 404: a model name or version that is not loaded.
    pub const NO_SUCH_MODEL: &str = "no_such_model";
    /// 404: a plugin name that is not loaded.
    pub const NO_SUCH_PLUGIN: &str = "no_such_plugin";
    /// 404: the durable log is disabled on this server.
    pub const NO_STORE: &str = "no_store";
    /// 503: as many backups are running as may (2 at once); retry shortly.
    pub const BUSY: &str = "busy";
    /// 408: the request body did not arrive within `server.http_body_timeout_secs`.
    pub const BODY_TIMEOUT: &str = "body_timeout";
    /// 500: the key file could not be written.
    pub const KEY_STORE: &str = "key_store";
    /// 500: the event log could not be read.
    pub const STORE_ERROR: &str = "store_error";
    /// 500: a task failed unexpectedly.
    pub const INTERNAL: &str = "internal";
    /// 409: the credential (or the server) has as many devices as `push.max_devices_per_credential`
    /// (`push.max_devices`) allow.
    pub const TOO_MANY_DEVICES: &str = "too_many_devices";

    /// Every code of this module, for documentation checks.
    pub const ALL: &[&str] = &[
        TOO_MANY_DEVICES,
        UNAUTHORIZED,
        FORBIDDEN,
        BACKOFF,
        CSRF,
        TOO_MANY_CONNECTIONS,
        BAD_REQUEST,
        BAD_UPGRADE,
        BAD_PLUGIN,
        NOT_FOUND,
        NO_SUCH_GAME,
        NO_SUCH_TOPIC,
        NO_SUCH_KEY,
        NO_SUCH_MODEL,
        NO_SUCH_PLUGIN,
        NO_STORE,
        BUSY,
        BODY_TIMEOUT,
        KEY_STORE,
        STORE_ERROR,
        INTERNAL,
    ];
}

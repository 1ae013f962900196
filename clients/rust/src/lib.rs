//! Rust client for OpenSports Edge.
//!
//! - [`Publisher`]: QUIC publisher. One unidirectional stream per game, cumulative acks on the
//!   control stream, un-acked events kept and resent after a reconnect (the server drops the
//!   duplicates), tracking samples as datagrams.
//! - [`Subscriber`]: WebSocket subscriber. Accepts single and batch frames, remembers the last
//!   seq per topic and resumes with `since` after a reconnect, so nothing is missed or repeated.
//!
//! # Layout
//! - [`publisher`], [`subscriber`], [`trust`] (certificate pinning for the QUIC connection).

pub mod backoff;
pub mod publisher;
pub mod subscriber;
pub mod trust;

pub use opensports_proto as proto;
pub use publisher::{PublishError, Publisher, PublisherConfig};
pub use subscriber::{SubscribeError, Subscriber};
pub use trust::Trust;

//! casa: an eBPF sensor and rule engine for AI agent sessions.
//!
//! ```text
//! [kernel]  casa-ebpf programs ──EVENTS ring buffer──┐
//! [user]    sensor::RingReader  (live)  ─ raw bytes ─┤
//!           recording::Reader   (replay) ─ raw bytes ─┘
//!              │
//!           decode::decode ──▶ event::Event ──▶ (sessions, context, rules, sinks)
//! ```
//!
//! Live capture and replay hand the same raw record bytes to the same decoder, and time inside
//! the pipeline comes only from the events' kernel timestamps (`clock`). `casa run --record`
//! also records the daemon's other inputs (the start-up `/proc` scan, clock ticks, loss,
//! shutdown), so a replay of it reproduces the live logs exactly. Wall-clock latency is
//! measured only at the edge (`latency`).

pub mod capture;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod context;
pub mod decode;
pub mod event;
pub mod exit;
pub mod filter;
pub mod latency;
pub mod pipeline;
pub mod recording;
pub mod redact;
pub mod rules;
pub mod sensor;
pub mod session;
pub mod settings;
pub mod sink;
pub mod telemetry;

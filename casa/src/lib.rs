//! casa: an eBPF sensor and rule engine for AI agent sessions.
//!
//! ```text
//! [kernel]  casa-ebpf programs ──EVENTS ring buffer──┐
//! [user]    sensor::RingReader + procfs scan, ticks, loss (live) ─┐
//!           recording::Reader                      (replay) ─────┤
//!              │                                                  │
//!           pipeline::Input ──▶ Pipeline::feed ──▶ pipeline::Outcome
//!                                 (decode, sessions, context, rules, sinks, span)
//! ```
//!
//! Live capture and replay hand the same inputs to the same entry point, and time inside the
//! pipeline comes only from the inputs' kernel timestamps (`clock`). `casa run --record`
//! records every input it fed (the start-up `/proc` scan, kernel records, clock ticks, loss,
//! shutdown), so a replay of it reproduces the live logs exactly. Wall-clock latency is
//! measured only at the edge (`latency`). `ARCHITECTURE.md` has the module map.

pub mod assemble;
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
pub mod names;
pub mod pipeline;
pub mod procfs;
pub mod recording;
pub mod redact;
pub mod report;
pub mod respond;
pub mod rules;
pub mod sensor;
pub mod session;
pub mod settings;
pub mod sink;
pub mod telemetry;
pub mod transcript;

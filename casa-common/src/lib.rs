//! The kernel ↔ userspace contract of casa.
//!
//! This crate sits at the very start of the pipeline: the eBPF programs in `casa-ebpf` write
//! records laid out by these types into the `EVENTS` ring buffer, and `casa::decode` reads them
//! back. It is compiled for both targets from one Rust definition, so the two sides cannot
//! drift; the const assertions at the bottom of [`wire`] pin every size and offset, and
//! [`WIRE_VERSION`] lets a recording refuse a decoder that does not match it.
//!
//! A record is a [`wire::Header`] followed by one fixed-size body chosen by
//! [`wire::EventKind`] and, for kinds that carry strings, a variable-length data area whose
//! slices the body describes with lengths. Nothing in a record is a pointer.
#![no_std]

pub mod config;
pub mod respond;
pub mod stats;
pub mod wire;

/// Version of the record layout in [`wire`]. Bump it on any change to a wire type.
///
/// Version 2 added [`wire::ExecExt`] and [`wire::OpenExt`] (file identity, stdio, loader
/// variables) and the joined path of failed relative opens. Userspace decodes every version
/// from [`WIRE_VERSION_MIN`] up, by each record's own `Header::version`.
pub const WIRE_VERSION: u16 = 2;

/// Oldest record layout userspace still decodes (recordings made by older casa).
pub const WIRE_VERSION_MIN: u16 = 1;

//! The programs, grouped by area. Each exported program is a thin wrapper around a `try_`
//! function; failures are counted in `STATS`, never logged per event.

mod exec;
mod file;
mod fileop;
mod net;
mod process;
mod procop;
mod respond;
mod sock;
mod uring;

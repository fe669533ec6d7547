//! `history.*` sequence flags: the session's bounded ring of recent events, a summary of the
//! events that left it, and the flags kept up to date incrementally over both.
//!
//! [`super::SessionContext`] pushes every accepted event into a [`Ring`]; the ring settles
//! its oldest entry past `recent_event_limit` into a small summary (`Settled`) and updates
//! the flags in O(1) amortised work per push or settlement (plus one hash look-up for
//! write/exec paths, and O(threshold) per burst when the flags are read). Removing a
//! process's events (a prune: only those still in the ring) or a change of the history knobs
//! in [`Heuristics`] rebuilds the ring's running state, O(ring); a knob change first latches
//! the flags established so far (a reload never clears a fact).
//!
//! The flags are sticky: true once their pattern occurred among the session's retained
//! events (every folded event minus those a prune removed from the ring), whatever the ring
//! forgot. [`history_reference`] states the definitions literally over an event list
//! (quadratic, no state); the property test in `context::tests` checks after every event
//! that the ring's own flags equal it over the ring (CASA's ring-bounded semantics) and that
//! the sticky flags equal it over every retained event (while the knobs did not change).
//!
//! # Session clock
//!
//! Windows are measured on [`RecentEvent::clock_ns`]: the event's `ktime_ns`, raised to the
//! previous event's clock when it is smaller, so times never go backwards in arrival order
//! (events from different CPUs can reach user space a few microseconds out of order). With a
//! non-decreasing clock "within the window, either order" only needs the nearest neighbours.
//!
//! # How each flag is maintained
//!
//! In the ring:
//!
//! * `connect_then_exec`: the oldest connect in the ring precedes the newest exec.
//! * `sensitive_then_network` / `sensitive_then_execve`: over the subsequence of sensitive
//!   opens and connects (resp. execs), count adjacent pairs of different kinds within the
//!   window; some sensitive/other pair is within the window iff an adjacent one is.
//! * `burst_*`: over the kind's counted subsequence, count the windows of `threshold`
//!   consecutive events spanning at most `burst_window_ns`.
//! * `write_then_exec_same_path`: per path, the oldest successful write-intent open precedes
//!   the newest exec of that path; count such paths.
//! * `opened_deleted_path`: count the ring's opens of deleted-marked paths.
//!
//! Between the settled events and the ring (every settled event precedes every ring event,
//! and has a clock no later): a settled connect and any ring exec; the last settled
//! sensitive open (resp. connect, exec) and the ring's first event of the other kind; the
//! last `threshold - 1` settled counted clocks and the ring's first counted ones; the
//! settled written paths (at most [`WRITTEN_PATHS_MAX`], past it `facts_overflowed`) and the
//! ring's execs of them. Among settled events: latched as each one settles.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::IpAddr,
};

use serde::{Serialize, Serializer, ser::SerializeMap};

use super::{
    Heuristics, History,
    classify::{
        has_write_intent, is_burst_excluded_connect, is_burst_ignored_open, is_deleted_path,
        is_sensitive_path, match_key,
    },
};

/// One entry of the session ring (`recent_events` of `sessions.log`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecentEvent {
    /// The event's kernel timestamp, as received.
    pub ktime_ns: u64,
    /// Session clock: `ktime_ns`, never less than the previous event's clock (see module
    /// docs). All windows use this.
    pub clock_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub kind: RecentKind,
}

/// What a [`RecentEvent`] was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecentKind {
    /// A successful exec of `path` (kernel-resolved).
    Exec {
        path: String,
    },
    /// An open of `path` (kernel-resolved when it succeeded, else as passed); `result` is the
    /// fd or `-errno` (not serialised).
    Open {
        path: String,
        flags: u32,
        mode: u32,
        result: i64,
    },
    /// A connect: `addr` is the IP address or Unix socket path (empty for other families);
    /// `ip` is the IP destination when there is one (not serialised).
    Connect {
        addr: String,
        port: u16,
        ip: Option<IpAddr>,
    },
    Exit,
}

impl RecentEvent {
    /// The original's event type name.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            RecentKind::Exec { .. } => "EXECVE",
            RecentKind::Open { .. } => "OPENAT",
            RecentKind::Connect { .. } => "CONNECT",
            RecentKind::Exit => "EXIT",
        }
    }
}

/// A [`RecentEvent`] with its formatted timestamp: the `recent_events` element of
/// `sessions.log`, `{"timestamp","type","pid","tid"(omitted when 0), OPENAT: "path","flags",
/// "mode"; EXECVE: "path"; CONNECT: "addr","port"}` with its keys in alphabetical order (as
/// a `serde_json::Map` writes them), written without building a map: snapshots write many.
#[derive(Clone, Debug)]
pub struct RecentEventSorted<'a> {
    pub timestamp: String,
    pub event: &'a RecentEvent,
}

impl Serialize for RecentEventSorted<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.event;
        let mut m = s.serialize_map(None)?;
        // Alphabetical: addr, flags, mode, path, pid, port, tid, timestamp, type.
        match &e.kind {
            RecentKind::Exec { path } => {
                m.serialize_entry("path", path)?;
                m.serialize_entry("pid", &e.pid)?;
            }
            RecentKind::Open {
                path, flags, mode, ..
            } => {
                m.serialize_entry("flags", flags)?;
                m.serialize_entry("mode", mode)?;
                m.serialize_entry("path", path)?;
                m.serialize_entry("pid", &e.pid)?;
            }
            RecentKind::Connect { addr, port, .. } => {
                m.serialize_entry("addr", addr)?;
                m.serialize_entry("pid", &e.pid)?;
                m.serialize_entry("port", port)?;
            }
            RecentKind::Exit => m.serialize_entry("pid", &e.pid)?,
        }
        if e.tid != 0 {
            m.serialize_entry("tid", &e.tid)?;
        }
        m.serialize_entry("timestamp", &self.timestamp)?;
        m.serialize_entry("type", e.type_name())?;
        m.end()
    }
}

fn is_sensitive_open(e: &RecentEvent, h: &Heuristics) -> bool {
    matches!(&e.kind, RecentKind::Open { path, .. } if is_sensitive_path(path, h))
}

fn is_write_open(e: &RecentEvent) -> Option<&str> {
    match &e.kind {
        RecentKind::Open {
            path,
            flags,
            result,
            ..
        } if *result >= 0 && has_write_intent(*flags) => Some(path),
        _ => None,
    }
}

fn exec_path(e: &RecentEvent) -> Option<&str> {
    match &e.kind {
        RecentKind::Exec { path } => Some(path),
        _ => None,
    }
}

fn counts_for_burst_open(e: &RecentEvent) -> bool {
    matches!(&e.kind, RecentKind::Open { path, .. } if !is_burst_ignored_open(path))
}

fn counts_for_burst_connect(e: &RecentEvent) -> bool {
    matches!(&e.kind, RecentKind::Connect { ip, port, .. } if !is_burst_excluded_connect(*ip, *port))
}

fn is_connect(e: &RecentEvent) -> bool {
    matches!(e.kind, RecentKind::Connect { .. })
}

fn within_sensitive_window(dt: u64, h: &Heuristics) -> bool {
    h.sensitive_history_window_ns == 0 || dt <= h.sensitive_history_window_ns
}

/// The sticky history flags by their definitions (reference §5.4 with casa's changes),
/// recomputed from scratch over `events`: the session's events in arrival order, without
/// those a prune removed while they were in the recent ring. Applied to the ring alone it
/// gives the original's ring-bounded flags.
///
/// * `connect_then_exec`: a connect before an exec.
/// * `sensitive_then_network` / `sensitive_then_execve`: a sensitive open (successful or not)
///   and a connect (resp. exec) whose clocks differ by at most `sensitive_history_window_ns`
///   (0: unlimited), either order.
/// * `burst_*`: `max(threshold, 1)` consecutive counted events of the kind spanning at most
///   `burst_window_ns` (opens minus the ignore list; connects minus local destinations).
/// * `write_then_exec_same_path`: a successful write-intent open of P before an exec of P
///   (the kernel's ` (deleted)` marker is dropped from both paths for the comparison).
/// * `opened_deleted_path`: an open of a path ending with ` (deleted)`.
///
/// The other `history` fields (the session's fact sets) are left at their defaults. The
/// running flags equal this as long as no fact set overflowed and the knobs did not change
/// during the session (a reload keeps what was established; see the module docs).
pub fn history_reference(ring: &[RecentEvent], h: &Heuristics) -> History {
    let any_pair = |a: &dyn Fn(&RecentEvent) -> bool, b: &dyn Fn(&RecentEvent) -> bool| {
        ring.iter().filter(|x| a(x)).any(|x| {
            ring.iter()
                .filter(|y| b(y))
                .any(|y| within_sensitive_window(x.clock_ns.abs_diff(y.clock_ns), h))
        })
    };
    let burst = |counted: &dyn Fn(&RecentEvent) -> bool, threshold: usize| {
        let times: Vec<u64> = ring
            .iter()
            .filter(|e| counted(e))
            .map(|e| e.clock_ns)
            .collect();
        let n = threshold.max(1);
        times
            .windows(n)
            .any(|w| w[n - 1].saturating_sub(w[0]) <= h.burst_window_ns)
    };
    let is_exec = |e: &RecentEvent| exec_path(e).is_some();
    let sensitive = |e: &RecentEvent| is_sensitive_open(e, h);

    let mut connect_then_exec = false;
    let mut write_then_exec_same_path = false;
    for (i, a) in ring.iter().enumerate() {
        let later = &ring[i + 1..];
        if is_connect(a) && later.iter().any(is_exec) {
            connect_then_exec = true;
        }
        if let Some(p) = is_write_open(a)
            && later
                .iter()
                .filter_map(exec_path)
                .any(|x| match_key(x) == match_key(p))
        {
            write_then_exec_same_path = true;
        }
    }

    History {
        connect_then_exec,
        sensitive_then_network: any_pair(&sensitive, &is_connect),
        sensitive_then_execve: any_pair(&sensitive, &is_exec),
        burst_open: burst(&counts_for_burst_open, h.burst_open_threshold),
        burst_connect: burst(&counts_for_burst_connect, h.burst_connect_threshold),
        burst_exec: burst(&is_exec, h.burst_exec_threshold),
        write_then_exec_same_path,
        opened_deleted_path: ring
            .iter()
            .any(|e| matches!(&e.kind, RecentKind::Open { path, .. } if is_deleted_path(path))),
        ..History::default()
    }
}

/// The [`Heuristics`] knobs the running history depends on; a change rebuilds it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct HistoryParams {
    burst_open: usize,
    burst_connect: usize,
    burst_exec: usize,
    burst_window_ns: u64,
    sensitive_window_ns: u64,
    sensitive_prefixes: Vec<String>,
    sensitive_patterns: Vec<String>,
}

impl HistoryParams {
    fn of(h: &Heuristics) -> Self {
        Self {
            burst_open: h.burst_open_threshold.max(1),
            burst_connect: h.burst_connect_threshold.max(1),
            burst_exec: h.burst_exec_threshold.max(1),
            burst_window_ns: h.burst_window_ns,
            sensitive_window_ns: h.sensitive_history_window_ns,
            sensitive_prefixes: h.sensitive_path_prefixes.clone(),
            sensitive_patterns: h.sensitive_path_patterns.clone(),
        }
    }

    fn matches(&self, h: &Heuristics) -> bool {
        self.burst_open == h.burst_open_threshold.max(1)
            && self.burst_connect == h.burst_connect_threshold.max(1)
            && self.burst_exec == h.burst_exec_threshold.max(1)
            && self.burst_window_ns == h.burst_window_ns
            && self.sensitive_window_ns == h.sensitive_history_window_ns
            && self.sensitive_prefixes == h.sensitive_path_prefixes
            && self.sensitive_patterns == h.sensitive_path_patterns
    }
}

/// Adjacent pairs of a merged subsequence of two kinds (`a`: sensitive opens; `b`: the
/// other kind), counting adjacent different-kind pairs within the window.
#[derive(Clone, Debug, Default)]
struct PairTrack {
    /// `(seq, clock, is_a)` in ring order.
    items: VecDeque<(u64, u64, bool)>,
    close_links: usize,
    /// `(seq, clock)` of the `a` items, then of the `b` items, in ring order (the oldest of
    /// each kind pairs with the settled events).
    a: VecDeque<(u64, u64)>,
    b: VecDeque<(u64, u64)>,
}

impl PairTrack {
    fn link(x: (u64, u64, bool), y: (u64, u64, bool), window: u64) -> bool {
        x.2 != y.2 && (window == 0 || y.1.saturating_sub(x.1) <= window)
    }

    fn push(&mut self, seq: u64, clock: u64, is_a: bool, window: u64) {
        let item = (seq, clock, is_a);
        if let Some(&last) = self.items.back()
            && Self::link(last, item, window)
        {
            self.close_links += 1;
        }
        self.items.push_back(item);
        if is_a {
            self.a.push_back((seq, clock));
        } else {
            self.b.push_back((seq, clock));
        }
    }

    /// Clock of the oldest `a` (resp. `b`) item in the ring.
    fn first(&self, a: bool) -> Option<u64> {
        if a { self.a.front() } else { self.b.front() }.map(|x| x.1)
    }

    fn evict(&mut self, seq: u64, window: u64) {
        if self.items.front().is_none_or(|f| f.0 != seq) {
            return;
        }
        if let Some(first) = self.items.pop_front() {
            let q = if first.2 { &mut self.a } else { &mut self.b };
            if q.front().is_some_and(|f| f.0 == seq) {
                q.pop_front();
            }
            if let Some(&next) = self.items.front()
                && Self::link(first, next, window)
            {
                self.close_links -= 1;
            }
        }
    }
}

/// Windows of `n` consecutive counted events spanning at most the burst window.
#[derive(Clone, Debug, Default)]
struct BurstTrack {
    /// `(seq, clock)` in ring order.
    items: VecDeque<(u64, u64)>,
    short_windows: usize,
}

impl BurstTrack {
    fn push(&mut self, seq: u64, clock: u64, n: usize, window: u64) {
        self.items.push_back((seq, clock));
        let len = self.items.len();
        if len >= n && clock.saturating_sub(self.items[len - n].1) <= window {
            self.short_windows += 1;
        }
    }

    fn evict(&mut self, seq: u64, n: usize, window: u64) {
        if self.items.front().is_none_or(|f| f.0 != seq) {
            return;
        }
        if self.items.len() >= n && self.items[n - 1].1.saturating_sub(self.items[0].1) <= window {
            self.short_windows -= 1;
        }
        self.items.pop_front();
    }
}

/// Per path: ring seqs of successful write-intent opens and of execs.
#[derive(Clone, Debug, Default)]
struct PathSeqs {
    writes: VecDeque<u64>,
    execs: VecDeque<u64>,
}

impl PathSeqs {
    fn matched(&self) -> bool {
        matches!((self.writes.front(), self.execs.back()), (Some(w), Some(x)) if w < x)
    }
}

/// Running state of every ring-derived flag.
#[derive(Clone, Debug, Default)]
struct Tracker {
    connects: VecDeque<u64>,
    execs: VecDeque<u64>,
    sensitive_network: PairTrack,
    sensitive_exec: PairTrack,
    burst_open: BurstTrack,
    burst_connect: BurstTrack,
    burst_exec: BurstTrack,
    paths: HashMap<String, PathSeqs>,
    matched_paths: usize,
    /// Opens of deleted-marked paths in the ring.
    deleted_opens: usize,
}

/// Which trackers an entry feeds, decided once when it enters the ring.
#[derive(Clone, Copy, Debug, Default)]
struct Class {
    sensitive: bool,
    connect: bool,
    exec: bool,
    burst_open: bool,
    burst_connect: bool,
    write: bool,
    deleted: bool,
}

impl Class {
    fn of(e: &RecentEvent, h: &Heuristics) -> Self {
        Self {
            sensitive: is_sensitive_open(e, h),
            connect: is_connect(e),
            exec: exec_path(e).is_some(),
            burst_open: counts_for_burst_open(e),
            burst_connect: counts_for_burst_connect(e),
            write: is_write_open(e).is_some(),
            deleted: matches!(&e.kind, RecentKind::Open { path, .. } if is_deleted_path(path)),
        }
    }
}

#[derive(Clone, Debug)]
struct Slot {
    seq: u64,
    class: Class,
    event: RecentEvent,
}

impl Tracker {
    fn update_path(&mut self, key: &str, f: impl FnOnce(&mut PathSeqs)) {
        let entry = match self.paths.get_mut(key) {
            Some(e) => e,
            None => self.paths.entry(key.to_owned()).or_default(),
        };
        let before = entry.matched();
        f(entry);
        let after = entry.matched();
        let empty = entry.writes.is_empty() && entry.execs.is_empty();
        match (before, after) {
            (false, true) => self.matched_paths += 1,
            (true, false) => self.matched_paths -= 1,
            _ => {}
        }
        if empty {
            self.paths.remove(key);
        }
    }

    fn push(&mut self, slot: &Slot, p: &HistoryParams) {
        let (seq, t, c) = (slot.seq, slot.event.clock_ns, slot.class);
        if c.connect {
            self.connects.push_back(seq);
        }
        if c.exec {
            self.execs.push_back(seq);
        }
        if c.sensitive || c.connect {
            self.sensitive_network
                .push(seq, t, c.sensitive, p.sensitive_window_ns);
        }
        if c.sensitive || c.exec {
            self.sensitive_exec
                .push(seq, t, c.sensitive, p.sensitive_window_ns);
        }
        if c.burst_open {
            self.burst_open
                .push(seq, t, p.burst_open, p.burst_window_ns);
        }
        if c.burst_connect {
            self.burst_connect
                .push(seq, t, p.burst_connect, p.burst_window_ns);
        }
        if c.exec {
            self.burst_exec
                .push(seq, t, p.burst_exec, p.burst_window_ns);
        }
        if c.deleted {
            self.deleted_opens += 1;
        }
        if c.write
            && let Some(path) = is_write_open(&slot.event)
        {
            self.update_path(match_key(path), |s| s.writes.push_back(seq));
        }
        if let Some(path) = exec_path(&slot.event) {
            self.update_path(match_key(path), |s| s.execs.push_back(seq));
        }
    }

    /// Forget the oldest ring entry (`slot` must be it).
    fn evict(&mut self, slot: &Slot, p: &HistoryParams) {
        let (seq, c) = (slot.seq, slot.class);
        if c.connect && self.connects.front() == Some(&seq) {
            self.connects.pop_front();
        }
        if c.exec && self.execs.front() == Some(&seq) {
            self.execs.pop_front();
        }
        if c.sensitive || c.connect {
            self.sensitive_network.evict(seq, p.sensitive_window_ns);
        }
        if c.sensitive || c.exec {
            self.sensitive_exec.evict(seq, p.sensitive_window_ns);
        }
        if c.burst_open {
            self.burst_open.evict(seq, p.burst_open, p.burst_window_ns);
        }
        if c.burst_connect {
            self.burst_connect
                .evict(seq, p.burst_connect, p.burst_window_ns);
        }
        if c.exec {
            self.burst_exec.evict(seq, p.burst_exec, p.burst_window_ns);
        }
        if c.deleted {
            self.deleted_opens -= 1;
        }
        let pop = |q: &mut VecDeque<u64>| {
            if q.front() == Some(&seq) {
                q.pop_front();
            }
        };
        if c.write
            && let Some(path) = is_write_open(&slot.event)
        {
            self.update_path(match_key(path), |s| pop(&mut s.writes));
        }
        if let Some(path) = exec_path(&slot.event) {
            self.update_path(match_key(path), |s| pop(&mut s.execs));
        }
    }

    fn flags(&self) -> History {
        History {
            connect_then_exec: matches!(
                (self.connects.front(), self.execs.back()),
                (Some(c), Some(x)) if c < x
            ),
            sensitive_then_network: self.sensitive_network.close_links > 0,
            sensitive_then_execve: self.sensitive_exec.close_links > 0,
            burst_open: self.burst_open.short_windows > 0,
            burst_connect: self.burst_connect.short_windows > 0,
            burst_exec: self.burst_exec.short_windows > 0,
            write_then_exec_same_path: self.matched_paths > 0,
            opened_deleted_path: self.deleted_opens > 0,
            ..History::default()
        }
    }
}

/// What the events that left the ring contribute: the patterns found wholly among them
/// (latched) and the little each flag needs to pair them with the events still in the ring.
/// Each event is classified once, under the knobs in force when it leaves the ring.
#[derive(Clone, Debug, Default)]
struct Settled {
    /// Patterns found among settled events only.
    latched: History,
    any_connect: bool,
    /// Clock of the last settled sensitive open, connect, exec.
    last_sensitive: Option<u64>,
    last_connect: Option<u64>,
    last_exec: Option<u64>,
    /// Clocks of the last `threshold - 1` settled events counted by each burst.
    tail_open: VecDeque<u64>,
    tail_connect: VecDeque<u64>,
    tail_exec: VecDeque<u64>,
    /// Paths (write→exec form) with a successful write-intent open among settled events,
    /// at most [`WRITTEN_PATHS_MAX`].
    written: HashSet<String>,
    /// A settled write was not remembered: [`Self::written`] was full.
    written_overflowed: bool,
    /// Ring execs whose path is in [`Self::written`].
    cross_write_exec: usize,
}

/// Most distinct written paths the write→exec fact remembers once their writes left the
/// ring; past it, `history.facts_overflowed` is set.
pub const WRITTEN_PATHS_MAX: usize = 4096;

fn within(window: u64, earlier: Option<u64>, later: u64) -> bool {
    earlier.is_some_and(|e| window == 0 || later.saturating_sub(e) <= window)
}

/// Burst windows of `n` counted events with their first `k` in `tail` (settled, oldest
/// first) and the rest the ring's first counted events `ring`.
fn burst_across(tail: &VecDeque<u64>, ring: &VecDeque<(u64, u64)>, n: usize, window: u64) -> bool {
    (1..n).any(|k| {
        k <= tail.len()
            && n - k <= ring.len()
            && ring[n - k - 1].1.saturating_sub(tail[tail.len() - k]) <= window
    })
}

/// Push `clock` onto a settled burst tail: latches when it closes a short window of `n`.
fn settle_burst(tail: &mut VecDeque<u64>, clock: u64, n: usize, window: u64) -> bool {
    let hit = n <= 1
        || (tail.len() >= n - 1 && clock.saturating_sub(tail[tail.len() - (n - 1)]) <= window);
    tail.push_back(clock);
    while tail.len() > n.saturating_sub(1) {
        tail.pop_front();
    }
    hit
}

impl Settled {
    /// `slot` leaves the ring (its tracker state is already gone).
    fn settle(&mut self, slot: &Slot, tracker: &Tracker, p: &HistoryParams) {
        let (t, c) = (slot.event.clock_ns, slot.class);
        let w = p.sensitive_window_ns;
        let l = &mut self.latched;
        if c.sensitive {
            l.sensitive_then_network |= within(w, self.last_connect, t);
            l.sensitive_then_execve |= within(w, self.last_exec, t);
            self.last_sensitive = Some(t);
        }
        if c.connect {
            l.sensitive_then_network |= within(w, self.last_sensitive, t);
            self.any_connect = true;
            self.last_connect = Some(t);
        }
        if c.exec {
            l.connect_then_exec |= self.any_connect;
            l.sensitive_then_execve |= within(w, self.last_sensitive, t);
            self.last_exec = Some(t);
            l.burst_exec |= settle_burst(&mut self.tail_exec, t, p.burst_exec, p.burst_window_ns);
        }
        if c.burst_open {
            l.burst_open |= settle_burst(&mut self.tail_open, t, p.burst_open, p.burst_window_ns);
        }
        if c.burst_connect {
            l.burst_connect |= settle_burst(
                &mut self.tail_connect,
                t,
                p.burst_connect,
                p.burst_window_ns,
            );
        }
        if c.deleted {
            l.opened_deleted_path = true;
        }
        if let Some(path) = exec_path(&slot.event)
            && self.written.contains(match_key(path))
        {
            self.cross_write_exec -= 1;
            self.latched.write_then_exec_same_path = true;
        }
        if c.write
            && let Some(path) = is_write_open(&slot.event)
        {
            let key = match_key(path);
            if !self.written.contains(key) {
                if self.written.len() < WRITTEN_PATHS_MAX {
                    self.written.insert(key.to_owned());
                    self.cross_write_exec += tracker.paths.get(key).map_or(0, |s| s.execs.len());
                } else {
                    self.written_overflowed = true;
                }
            }
        }
    }

    /// After a rebuild of the ring's tracker: recount the ring execs of settled writes and
    /// fit the burst tails to the thresholds.
    fn resync(&mut self, tracker: &Tracker, p: &HistoryParams) {
        self.cross_write_exec = tracker
            .paths
            .iter()
            .filter(|(k, _)| self.written.contains(k.as_str()))
            .map(|(_, s)| s.execs.len())
            .sum();
        for (tail, n) in [
            (&mut self.tail_open, p.burst_open),
            (&mut self.tail_connect, p.burst_connect),
            (&mut self.tail_exec, p.burst_exec),
        ] {
            while tail.len() > n.saturating_sub(1) {
                tail.pop_front();
            }
        }
    }

    /// The flags over settled events followed by the ring (`ring`: the ring's own flags).
    fn flags(&self, ring: History, t: &Tracker, p: &HistoryParams) -> History {
        let l = &self.latched;
        let w = p.sensitive_window_ns;
        let pair = |pt: &PairTrack, last_a: Option<u64>, last_b: Option<u64>| {
            pt.first(false).is_some_and(|b| within(w, last_a, b))
                || pt.first(true).is_some_and(|a| within(w, last_b, a))
        };
        let bw = p.burst_window_ns;
        History {
            connect_then_exec: l.connect_then_exec
                || ring.connect_then_exec
                || (self.any_connect && !t.execs.is_empty()),
            sensitive_then_network: l.sensitive_then_network
                || ring.sensitive_then_network
                || pair(&t.sensitive_network, self.last_sensitive, self.last_connect),
            sensitive_then_execve: l.sensitive_then_execve
                || ring.sensitive_then_execve
                || pair(&t.sensitive_exec, self.last_sensitive, self.last_exec),
            burst_open: l.burst_open
                || ring.burst_open
                || burst_across(&self.tail_open, &t.burst_open.items, p.burst_open, bw),
            burst_connect: l.burst_connect
                || ring.burst_connect
                || burst_across(
                    &self.tail_connect,
                    &t.burst_connect.items,
                    p.burst_connect,
                    bw,
                ),
            burst_exec: l.burst_exec
                || ring.burst_exec
                || burst_across(&self.tail_exec, &t.burst_exec.items, p.burst_exec, bw),
            write_then_exec_same_path: l.write_then_exec_same_path
                || ring.write_then_exec_same_path
                || self.cross_write_exec > 0,
            opened_deleted_path: l.opened_deleted_path || ring.opened_deleted_path,
            ..History::default()
        }
    }
}

/// The bounded session ring with its running history flags, and the summary of the events
/// that left it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ring {
    slots: VecDeque<Slot>,
    next_seq: u64,
    tracker: Tracker,
    params: Option<HistoryParams>,
    settled: Settled,
    /// The last session clock handed out.
    clock_ns: u64,
}

impl Ring {
    /// The session clock for an event stamped `ktime_ns` (see module docs).
    pub(crate) fn clock_for(&mut self, ktime_ns: u64) -> u64 {
        self.clock_ns = self.clock_ns.max(ktime_ns);
        self.clock_ns
    }

    /// Append `event` (whose `clock_ns` came from [`Self::clock_for`]) and settle what falls
    /// out past `h.recent_event_limit`.
    pub(crate) fn push(&mut self, event: RecentEvent, h: &Heuristics) {
        self.sync_params(h);
        let slot = Slot {
            seq: self.next_seq,
            class: Class::of(&event, h),
            event,
        };
        self.next_seq += 1;
        if let Some(path) = exec_path(&slot.event)
            && self.settled.written.contains(match_key(path))
        {
            self.settled.cross_write_exec += 1;
        }
        if let Some(p) = &self.params {
            self.tracker.push(&slot, p);
        }
        self.slots.push_back(slot);
        while self.slots.len() > h.recent_event_limit {
            let Some(old) = self.slots.pop_front() else {
                break;
            };
            if let Some(p) = &self.params {
                self.tracker.evict(&old, p);
                self.settled.settle(&old, &self.tracker, p);
            }
        }
    }

    /// Remove every entry of `pid` still in the ring (settled events stay); returns how many
    /// were removed.
    pub(crate) fn remove_pid(&mut self, pid: u32, h: &Heuristics) -> usize {
        // The knobs may have changed since the last push (a reload): the flags must
        // reflect `h` either way.
        self.sync_params(h);
        let before = self.slots.len();
        self.slots.retain(|s| s.event.pid != pid);
        let removed = before - self.slots.len();
        if removed > 0 {
            self.rebuild(h);
        }
        removed
    }

    /// Re-derive the running state when the history knobs changed since the last push;
    /// what was established under the old knobs stays (latched).
    fn sync_params(&mut self, h: &Heuristics) {
        if !self.params.as_ref().is_some_and(|p| p.matches(h)) {
            let established = self.flags();
            self.rebuild(h);
            self.settled.latched.merge(&established);
        }
    }

    fn rebuild(&mut self, h: &Heuristics) {
        let params = HistoryParams::of(h);
        self.tracker = Tracker::default();
        for slot in &mut self.slots {
            slot.class = Class::of(&slot.event, h);
            self.tracker.push(slot, &params);
        }
        self.settled.resync(&self.tracker, &params);
        self.params = Some(params);
    }

    /// The flags of the ring alone (the original's semantics).
    #[cfg(test)]
    pub(crate) fn ring_flags(&self) -> History {
        self.tracker.flags()
    }

    /// The sticky flags: every pattern among the settled events and the ring.
    pub(crate) fn flags(&self) -> History {
        match &self.params {
            Some(p) => self.settled.flags(self.tracker.flags(), &self.tracker, p),
            None => History::default(),
        }
    }

    /// A settled write was not remembered for write→exec (the bound was reached).
    pub(crate) fn overflowed(&self) -> bool {
        self.settled.written_overflowed
    }

    /// Distinct settled written paths remembered (bounded by [`WRITTEN_PATHS_MAX`]).
    #[cfg(test)]
    pub(crate) fn settled_written(&self) -> usize {
        self.settled.written.len()
    }

    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &RecentEvent> + ExactSizeIterator {
        self.slots.iter().map(|s| &s.event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(pid: u32, tid: u32, kind: RecentKind) -> RecentEvent {
        RecentEvent {
            ktime_ns: 5,
            clock_ns: 5,
            pid,
            tid,
            kind,
        }
    }

    fn sorted(e: &RecentEvent) -> String {
        serde_json::to_string(&RecentEventSorted {
            timestamp: "T".into(),
            event: e,
        })
        .unwrap()
    }

    fn value(e: &RecentEvent) -> serde_json::Value {
        serde_json::from_str(&sorted(e)).unwrap()
    }

    #[test]
    fn json_shape_per_type() {
        let open = ev(
            7,
            8,
            RecentKind::Open {
                path: "/tmp/a".into(),
                flags: 577,
                mode: 438,
                result: 3,
            },
        );
        assert_eq!(
            value(&open),
            serde_json::json!({"timestamp":"T","type":"OPENAT","pid":7,"tid":8,
                               "path":"/tmp/a","flags":577,"mode":438})
        );
        assert_eq!(
            sorted(&open),
            r#"{"flags":577,"mode":438,"path":"/tmp/a","pid":7,"tid":8,"timestamp":"T","type":"OPENAT"}"#
        );
        let exec = ev(
            7,
            0,
            RecentKind::Exec {
                path: "/bin/sh".into(),
            },
        );
        assert_eq!(
            sorted(&exec),
            r#"{"path":"/bin/sh","pid":7,"timestamp":"T","type":"EXECVE"}"#
        );
        assert_eq!(
            value(&exec),
            serde_json::json!({"timestamp":"T","type":"EXECVE","pid":7,"path":"/bin/sh"})
        );
        let connect = ev(
            7,
            9,
            RecentKind::Connect {
                addr: "8.8.8.8".into(),
                port: 443,
                ip: Some("8.8.8.8".parse().unwrap()),
            },
        );
        assert_eq!(
            sorted(&connect),
            r#"{"addr":"8.8.8.8","pid":7,"port":443,"tid":9,"timestamp":"T","type":"CONNECT"}"#
        );
        assert_eq!(
            value(&connect),
            serde_json::json!({"timestamp":"T","type":"CONNECT","pid":7,"tid":9,
                               "addr":"8.8.8.8","port":443})
        );
        let exit = ev(7, 7, RecentKind::Exit);
        assert_eq!(
            sorted(&exit),
            r#"{"pid":7,"tid":7,"timestamp":"T","type":"EXIT"}"#
        );
        assert_eq!(
            value(&exit),
            serde_json::json!({"timestamp":"T","type":"EXIT","pid":7,"tid":7})
        );
        for e in [&open, &exec, &connect, &exit] {
            let mut e = e.clone();
            for tid in [e.tid, 0] {
                e.tid = tid;
                // Keys in alphabetical order (what a `serde_json::Map` writes), tid only
                // when non-zero.
                let v = value(&e);
                assert_eq!(sorted(&e), serde_json::to_string(&v).unwrap(), "{e:?}");
                assert_eq!(v.get("tid").is_some(), tid != 0, "{e:?}");
            }
        }
    }
}

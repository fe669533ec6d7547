//! The cross-session taint store: files a session wrote after it read a sensitive file (or
//! a copy of one), per uid, so that a later session of the same uid that sends or runs
//! such a file inherits the fact.
//!
//! Pipeline position: held by `crate::pipeline::Pipeline` (it outlives sessions) and handed
//! to [`super::SessionContext::apply_in`] with every accepted event. A session publishes a
//! tainted write here and looks up every file it opens or runs. Pure and driven by the
//! events' `ktime_ns`: no clock is read, so a replay gives the same facts.
//!
//! # Bounds
//!
//! * [`TAINT_PER_UID_MAX`] files per uid: publishing past it first drops expired entries,
//!   then the oldest.
//! * [`TAINT_UIDS_MAX`] uids: a new uid past it drops the uid whose newest entry is oldest.
//! * [`TAINT_MAX_AGE_NS`]: an entry older than this (event time) is not inherited.
//!
//! A later write of the same file by the same uid that truncates it without being tainted
//! clears the entry (the content was replaced); appends keep it.

use std::collections::HashMap;

use serde::Serialize;

use super::facts::FileKey;

/// Most tainted files remembered per uid.
pub const TAINT_PER_UID_MAX: usize = 256;
/// Most uids with tainted files remembered.
pub const TAINT_UIDS_MAX: usize = 64;
/// How long (event time) a tainted file stays tainted: 24 hours.
pub const TAINT_MAX_AGE_NS: u64 = 24 * 3600 * 1_000_000_000;

/// One tainted file: who wrote it and why it is tainted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Taint {
    /// The file's path when it was written.
    pub path: String,
    /// The session that wrote it.
    pub session_id: u64,
    /// The sensitive file (or tainted copy) that session had read before writing it.
    pub source: String,
    /// When it was written (`ktime_ns`).
    #[serde(skip)]
    pub written_ns: u64,
}

/// Tainted files per uid (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct TaintStore {
    by_uid: HashMap<u32, HashMap<FileKey, Taint>>,
}

impl TaintStore {
    /// Record that `uid`'s session wrote the tainted file `key`.
    pub fn publish(&mut self, uid: u32, key: FileKey, taint: Taint) {
        if !self.by_uid.contains_key(&uid) && self.by_uid.len() >= TAINT_UIDS_MAX {
            let oldest = self
                .by_uid
                .iter()
                .map(|(u, m)| (m.values().map(|t| t.written_ns).max().unwrap_or(0), *u))
                .min();
            if let Some((_, u)) = oldest {
                self.by_uid.remove(&u);
            }
        }
        let now = taint.written_ns;
        let files = self.by_uid.entry(uid).or_default();
        if !files.contains_key(&key) && files.len() >= TAINT_PER_UID_MAX {
            files.retain(|_, t| !expired(t, now));
            if files.len() >= TAINT_PER_UID_MAX
                && let Some(k) = files
                    .iter()
                    .min_by_key(|(k, t)| (t.written_ns, *k))
                    .map(|(k, _)| k.clone())
            {
                files.remove(&k);
            }
        }
        files.insert(key, taint);
    }

    /// The file's content was replaced by an untainted write of `uid`.
    pub fn clear(&mut self, uid: u32, key: &FileKey) {
        if let Some(files) = self.by_uid.get_mut(&uid) {
            files.remove(key);
            if files.is_empty() {
                self.by_uid.remove(&uid);
            }
        }
    }

    /// The taint of `key` for `uid` at `now_ns`, unless it expired.
    pub fn lookup(&self, uid: u32, key: &FileKey, now_ns: u64) -> Option<&Taint> {
        self.by_uid
            .get(&uid)?
            .get(key)
            .filter(|t| !expired(t, now_ns))
    }

    /// Tainted files held, over every uid.
    pub fn len(&self) -> usize {
        self.by_uid.values().map(HashMap::len).sum()
    }

    /// Whether no file is held.
    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }

    /// Uids with tainted files held.
    pub fn uids(&self) -> usize {
        self.by_uid.len()
    }
}

fn expired(t: &Taint, now_ns: u64) -> bool {
    now_ns.saturating_sub(t.written_ns) > TAINT_MAX_AGE_NS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(path: &str, session_id: u64, at: u64) -> Taint {
        Taint {
            path: path.into(),
            session_id,
            source: "/root/.ssh/id_rsa".into(),
            written_ns: at,
        }
    }

    fn key(p: &str) -> FileKey {
        FileKey::Path(p.into())
    }

    #[test]
    fn per_uid_lookup_expiry_and_clear() {
        let mut s = TaintStore::default();
        s.publish(1000, key("/tmp/loot"), taint("/tmp/loot", 7, 10));
        assert_eq!(s.lookup(1000, &key("/tmp/loot"), 20).unwrap().session_id, 7);
        assert!(s.lookup(1001, &key("/tmp/loot"), 20).is_none(), "other uid");
        assert!(s.lookup(1000, &key("/tmp/other"), 20).is_none());
        assert!(
            s.lookup(1000, &key("/tmp/loot"), 10 + TAINT_MAX_AGE_NS)
                .is_some()
        );
        assert!(
            s.lookup(1000, &key("/tmp/loot"), 11 + TAINT_MAX_AGE_NS)
                .is_none(),
            "expired"
        );
        s.clear(1000, &key("/tmp/loot"));
        assert!(s.lookup(1000, &key("/tmp/loot"), 20).is_none());
        assert!(s.is_empty());
    }

    #[test]
    fn bounded_per_uid_and_in_uids() {
        let mut s = TaintStore::default();
        for i in 0..(TAINT_PER_UID_MAX as u64 + 50) {
            let p = format!("/tmp/f{i}");
            s.publish(1000, key(&p), taint(&p, 1, i));
        }
        assert_eq!(s.len(), TAINT_PER_UID_MAX);
        // The oldest went first.
        assert!(s.lookup(1000, &key("/tmp/f0"), 500).is_none());
        let last = format!("/tmp/f{}", TAINT_PER_UID_MAX + 49);
        assert!(s.lookup(1000, &key(&last), 500).is_some());
        for uid in 0..(TAINT_UIDS_MAX as u32 + 10) {
            s.publish(
                uid + 1,
                key("/tmp/x"),
                taint("/tmp/x", 2, 1_000 + u64::from(uid)),
            );
        }
        assert_eq!(s.uids(), TAINT_UIDS_MAX);
        assert!(s.len() <= TAINT_UIDS_MAX * TAINT_PER_UID_MAX);
    }
}

//! The live edge's reader of OpenClaw's transcript: which transcript session issued a gateway
//! tool process's command (`crate::session::attribution` says why and what is done with it).
//!
//! Sits beside the pipeline, never in it: `casa run` calls [`TranscriptReader::lookup`] when an
//! `Outcome` asks (`Outcome::attribute`) and feeds the answer back as an
//! `Input::Attribution`, which the recorder writes, so replay never reads a database.
//!
//! OpenClaw 2026.9.6 keeps each agent's transcript in SQLite (WAL) at
//! `<state>/agents/<agent>/agent/openclaw-agent.sqlite`, table `transcript_events(session_id,
//! seq, event_json, …)`: an assistant row whose `message.content[]` has a `toolCall` with
//! `arguments.command`, later a `toolResult` row naming its `toolCallId` (evaluation/README.md
//! "Linking a gateway tool process to its CLI"). The lookup reads the newest
//! [`ROWS_SCANNED`] rows, takes the oldest call of that exact command that has no result yet
//! and was not given to an earlier process, and that session's last user message before it.
//!
//! The database belongs to the agent: it is read only while its writer has it open (its
//! `-wal` and `-shm` files exist, so SQLite never creates a file there), read-only (`mode=ro`,
//! a symbolic link refused), with the owner's filesystem ids (`setfsuid`: casa reads no more
//! than the agent could, and the path comes from the agent's argv), waiting at most
//! [`BUSY_MS`] for a lock; anything wrong (no library, no file, locked, unexpected rows) is an
//! empty answer: the tracker then attributes by recency. The lookup runs on the thread that
//! drains the ring (a few ms on a real transcript). SQLite is the system's `libsqlite3.so.0`, loaded at run time (`dlopen`); a host
//! without it gets empty answers, and casa's build needs nothing more.

use std::{
    collections::{HashSet, VecDeque},
    ffi::{CStr, CString, c_char, c_int, c_void},
    path::{Path, PathBuf},
};

use crate::session::attribution::{Attribution, Request};

/// Newest transcript rows read per lookup (bounds the time a lookup takes).
pub const ROWS_SCANNED: i64 = 2000;
/// Longest wait for a database another process holds locked, milliseconds.
pub const BUSY_MS: c_int = 100;
/// Tool calls remembered as already given to a process (oldest forgotten first).
const USED_MAX: usize = 4096;
/// Agent directories looked at under `<state>/agents`.
const AGENTS_MAX: usize = 16;

const SQLITE_OK: c_int = 0;
const SQLITE_ROW: c_int = 100;
const SQLITE_OPEN_READONLY: c_int = 0x1;
const SQLITE_OPEN_URI: c_int = 0x40;
const SQLITE_OPEN_NOMUTEX: c_int = 0x8000;
/// Refuse a database file that is a symbolic link (SQLite 3.31 and later).
const SQLITE_OPEN_NOFOLLOW: c_int = 0x0100_0000;

type OpenV2 = unsafe extern "C" fn(*const c_char, *mut *mut c_void, c_int, *const c_char) -> c_int;
type Close = unsafe extern "C" fn(*mut c_void) -> c_int;
type BusyTimeout = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
type PrepareV2 = unsafe extern "C" fn(
    *mut c_void,
    *const c_char,
    c_int,
    *mut *mut c_void,
    *mut *const c_char,
) -> c_int;
type BindInt64 = unsafe extern "C" fn(*mut c_void, c_int, i64) -> c_int;
type Step = unsafe extern "C" fn(*mut c_void) -> c_int;
type ColumnText = unsafe extern "C" fn(*mut c_void, c_int) -> *const u8;
type ColumnBytes = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
type ColumnInt64 = unsafe extern "C" fn(*mut c_void, c_int) -> i64;
type Finalize = unsafe extern "C" fn(*mut c_void) -> c_int;

/// The few SQLite entry points the lookup uses, from the system library.
struct Sqlite {
    open_v2: OpenV2,
    close: Close,
    busy_timeout: BusyTimeout,
    prepare_v2: PrepareV2,
    bind_int64: BindInt64,
    step: Step,
    column_text: ColumnText,
    column_bytes: ColumnBytes,
    column_int64: ColumnInt64,
    finalize: Finalize,
}

impl Sqlite {
    /// Load `libsqlite3.so.0`; `None` when the host has no SQLite.
    fn load() -> Option<Self> {
        let name = c"libsqlite3.so.0";
        // SAFETY: dlopen with a NUL-terminated name; the handle is never closed, so the
        // symbols below stay valid for the life of the process.
        let lib = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if lib.is_null() {
            return None;
        }
        let sym = |s: &CStr| {
            // SAFETY: `lib` is a live handle and `s` is NUL-terminated.
            let p = unsafe { libc::dlsym(lib, s.as_ptr()) };
            (!p.is_null()).then_some(p)
        };
        // SAFETY: each symbol is SQLite's C function of that name, whose signature (SQLite's
        // documented C API) is the type it is transmuted to.
        unsafe {
            Some(Self {
                open_v2: std::mem::transmute::<*mut c_void, OpenV2>(sym(c"sqlite3_open_v2")?),
                close: std::mem::transmute::<*mut c_void, Close>(sym(c"sqlite3_close_v2")?),
                busy_timeout: std::mem::transmute::<*mut c_void, BusyTimeout>(sym(
                    c"sqlite3_busy_timeout",
                )?),
                prepare_v2: std::mem::transmute::<*mut c_void, PrepareV2>(sym(
                    c"sqlite3_prepare_v2",
                )?),
                bind_int64: std::mem::transmute::<*mut c_void, BindInt64>(sym(
                    c"sqlite3_bind_int64",
                )?),
                step: std::mem::transmute::<*mut c_void, Step>(sym(c"sqlite3_step")?),
                column_text: std::mem::transmute::<*mut c_void, ColumnText>(sym(
                    c"sqlite3_column_text",
                )?),
                column_bytes: std::mem::transmute::<*mut c_void, ColumnBytes>(sym(
                    c"sqlite3_column_bytes",
                )?),
                column_int64: std::mem::transmute::<*mut c_void, ColumnInt64>(sym(
                    c"sqlite3_column_int64",
                )?),
                finalize: std::mem::transmute::<*mut c_void, Finalize>(sym(c"sqlite3_finalize")?),
            })
        }
    }

    /// The newest `limit` rows of `transcript_events` in `db` (read-only), newest first, as
    /// `(session_id, seq, event_json)`; rows without `event_json` (compressed) are skipped.
    fn newest_rows(&self, db: &Path, limit: i64) -> Option<Vec<(String, i64, String)>> {
        use std::os::unix::fs::MetadataExt;
        // Only a database its writer has open (its WAL and shared-memory files exist): SQLite
        // never has to create a file in the agent's directory.
        let beside = |ext: &str| {
            let mut p = db.as_os_str().to_owned();
            p.push(ext);
            PathBuf::from(p)
        };
        if !beside("-wal").is_file() || !beside("-shm").is_file() {
            return None;
        }
        // Read as the database's owner (the agent): no more than the agent itself may.
        let owner = std::fs::symlink_metadata(db).ok()?;
        let _as_owner = FsIds::switch(owner.uid(), owner.gid());
        let uri = CString::new(file_uri(db)).ok()?;
        let mut conn: *mut c_void = std::ptr::null_mut();
        let flags =
            SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW;
        // SAFETY: a NUL-terminated URI and an out-pointer; SQLite sets `conn` (even on error,
        // when it must still be closed, which `Conn`'s drop does).
        let rc = unsafe { (self.open_v2)(uri.as_ptr(), &mut conn, flags, std::ptr::null()) };
        let conn = Conn {
            api: self,
            db: conn,
        };
        if rc != SQLITE_OK || conn.db.is_null() {
            return None;
        }
        // SAFETY: `conn.db` is an open connection.
        unsafe { (self.busy_timeout)(conn.db, BUSY_MS) };
        let sql = c"SELECT session_id, seq, event_json FROM transcript_events \
                    WHERE event_json IS NOT NULL ORDER BY rowid DESC LIMIT ?1";
        let mut stmt: *mut c_void = std::ptr::null_mut();
        // SAFETY: an open connection, a NUL-terminated statement (-1: read to the NUL).
        let rc = unsafe {
            (self.prepare_v2)(conn.db, sql.as_ptr(), -1, &mut stmt, std::ptr::null_mut())
        };
        let stmt = Stmt { api: self, stmt };
        if rc != SQLITE_OK || stmt.stmt.is_null() {
            return None;
        }
        // SAFETY: a prepared statement with one parameter.
        unsafe { (self.bind_int64)(stmt.stmt, 1, limit) };
        let mut rows = Vec::new();
        // SAFETY: stepping a prepared statement; column values are read before the next step
        // and copied out (the pointers SQLite returns are valid until then).
        unsafe {
            while (self.step)(stmt.stmt) == SQLITE_ROW {
                let text = |i: c_int| {
                    let p = (self.column_text)(stmt.stmt, i);
                    let n = (self.column_bytes)(stmt.stmt, i);
                    if p.is_null() || n < 0 {
                        return String::new();
                    }
                    String::from_utf8_lossy(std::slice::from_raw_parts(p, n as usize)).into_owned()
                };
                rows.push((text(0), (self.column_int64)(stmt.stmt, 1), text(2)));
            }
        }
        Some(rows)
    }
}

/// This thread's filesystem uid/gid switched (`setfsuid`/`setfsgid`: file access checks and
/// ownership of anything created, nothing else; a switch away from root drops its file
/// capabilities), restored on drop.
struct FsIds {
    uid: u32,
    gid: u32,
}

impl FsIds {
    fn switch(uid: u32, gid: u32) -> Self {
        // SAFETY: setfsgid/setfsuid change only this thread's filesystem ids and return the
        // previous ones; they take no pointers.
        unsafe {
            let old_gid = libc::setfsgid(gid) as u32;
            let old_uid = libc::setfsuid(uid) as u32;
            Self {
                uid: old_uid,
                gid: old_gid,
            }
        }
    }
}

impl Drop for FsIds {
    fn drop(&mut self) {
        // SAFETY: as in `switch`, back to the ids this thread had.
        unsafe {
            libc::setfsuid(self.uid);
            libc::setfsgid(self.gid);
        }
    }
}

/// An open connection, closed on drop.
struct Conn<'a> {
    api: &'a Sqlite,
    db: *mut c_void,
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if !self.db.is_null() {
            // SAFETY: a connection from sqlite3_open_v2, closed once; its statements are
            // finalised first (`Stmt` is dropped before `Conn`).
            unsafe { (self.api.close)(self.db) };
        }
    }
}

/// A prepared statement, finalised on drop.
struct Stmt<'a> {
    api: &'a Sqlite,
    stmt: *mut c_void,
}

impl Drop for Stmt<'_> {
    fn drop(&mut self) {
        // SAFETY: a statement from sqlite3_prepare_v2 (or null, which finalize accepts),
        // finalised once.
        unsafe { (self.api.finalize)(self.stmt) };
    }
}

/// `file:` URI of `path` opened read-only, with the bytes a URI path cannot hold escaped.
fn file_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?mode=ro");
    uri
}

/// A tool call found in the transcript rows.
#[derive(Debug, PartialEq, Eq)]
struct Call {
    session: String,
    seq: i64,
    id: String,
}

/// What the rows (newest first) say about `command`: the oldest call of it with no result
/// and not in `used`, and its session's last user message before it.
fn find_call(
    rows: &[(String, i64, String)],
    command: &str,
    used: &HashSet<String>,
) -> Option<(Call, Option<String>)> {
    // Only rows that can be a call, a result or a user message are parsed.
    let events: Vec<(&str, i64, serde_json::Value)> = rows
        .iter()
        .filter(|(_, _, json)| {
            json.contains("\"toolCall\"")
                || json.contains("\"toolResult\"")
                || json.contains("\"user\"")
        })
        .filter_map(|(s, seq, json)| Some((s.as_str(), *seq, serde_json::from_str(json).ok()?)))
        .collect();
    let answered: HashSet<(&str, &str)> = events
        .iter()
        .filter_map(|(s, _, e)| {
            let m = e.get("message")?;
            if m.get("role")?.as_str()? != "toolResult" {
                return None;
            }
            Some((*s, m.get("toolCallId")?.as_str()?))
        })
        .collect();
    // Oldest first: calls start in the order they were issued.
    let call = events.iter().rev().find_map(|(s, seq, e)| {
        let m = e.get("message")?;
        if m.get("role")?.as_str()? != "assistant" {
            return None;
        }
        m.get("content")?.as_array()?.iter().find_map(|c| {
            let id = c.get("id")?.as_str()?;
            let open = c.get("type")?.as_str()? == "toolCall"
                && c.get("arguments")?.get("command")?.as_str()? == command
                && !answered.contains(&(*s, id))
                && !used.contains(id);
            open.then(|| Call {
                session: (*s).to_owned(),
                seq: *seq,
                id: id.to_owned(),
            })
        })
    })?;
    let user = events
        .iter()
        .filter(|(s, seq, _)| *s == call.session && *seq < call.seq)
        .filter_map(|(_, seq, e)| {
            let m = e.get("message")?;
            if m.get("role")?.as_str()? != "user" {
                return None;
            }
            Some((*seq, user_text(m.get("content")?)?))
        })
        .max_by_key(|(seq, _)| *seq)
        .map(|(_, text)| text);
    Some((call, user))
}

/// A user message's text: a string, or its `text` parts joined.
fn user_text(content: &serde_json::Value) -> Option<String> {
    if let Some(s) = content.as_str() {
        return Some(s.to_owned());
    }
    let parts: Vec<&str> = content
        .as_array()?
        .iter()
        .filter(|p| p.get("type").and_then(|t| t.as_str()) == Some("text"))
        .filter_map(|p| p.get("text")?.as_str())
        .collect();
    (!parts.is_empty()).then(|| parts.concat())
}

/// The state directories a tool process's runtime may use: the one its argv named, else its
/// environment's `OPENCLAW_STATE_DIR`, else `$HOME/.openclaw`.
fn state_dirs(req: &Request) -> Vec<PathBuf> {
    if let Some(d) = &req.state_dir {
        return vec![PathBuf::from(d)];
    }
    let env = std::fs::read(format!("/proc/{}/environ", req.pid)).unwrap_or_default();
    let var = |name: &[u8]| {
        env.split(|&b| b == 0)
            .find_map(|kv| kv.strip_prefix(name))
            .map(|v| PathBuf::from(String::from_utf8_lossy(v).into_owned()))
    };
    if let Some(d) = var(b"OPENCLAW_STATE_DIR=") {
        return vec![d];
    }
    var(b"HOME=")
        .map(|h| vec![h.join(".openclaw")])
        .unwrap_or_default()
}

/// The agents' transcript databases under a state directory.
fn databases(state: &Path) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(state.join("agents")) else {
        return Vec::new();
    };
    let mut dbs: Vec<PathBuf> = dir
        .filter_map(Result::ok)
        .take(AGENTS_MAX)
        .map(|e| e.path().join("agent").join("openclaw-agent.sqlite"))
        .filter(|p| p.is_file())
        .collect();
    dbs.sort();
    dbs
}

/// Looks gateway tool commands up in OpenClaw's transcripts (read-only).
pub struct TranscriptReader {
    sqlite: Option<Sqlite>,
    /// Tool calls already given to a process (a command run twice is two calls).
    used: HashSet<String>,
    used_order: VecDeque<String>,
}

impl Default for TranscriptReader {
    fn default() -> Self {
        Self::new()
    }
}

impl TranscriptReader {
    /// A reader using the system's SQLite (absent: every answer is empty).
    pub fn new() -> Self {
        Self {
            sqlite: Sqlite::load(),
            used: HashSet::new(),
            used_order: VecDeque::new(),
        }
    }

    /// Whether SQLite could be loaded.
    pub fn available(&self) -> bool {
        self.sqlite.is_some()
    }

    /// The answer to `req`: the transcript session that issued its command, and its user
    /// message; an empty answer when nothing (or nothing readable) says.
    pub fn lookup(&mut self, req: &Request) -> Attribution {
        let mut answer = Attribution {
            pid: req.pid,
            exec_ns: req.exec_ns,
            ..Default::default()
        };
        let Some(sqlite) = &self.sqlite else {
            return answer;
        };
        for db in state_dirs(req).iter().flat_map(|d| databases(d)) {
            let Some(rows) = sqlite.newest_rows(&db, ROWS_SCANNED) else {
                continue;
            };
            if let Some((call, message)) = find_call(&rows, &req.command, &self.used) {
                if self.used_order.len() >= USED_MAX
                    && let Some(old) = self.used_order.pop_front()
                {
                    self.used.remove(&old);
                }
                self.used.insert(call.id.clone());
                self.used_order.push_back(call.id);
                answer.transcript_session = Some(call.session);
                answer.message = message;
                break;
            }
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(session: &str, seq: i64, id: &str, command: &str) -> (String, i64, String) {
        let json = serde_json::json!({"type": "message", "message": {"role": "assistant",
            "content": [{"type": "toolCall", "id": id, "name": "exec",
                         "arguments": {"command": command, "yieldMs": 600000}}]}});
        (session.into(), seq, json.to_string())
    }

    fn user(session: &str, seq: i64, text: &str) -> (String, i64, String) {
        let json = serde_json::json!({"type": "message", "message": {"role": "user",
            "content": text}});
        (session.into(), seq, json.to_string())
    }

    fn result(session: &str, seq: i64, id: &str) -> (String, i64, String) {
        let json = serde_json::json!({"type": "message", "message": {"role": "toolResult",
            "toolCallId": id, "content": [{"type": "text", "text": "ok"}]}});
        (session.into(), seq, json.to_string())
    }

    #[test]
    fn the_oldest_open_call_of_the_command_names_its_session_and_message() {
        // Newest first, as the query returns them.
        let rows = vec![
            call("h7-B", 5, "callB", "sleep 6; echo x"),
            user("h7-B", 4, "[case:GB] go"),
            call("h7-A", 5, "callA", "sleep 6; echo x"),
            user("h7-A", 4, "[case:GA] go"),
            result("old", 6, "callOld"),
            call("old", 5, "callOld", "sleep 6; echo x"),
            (
                "h7-A".into(),
                3,
                "{not json".into(), // an unexpected row is skipped
            ),
        ];
        let mut used = HashSet::new();
        let (c, msg) = find_call(&rows, "sleep 6; echo x", &used).unwrap();
        assert_eq!(
            (c.session.as_str(), c.id.as_str(), msg.as_deref()),
            ("h7-A", "callA", Some("[case:GA] go")),
            "the answered call of an earlier run is not taken"
        );
        used.insert(c.id);
        let (c, msg) = find_call(&rows, "sleep 6; echo x", &used).unwrap();
        assert_eq!(
            (c.session.as_str(), msg.as_deref()),
            ("h7-B", Some("[case:GB] go"))
        );
        used.insert(c.id);
        assert_eq!(find_call(&rows, "sleep 6; echo x", &used), None);
        assert_eq!(find_call(&rows, "sleep 6", &HashSet::new()), None);
    }

    /// A database in OpenClaw 2026.9.6's schema (the columns the lookup reads), in WAL mode,
    /// written by Python's sqlite3 (the test needs `python3`).
    #[test]
    fn a_real_database_is_read_read_only() {
        let dir = std::env::temp_dir().join(format!("casa-transcript-{}", std::process::id()));
        let db = dir.join("agents/main/agent/openclaw-agent.sqlite");
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        let rows = serde_json::to_string(&vec![
            user("h7-A", 4, "[case:GA] go"),
            call("h7-A", 5, "callA", "printf '%s\\n' \"it's q\""),
            user("h7-B", 4, "[case:GB] go"),
            call("h7-B", 5, "callB", "id"),
        ])
        .unwrap();
        let script = "import sqlite3, json, sys\n\
             c = sqlite3.connect(sys.argv[1]); c.execute('pragma journal_mode=wal')\n\
             c.execute('CREATE TABLE transcript_events (session_id TEXT NOT NULL, seq INTEGER NOT NULL, event_json TEXT, created_at INTEGER NOT NULL, event_zstd BLOB, PRIMARY KEY (session_id, seq)) STRICT')\n\
             c.execute(\"INSERT INTO transcript_events VALUES ('z', 1, NULL, 1, x'00')\")\n\
             for s, q, j in json.loads(sys.argv[2]): c.execute('INSERT INTO transcript_events VALUES (?,?,?,?,NULL)', (s, q, j, 1))\n\
             c.commit(); print('ready', flush=True); sys.stdin.read()\n";
        // The writer keeps the database open, as the gateway does.
        let mut writer = std::process::Command::new("python3")
            .args(["-c", script, db.to_str().unwrap(), &rows])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut ready = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(writer.stdout.take().unwrap()),
            &mut ready,
        )
        .unwrap();
        assert_eq!(ready.trim(), "ready");
        let before = std::fs::read(&db).unwrap();
        let listing = || {
            let mut names: Vec<_> = std::fs::read_dir(db.parent().unwrap())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            names
        };
        let files = listing();
        let mut r = TranscriptReader::new();
        assert!(r.available(), "libsqlite3.so.0 is on this host");
        let mut req = Request {
            pid: 1,
            exec_ns: 9,
            command: "printf '%s\\n' \"it's q\"".into(),
            state_dir: Some(dir.to_str().unwrap().into()),
        };
        let a = r.lookup(&req);
        assert_eq!(a.transcript_session.as_deref(), Some("h7-A"));
        assert_eq!(a.message.as_deref(), Some("[case:GA] go"));
        assert_eq!(
            r.lookup(&req).transcript_session,
            None,
            "one call, one process"
        );
        req.command = "id".into();
        assert_eq!(r.lookup(&req).transcript_session.as_deref(), Some("h7-B"));
        assert_eq!(std::fs::read(&db).unwrap(), before, "never written");
        assert_eq!(listing(), files, "no file created or removed");
        drop(writer.stdin.take());
        assert!(writer.wait().unwrap().success());
        // Closed by its writer (no WAL file): not opened, so nothing is created there.
        let files = listing();
        req.command = "id".into();
        assert_eq!(
            TranscriptReader::new().lookup(&req).transcript_session,
            None
        );
        assert_eq!(listing(), files);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_database_or_library_is_an_empty_answer() {
        let mut r = TranscriptReader::new();
        let req = Request {
            pid: u32::MAX,
            exec_ns: 1,
            command: "true".into(),
            state_dir: Some("/nonexistent/casa-test-state".into()),
        };
        assert_eq!(
            r.lookup(&req),
            Attribution {
                pid: u32::MAX,
                exec_ns: 1,
                ..Default::default()
            }
        );
        assert_eq!(
            file_uri(Path::new("/tmp/a b?#%/x.sqlite")),
            "file:/tmp/a%20b%3F%23%25/x.sqlite?mode=ro"
        );
    }
}

//! Build the benchmark recording: real recorded agent sessions replicated to a large corpus.
//!
//! ```text
//! cargo run --release -p casa --example bench_corpus -- \
//!     --out target/bench/corpus.rec [--events 1000000] [--concurrency 16] [SOURCE.rec ...]
//! ```
//!
//! Every copy of a source recording gets fresh pids and tids (one counter for the whole
//! corpus, so no two copies share a process) and its timestamps shifted so that about
//! `--concurrency` sessions are open at any moment. The copies are merged in time order; the
//! order of records inside a copy is kept. Sources default to the golden recordings in
//! `casa/tests/fixtures/recordings/`. The records keep the kernel's byte layout
//! (`casa_common::wire`), so replaying the corpus exercises the real decoder.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use casa::recording::{Frame, Meta, Reader, Summary, Writer};
use casa_common::wire::{BODY_OFFSET, EventKind};

/// Offsets of the pid fields in a record (see `casa_common::wire::Header` and the bodies).
const HDR_KIND: usize = 2;
const HDR_KTIME: usize = 8;
const HDR_TID: usize = 16;
const HDR_TGID: usize = 20;
const HDR_PPID: usize = 24;
/// `ExecBody::old_tid` and `ForkBody::{child_tid, child_tgid}`.
const EXEC_OLD_TID: usize = BODY_OFFSET + 4;
const FORK_CHILD_TID: usize = BODY_OFFSET;
const FORK_CHILD_TGID: usize = BODY_OFFSET + 4;

/// First pid handed out, and where the counter wraps (below the kernel's largest pid_max).
const PID_FIRST: u32 = 100_000;
const PID_LAST: u32 = 4_000_000;

struct Source {
    name: String,
    records: Vec<Vec<u8>>,
    start_ns: u64,
    span_ns: u64,
}

struct Args {
    out: PathBuf,
    events: usize,
    concurrency: u64,
    sources: Vec<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut out = PathBuf::from("target/bench/corpus.rec");
    let mut events = 1_000_000usize;
    let mut concurrency = 16u64;
    let mut sources = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = it.next().context("--out needs a path")?.into(),
            "--events" => events = it.next().context("--events needs a number")?.parse()?,
            "--concurrency" => {
                concurrency = it.next().context("--concurrency needs a number")?.parse()?
            }
            "-h" | "--help" => {
                println!("bench_corpus --out FILE [--events N] [--concurrency C] [SOURCE.rec ...]");
                std::process::exit(0);
            }
            s if s.starts_with("--") => bail!("unknown option {s}"),
            _ => sources.push(PathBuf::from(a)),
        }
    }
    if sources.is_empty() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recordings");
        for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "rec") {
                sources.push(p);
            }
        }
        sources.sort();
    }
    if sources.is_empty() {
        bail!("no source recordings");
    }
    Ok(Args {
        out,
        events,
        concurrency: concurrency.max(1),
        sources,
    })
}

fn get_u32(r: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(r[at..at + 4].try_into().expect("4 bytes"))
}

fn put_u32(r: &mut [u8], at: usize, v: u32) {
    r[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn ktime(r: &[u8]) -> u64 {
    u64::from_le_bytes(r[HDR_KTIME..HDR_KTIME + 8].try_into().expect("8 bytes"))
}

fn load(path: &Path) -> anyhow::Result<(Meta, Source)> {
    let mut reader = Reader::open(path)?;
    let meta = reader.meta().clone();
    let mut records = Vec::new();
    while let Some(frame) = reader.next_frame()? {
        if let Frame::Record(raw) = frame {
            if raw.len() < BODY_OFFSET {
                bail!("{}: record shorter than a header", path.display());
            }
            records.push(raw);
        }
    }
    let start_ns = records.iter().map(|r| ktime(r)).min().unwrap_or(0);
    let end_ns = records.iter().map(|r| ktime(r)).max().unwrap_or(0);
    Ok((
        meta,
        Source {
            name: path.display().to_string(),
            records,
            start_ns,
            span_ns: (end_ns - start_ns).max(1),
        },
    ))
}

/// Hands out pids; every copy maps each pid it meets to a new one.
struct Pids {
    next: u32,
    handed: u64,
}

impl Pids {
    fn fresh(&mut self) -> u32 {
        let p = self.next;
        self.next = if p >= PID_LAST { PID_FIRST } else { p + 1 };
        self.handed += 1;
        p
    }
}

/// One copy of `src`, starting at `at_ns`, with its own pids.
fn copy(src: &Source, at_ns: u64, pids: &mut Pids, out: &mut Vec<(u64, Vec<u8>)>) {
    let mut map: HashMap<u32, u32> = HashMap::new();
    let mut remap = |p: u32| -> u32 {
        if p <= 1 {
            p
        } else {
            *map.entry(p).or_insert_with(|| pids.fresh())
        }
    };
    let mut order_ns = 0u64;
    for raw in &src.records {
        let mut r = raw.clone();
        for at in [HDR_TID, HDR_TGID, HDR_PPID] {
            let p = remap(get_u32(&r, at));
            put_u32(&mut r, at, p);
        }
        let kind = EventKind::from_u16(u16::from_le_bytes([r[HDR_KIND], r[HDR_KIND + 1]]));
        match kind {
            Some(EventKind::Exec) if r.len() >= EXEC_OLD_TID + 4 => {
                let p = remap(get_u32(&r, EXEC_OLD_TID));
                put_u32(&mut r, EXEC_OLD_TID, p);
            }
            Some(EventKind::Fork) if r.len() >= FORK_CHILD_TGID + 4 => {
                for at in [FORK_CHILD_TID, FORK_CHILD_TGID] {
                    let p = remap(get_u32(&r, at));
                    put_u32(&mut r, at, p);
                }
            }
            _ => {}
        }
        let t = at_ns + (ktime(raw) - src.start_ns);
        r[HDR_KTIME..HDR_KTIME + 8].copy_from_slice(&t.to_le_bytes());
        // Sort key: never earlier than the copy's previous record, so its order is kept.
        order_ns = order_ns.max(t);
        out.push((order_ns, r));
    }
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let mut meta = None;
    let mut sources = Vec::new();
    for p in &args.sources {
        let (m, s) = load(p)?;
        if s.records.is_empty() {
            eprintln!("bench_corpus: {}: no records, skipped", s.name);
            continue;
        }
        meta.get_or_insert(m);
        sources.push(s);
    }
    let Some(mut meta) = meta else {
        bail!("no source recording has records");
    };
    let mean_span = sources.iter().map(|s| s.span_ns).sum::<u64>() / sources.len().max(1) as u64;
    let stride_ns = (mean_span / args.concurrency).max(1);
    let base_ns = sources.iter().map(|s| s.start_ns).min().unwrap_or(0);

    let mut pids = Pids {
        next: PID_FIRST,
        handed: 0,
    };
    let mut all: Vec<(u64, Vec<u8>)> = Vec::with_capacity(args.events + 1024);
    let mut copies = 0u64;
    while all.len() < args.events {
        let src = &sources[(copies as usize) % sources.len()];
        copy(src, base_ns + copies * stride_ns, &mut pids, &mut all);
        copies += 1;
    }
    // Stable: records with equal keys keep their copy order and their order inside a copy.
    all.sort_by_key(|(t, _)| *t);

    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    meta.command = vec![format!(
        "bench_corpus: {copies} copies of {} recordings, {} concurrent",
        sources.len(),
        args.concurrency
    )];
    let mut w = Writer::create(&args.out, &meta)?;
    let mut summary = Summary::default();
    for (_, r) in &all {
        w.record(r)?;
        let kind = match EventKind::from_u16(u16::from_le_bytes([r[HDR_KIND], r[HDR_KIND + 1]])) {
            Some(EventKind::Exec) => "exec",
            Some(EventKind::Fork) => "fork",
            Some(EventKind::Exit) => "exit",
            Some(EventKind::Open) => "open",
            Some(EventKind::Connect) => "connect",
            Some(EventKind::FileOp) => "file_op",
            Some(EventKind::ProcOp) => "proc_op",
            Some(EventKind::IoUring) => "io_uring",
            Some(EventKind::SockOp) => "socket",
            Some(EventKind::TcpState) => "tcp",
            Some(EventKind::SendVolume) => "send_volume",
            None => "unknown",
        };
        *summary.events.entry(kind.to_owned()).or_default() += 1;
    }
    w.finish(&summary)?;
    let span_s = (ktime(&all.last().expect("records").1) - base_ns) as f64 / 1e9;
    println!(
        "bench_corpus: {} records ({} session copies of {} recordings, ~{} concurrent, {:.0} s of event time, {} pids) -> {}",
        all.len(),
        copies,
        sources.len(),
        args.concurrency,
        span_s,
        pids.handed,
        args.out.display()
    );
    Ok(())
}

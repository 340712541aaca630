//! `trace`: replay real editing traces through our [`Rga`] and through diamond-types 1.0.
//!
//! Each `sequential/*.json.gz` trace (one author, positions in Unicode code points) is replayed
//! patch by patch as local edits, by both implementations in the same process, `--repeat` times
//! each, alternating; the median time is reported. Times (`ours_ms`, `reference_ms`) are the
//! CPU time of the benchmarking thread, so other load on a shared machine (builds, other
//! benchmarks) does not skew the ratio; the wall-clock medians are reported next to them
//! (`ours_wall_ms`, `reference_wall_ms`). Our replay goes through the public API a
//! node uses (`insert`/`delete`, each returning its delta, which is dropped here); the
//! reference is diamond-types' `ListCRDT` local-edit path (the one its own `apply_local`
//! benchmark uses). The inserted texts sit in one contiguous buffer, as an editor or a network
//! buffer would hand them over, so neither side pays a cache miss per patch for a separately
//! allocated string. Both results are checked against `endContent` before anything is
//! reported. Memory is measured in one extra, untimed run per implementation with the
//! counting allocator ([`crate::alloc`]): the peak heap bytes during the replay and what the
//! finished document holds. `encoded_bytes` is our canonical encoding of the final state;
//! `reference_encoded_bytes` is diamond-types' `ENCODE_PATCH` (which, unlike ours, also keeps
//! deleted text, LZ4-compressed).
//!
//! The traces are the public `josephg/editing-traces` collection (CC BY 4.0).

use std::fs::File;
use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustix::time::{ClockId, clock_gettime};

use anyhow::{Context, Result, bail, ensure};
use crdt::{NodeId, Rga};
use diamond_types::list::ListCRDT;
use diamond_types::list::encoding::ENCODE_PATCH;
use diamond_types::list::operation::Operation;
use flate2::read::GzDecoder;
use serde::Deserialize;

use crate::{alloc, report};

/// Options of the `trace` scenario.
#[derive(clap::Args, Debug)]
pub struct TraceArgs {
    /// Folder holding `sequential/*.json.gz` (default: `$CRDTKV_TRACES_DIR`, else
    /// `../shared/data/editing-traces` next to the checkout).
    #[arg(long)]
    pub traces_dir: Option<PathBuf>,
    /// Timed replays per implementation and trace; the median is reported.
    #[arg(long, default_value_t = 7)]
    pub repeat: usize,
    /// Only traces whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Trace {
    #[serde(default)]
    start_content: String,
    end_content: String,
    txns: Vec<Txn>,
}

/// Position, characters deleted, text inserted.
type Patch<'a> = (usize, usize, &'a str);

#[derive(Deserialize)]
struct Txn {
    patches: Vec<(usize, usize, String)>,
}

fn traces_dir(args: &TraceArgs) -> PathBuf {
    args.traces_dir
        .clone()
        .or_else(|| std::env::var_os("CRDTKV_TRACES_DIR").map(PathBuf::from))
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/editing-traces")
        })
}

fn load(path: &Path) -> Result<Trace> {
    let mut json = String::new();
    GzDecoder::new(File::open(path).with_context(|| format!("opening {}", path.display()))?)
        .read_to_string(&mut json)
        .with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&json).with_context(|| format!("parsing {}", path.display()))
}

fn replay_ours(patches: &[Patch<'_>]) -> Result<Rga> {
    let node = NodeId(1);
    let mut doc = Rga::new();
    for (pos, del, ins) in patches {
        if *del > 0 {
            black_box(doc.delete(node, *pos as u64, *del as u64)?);
        }
        if !ins.is_empty() {
            black_box(doc.insert(node, *pos as u64, ins)?);
        }
    }
    Ok(doc)
}

fn replay_reference(patches: &[Patch<'_>]) -> ListCRDT {
    let mut doc = ListCRDT::new();
    let agent = doc.get_or_create_agent_id("bench");
    let mut ops: Vec<Operation> = Vec::with_capacity(2);
    for (pos, del, ins) in patches {
        ops.clear();
        if *del > 0 {
            ops.push(Operation::new_delete(*pos..*pos + *del));
        }
        if !ins.is_empty() {
            ops.push(Operation::new_insert(*pos, ins));
        }
        doc.apply_local_operations(agent, &ops);
    }
    doc
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// CPU time consumed by this thread, in milliseconds.
fn thread_cpu_ms() -> f64 {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    t.tv_sec as f64 * 1000.0 + t.tv_nsec as f64 / 1e6
}

/// Runs `f`, returning its result, its thread CPU time and its wall time (ms).
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let wall = Instant::now();
    let cpu = thread_cpu_ms();
    let out = f();
    let cpu = thread_cpu_ms() - cpu;
    (out, cpu, wall.elapsed().as_secs_f64() * 1000.0)
}

/// Runs the scenario.
pub fn run(args: TraceArgs) -> Result<()> {
    ensure!(args.repeat > 0, "--repeat must be at least 1");
    let dir = traces_dir(&args).join("sequential");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {} (set --traces-dir)", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".json.gz"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no .json.gz traces in {}", dir.display());
    }
    for path in files {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .trim_end_matches(".json.gz")
            .to_owned();
        if args.only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let trace = load(&path)?;
        ensure!(
            trace.start_content.is_empty(),
            "{name}: traces with start content are not supported"
        );
        // All inserted text in one buffer: both replays read it in order from contiguous
        // memory, as an editor or a network buffer would hand it over, instead of chasing one
        // small heap allocation per patch.
        let mut texts = String::new();
        let mut spans = Vec::new();
        for (pos, del, ins) in trace.txns.into_iter().flat_map(|t| t.patches) {
            let start = texts.len();
            texts.push_str(&ins);
            spans.push((pos, del, start..texts.len()));
        }
        let patches: Vec<Patch<'_>> = spans
            .into_iter()
            .map(|(p, d, r)| (p, d, &texts[r]))
            .collect();

        let (mut ours, mut ours_wall) = (Vec::new(), Vec::new());
        let (mut theirs, mut theirs_wall) = (Vec::new(), Vec::new());
        for _ in 0..args.repeat {
            let (doc, cpu, wall) = timed(|| replay_ours(&patches));
            let doc = doc?;
            ours.push(cpu);
            ours_wall.push(wall);
            ensure!(
                doc.to_string() == trace.end_content,
                "{name}: our result differs from endContent"
            );
            drop(doc);

            let (doc, cpu, wall) = timed(|| replay_reference(&patches));
            theirs.push(cpu);
            theirs_wall.push(wall);
            ensure!(
                doc.branch.content().to_string() == trace.end_content,
                "{name}: diamond-types result differs from endContent"
            );
        }

        let (doc, ours_peak, ours_held) = alloc::measure(|| replay_ours(&patches));
        let doc = doc?;
        let (reference, ref_peak, ref_held) = alloc::measure(|| replay_reference(&patches));
        let encoded = crdt::encoding::encode(&doc).len();
        let ref_encoded = reference.oplog.encode(ENCODE_PATCH).len();
        let stats = doc.stats();

        report::Result::new("trace", &name)
            .compare("ms", median(ours), "diamond-types", median(theirs))
            .field("ours_wall_ms", round3(median(ours_wall)))
            .field("reference_wall_ms", round3(median(theirs_wall)))
            .field("patches", patches.len())
            .field("final_chars", doc.len())
            .field("runs", stats.runs)
            .field("ours_peak_bytes", ours_peak)
            .field("ours_final_bytes", ours_held)
            .field("reference_peak_bytes", ref_peak)
            .field("reference_final_bytes", ref_held)
            .field("encoded_bytes", encoded)
            .field("reference_encoded_bytes", ref_encoded)
            .emit();
    }
    Ok(())
}

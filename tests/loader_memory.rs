//! The loaders' peak memory on hostile and honest files, measured by counting every allocation
//! of this test binary, against the bounds SECURITY.md states: a loader holds at most
//! `PER_BYTE` bytes for each byte it reads, plus `BASE`.

#[macro_use]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use burn::prelude::*;
use plmscope::analysis::labels;
use plmscope::weights::{pickle, safetensors, sae};

struct Counting;
static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            PEAK.fetch_max(NOW.fetch_add(layout.size(), Relaxed) + layout.size(), Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        NOW.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            NOW.fetch_sub(layout.size(), Relaxed);
            PEAK.fetch_max(NOW.fetch_add(new_size, Relaxed) + new_size, Relaxed);
        }
        q
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// What a loader may hold for each byte of its input, and besides: the pickle's memo budget
/// (48-byte nodes, 65,536 + one per byte) is most of it.
const PER_BYTE: usize = 64;
const BASE: usize = 8 << 20;

/// The most bytes allocated at once while `f` runs, above what was allocated before it.
fn peak_of<T>(f: impl FnOnce() -> T) -> usize {
    let before = NOW.load(Relaxed);
    PEAK.store(before, Relaxed);
    drop(f());
    PEAK.load(Relaxed) - before
}

/// A memo bomb of `n` rounds: each round pairs the memo's last value with itself.
fn bomb(n: usize) -> Vec<u8> {
    let mut p = b"\x80\x02]".to_vec();
    for _ in 0..n {
        p.extend(b"q\x00h\x00\x86");
    }
    p.push(b'.');
    common::hostile::zip_of(&[("a/data.pkl", &p)])
}

#[test]
fn no_loader_holds_more_than_its_bound() {
    let device = Device::flex();
    let mut rows = Vec::new();
    let mut over = Vec::new();
    let mut check = |what: String, input: usize, peak: usize| {
        rows.push(format!("{what:<44} {input:>10} B in, peak {peak:>10} B ({:.1} × input)", peak as f64 / input as f64));
        if peak > PER_BYTE * input + BASE {
            over.push(format!("{what}: {peak} bytes at peak for {input} bytes in"));
        }
    };
    for (name, bytes, _) in common::hostile::pt_cases() {
        check(format!("hostile .pt {name}"), bytes.len(), peak_of(|| pickle::load_pt(&bytes, name)));
    }
    // The memo bomb's cost grows with its file, not with the 2^n values it names.
    for n in [40, 4_000, 400_000] {
        let bytes = bomb(n);
        check(format!("memo bomb of {n} rounds"), bytes.len(), peak_of(|| pickle::load_pt(&bytes, "bomb.pt")));
    }
    let honest = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/fixtures/sae/interplm_t6_l3.pt")).unwrap();
    check("InterPLM .pt (t6 layer 3), read".into(), honest.len(), peak_of(|| pickle::load_pt(&honest, "l3.pt")));
    check(
        "InterPLM .pt (t6 layer 3), on the device".into(),
        honest.len(),
        peak_of(|| sae::load(sae::SaeSource::Pt { bytes: &honest, name: "l3.pt", k: None }, 320, &device)),
    );
    let tiny = common::TINY_SAFETENSORS;
    check("tiny fair-esm .pt, read".into(), common::TINY_PT.len(), peak_of(|| pickle::load_pt(common::TINY_PT, "esm2_tiny.pt")));
    check("tiny model.safetensors, read".into(), tiny.len(), peak_of(|| safetensors::read(tiny, "model.safetensors")));
    check(
        "tiny model, on the device".into(),
        tiny.len(),
        peak_of(|| plmscope::weights::esm::from_hub(common::TINY_CONFIG, tiny, &device)),
    );
    // Labels: a features JSON of 20,000 examples, and a FASTA of 20,000 records.
    let example = r#"{"accession": "Q1", "sequence": "MKTAYIAKQRQISFVKSHFS", "behavior": "tm", "behavior_segments": [[0, 3]]}"#;
    let json = format!(r#"{{"meta": {{}}, "features": [{{"examples": [{}]}}]}}"#, vec![example; 20_000].join(","));
    check("explorer features JSON, 20,000 examples".into(), json.len(), peak_of(|| labels::read_proteins(&json)));
    let fasta: String = (0..20_000).map(|i| format!(">p{i}\nMKTAYIAKQRQISFVKSHFS\n")).collect();
    check("FASTA, 20,000 records".into(), fasta.len(), peak_of(|| labels::read_proteins(&fasta)));
    eprintln!("{}", rows.join("\n"));
    assert!(over.is_empty(), "over the bound of {PER_BYTE} × input + {BASE} bytes:\n{}", over.join("\n"));
}

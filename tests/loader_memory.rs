//! The loaders' peak memory on hostile and honest files, measured by counting every allocation
//! of this test binary, against the bounds SECURITY.md states: a loader holds at most
//! `PER_BYTE` bytes for each byte it reads, plus `BASE`.

#[macro_use]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use burn::prelude::*;
use plmscope::analysis::labels;
use plmscope::device::Precision;
use plmscope::weights::{pt, safetensors, sae};

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
        check(format!("hostile .pt {name}"), bytes.len(), peak_of(|| pt::state_dict(&bytes, name)));
    }
    // The memo bomb's cost grows with its file, not with the 2^n values it names.
    for n in [40, 4_000, 400_000] {
        let bytes = bomb(n);
        check(format!("memo bomb of {n} rounds"), bytes.len(), peak_of(|| pt::state_dict(&bytes, "bomb.pt")));
    }
    let honest = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/fixtures/sae/interplm_t6_l3.pt")).unwrap();
    check("InterPLM .pt (t6 layer 3), read".into(), honest.len(), peak_of(|| pt::state_dict(&honest, "l3.pt")));
    check(
        "InterPLM .pt (t6 layer 3), on the device".into(),
        honest.len(),
        peak_of(|| sae::load(sae::SaeSource::Pt { bytes: &honest, name: "l3.pt", k: None }, 320, &device)),
    );
    let tiny = common::TINY_SAFETENSORS;
    check(
        "tiny fair-esm .pt, on the device".into(),
        common::TINY_PT.len(),
        peak_of(|| plmscope::weights::esm::from_fair_esm(common::TINY_PT, "esm2_tiny.pt", &device, Precision::F32)),
    );
    check("tiny model.safetensors, read".into(), tiny.len(), peak_of(|| safetensors::read(tiny, "model.safetensors")));
    check(
        "tiny model, on the device".into(),
        tiny.len(),
        peak_of(|| plmscope::weights::esm::from_hub(common::TINY_CONFIG, tiny, &device, Precision::F32)),
    );
    // Labels: a features JSON of 20,000 examples, and a FASTA of 20,000 records.
    let example = r#"{"accession": "Q1", "sequence": "MKTAYIAKQRQISFVKSHFS", "behavior": "tm", "behavior_segments": [[0, 3]]}"#;
    let json = format!(r#"{{"meta": {{}}, "features": [{{"examples": [{}]}}]}}"#, vec![example; 20_000].join(","));
    check("explorer features JSON, 20,000 examples".into(), json.len(), peak_of(|| labels::read_proteins(&json)));
    let fasta: String = (0..20_000).map(|i| format!(">p{i}\nMKTAYIAKQRQISFVKSHFS\n")).collect();
    check("FASTA, 20,000 records".into(), fasta.len(), peak_of(|| labels::read_proteins(&fasta)));
    let streamed = streamed_model(&device, &mut rows);
    eprintln!("{}", rows.join("\n"));
    streamed.unwrap();
    assert!(over.is_empty(), "over the bound of {PER_BYTE} × input + {BASE} bytes:\n{}", over.join("\n"));
}

/// A random checkpoint of 2 layers at esm2_t33_650M's width (164 MB), in both formats (a hub
/// folder, a fair-esm `.pt`), streamed from the disk in 8 MiB chunks as the CLI reads it: beyond
/// the model's own weights (on the CPU device, in this process), the loader holds the tensor being
/// filled, its f32 copy and its transpose, plus a chunk. Read whole, the same file costs its bytes
/// again on top.
fn streamed_model(device: &Device, rows: &mut Vec<String>) -> Result<(), String> {
    let mut config = plmscope::esm::EsmConfig::esm2("650M").unwrap();
    config.num_hidden_layers = 2;
    let config_json = serde_json::to_string(&config).unwrap();
    let dir = std::env::temp_dir().join(format!("plmscope-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (hub, pt) = (dir.join("model.safetensors"), dir.join("esm2_d1280.pt"));
    std::fs::write(&hub, common::random_hub_safetensors(&config_json, 7)).unwrap();
    std::fs::write(&pt, common::fair_esm::random_fair_esm_pt(&config_json, 7)).unwrap();
    // intermediate.dense.weight and output.dense.weight, [5120, 1280] f32.
    let largest = config.intermediate_size * config.hidden_size * 4;
    let chunk = 8 << 20;
    let mut over = Vec::new();
    for (what, path, config) in [("hub folder", &hub, Some(&config_json)), ("fair-esm .pt", &pt, None)] {
        let len = std::fs::metadata(path).unwrap().len() as usize;
        let peak = peak_of(|| {
            use std::io::Read;
            let mut session = plmscope::session::Session::new(device.clone());
            let mut file = std::fs::File::open(path).unwrap();
            let mut head = vec![0u8; 1 << 20];
            file.read_exact(&mut head).unwrap();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let mut starts: Vec<(String, Vec<u8>)> = config.map(|c| ("config.json".to_string(), c.clone().into_bytes())).into_iter().collect();
            starts.push((name, head.clone()));
            assert_eq!(session.model_stream_start(&plmscope::weights::detect::NamedFile::views(&starts), "d1280").unwrap(), starts.len() - 1);
            session.model_stream_push(&head).unwrap();
            let mut buf = vec![0u8; chunk];
            loop {
                let n = file.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                session.model_stream_push(&buf[..n]).unwrap();
            }
            session.model_stream_finish().unwrap();
            session
        });
        let bound = len + 3 * largest + 2 * chunk + (1 << 20) + BASE;
        let row = format!("d1280 × 2 layers, {what}, 8 MiB chunks");
        rows.push(format!("{row:<44} {len:>10} B in, peak {peak:>10} B (model + {:.1} MB; bound model + {:.1} MB)", (peak as f64 - len as f64) / 1e6, (bound - len) as f64 / 1e6));
        if peak > bound {
            over.push(format!("streamed d1280 model ({what}): {peak} bytes at peak, over the bound of {bound}"));
        }
    }
    let len = std::fs::metadata(&hub).unwrap().len() as usize;
    let whole = peak_of(|| {
        let bytes = std::fs::read(&hub).unwrap();
        plmscope::weights::esm::from_hub(&config_json, &bytes, device, Precision::F32).unwrap()
    });
    std::fs::remove_dir_all(&dir).unwrap();
    rows.push(format!("{:<44} {len:>10} B in, peak {whole:>10} B ({:.2} × the file)", "d1280 × 2 layers, hub folder, read whole", whole as f64 / len as f64));
    match over.is_empty() {
        true => Ok(()),
        false => Err(over.join("\n")),
    }
}

//! The text formats, each on the same input: FASTA, annotated proteins (UniProt and explorer JSON),
//! probe JSON, circuit graph JSON, a partial atlas (read, merged, written), the seed explorer's
//! features JSON as atlases (read, written), and the edit grammar
//! (edits, positions, steers).
#![no_main]
use libfuzzer_sys::fuzz_target;
use plmscope::analysis::{atlas, circuit::Graph, generate, labels, probe::Probe};
use plmscope::{alphabet, intervene};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = alphabet::parse_fasta(&text);
    if let Ok(read) = labels::read_proteins(&text) {
        for p in &read.proteins {
            for (concept, _) in labels::concepts(&read.proteins) {
                let _ = p.labels(&concept);
            }
        }
    }
    let _ = Probe::from_json(&text);
    if let Ok(partial) = atlas::Partial::from_json(&text) {
        // Merged into a twin that holds no shard, so that every sum and top-k runs.
        let mut twin = partial.clone();
        twin.shards.clear();
        let _ = twin.merge(partial.clone());
        let n = partial.features.len();
        if let Ok(a) = atlas::format::finish(partial, vec![None; n]) {
            let _ = a.files();
        }
    }
    if let Ok(atlases) = atlas::explorer::read("fuzz.json", &text) {
        for a in atlases.values() {
            let _ = a.zip();
        }
    }
    let _ = serde_json::from_str::<Graph>(&text);
    let _ = text.parse::<intervene::Edit>();
    let _ = intervene::parse_positions(&text);
    let _ = generate::parse_steer(&text);
});

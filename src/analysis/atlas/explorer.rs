//! The seed explorer's `features_tm.json` / `features_sp.json` as atlases of its SAE, one per
//! layer: each listed feature's top examples with its top positions (quantised like any card's
//! activations), its feature mask and the behavior's segments. They hold no corpus counts,
//! histograms or direct effects: the file has only the examples.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::format::{self, Atlas, Card, Histogram, Manifest, Shown};
use super::{AtlasError, AtlasOptions, Identity, Protein, Subject, BINS, BINS_PER_DECADE, LOWEST_DECADE};
use crate::alphabet::MAX_RESIDUES;

#[derive(Deserialize)]
struct File {
    meta: Meta,
    features: Vec<Feature>,
}

#[derive(Deserialize)]
struct Meta {
    model: String,
}

#[derive(Deserialize)]
struct Feature {
    layer: usize,
    feature: usize,
    examples: Vec<Example>,
}

#[derive(Deserialize)]
struct Example {
    accession: String,
    sequence: String,
    behavior_segments: Vec<(u32, u32)>,
    feature_segments: Vec<(u32, u32)>,
    top_positions: Vec<Position>,
    max_act: f32,
}

#[derive(Deserialize)]
struct Position {
    pos: u32,
    act: f32,
}

/// Layers and features beyond these are no SAE's: they bound what a file can make us allocate.
const MAX_LAYER: usize = 100;
const MAX_FEATURE: usize = 1 << 20;

/// The atlases of `name` (the file's name), one per layer it lists, by layer.
pub fn read(name: &str, text: &str) -> Result<BTreeMap<usize, Atlas>, AtlasError> {
    let file: File = serde_json::from_str(text).map_err(|e| AtlasError::Io(format!("{name}: not the seed explorer's features JSON: {e}")))?;
    let mut layers: BTreeMap<usize, Vec<(usize, Vec<Example>)>> = BTreeMap::new();
    for (i, f) in file.features.into_iter().enumerate() {
        let place = format!("{name}: features[{i}]");
        if f.layer > MAX_LAYER || f.feature >= MAX_FEATURE {
            return Err(AtlasError::Io(format!("{place}: layer {} feature {} is beyond layer {MAX_LAYER} or feature {MAX_FEATURE}", f.layer, f.feature)));
        }
        for (k, e) in f.examples.iter().enumerate() {
            check(e).map_err(|why| AtlasError::Io(format!("{place}.examples[{k}] ({}): {why}", e.accession)))?;
        }
        let listed = layers.entry(f.layer).or_default();
        if listed.iter().any(|(j, _)| *j == f.feature) {
            return Err(AtlasError::Io(format!("{place}: layer {} feature {} is listed twice", f.layer, f.feature)));
        }
        listed.push((f.feature, f.examples));
    }
    let mut out = BTreeMap::new();
    for (layer, mut features) in layers {
        features.sort_by_key(|f| f.0);
        let mut named = BTreeMap::new();
        let mut number = BTreeMap::<String, u64>::new();
        let mut cards = Vec::with_capacity(features.len());
        for (feature, examples) in &features {
            let max = examples.iter().map(|e| e.max_act).fold(0f32, f32::max);
            let top = examples
                .iter()
                .map(|e| {
                    let next = number.len() as u64;
                    let protein = *number.entry(e.accession.clone()).or_insert(next);
                    named.entry(protein).or_insert_with(|| Protein { id: e.accession.clone(), sequence: e.sequence.clone() });
                    let mut acts: Vec<(u32, u8)> = e.top_positions.iter().filter(|p| p.act > 0.0).map(|p| (p.pos, format::quantise(p.act, max))).collect();
                    acts.sort_unstable();
                    acts.dedup_by_key(|a| a.0);
                    Shown { protein, max: e.max_act, acts, mask: e.feature_segments.clone(), behavior: e.behavior_segments.clone() }
                })
                .collect();
            cards.push(Card { feature: *feature, counts: None, max, top, quantiles: vec![], effect: None, concepts: vec![] });
        }
        let listed: Vec<usize> = features.iter().map(|f| f.0).collect();
        let blocks = format::blocks(cards, &named);
        let manifest = Manifest {
            schema: format::SCHEMA.into(),
            subject: Subject {
                model: Identity { name: file.meta.model.clone(), sha256: String::new() },
                sae: Identity { name: format!("the seed explorer's SAE at layer {layer}"), sha256: String::new() },
                layer,
                d_model: 0,
                d_sae: listed.last().map_or(0, |f| f + 1),
                corpus: Identity::of(&format!("the seed explorer's top examples ({name})"), &[text.as_bytes()]),
                corpus_proteins: named.len() as u64,
                concepts: vec![],
            },
            options: AtlasOptions { top: features.iter().map(|f| f.1.len()).max().unwrap_or(0).max(1), sample: 0, quantiles: 1, per_quantile: 0, concepts: 0 },
            proteins: named.len() as u64,
            residues: named.values().map(|p| p.sequence.len() as u64).sum(),
            histogram: Histogram { bins_per_decade: BINS_PER_DECADE, lowest_decade: LOWEST_DECADE, bins: BINS },
            block_size: format::BLOCK,
            blocks: blocks.len(),
            dead: vec![],
            effect: String::new(),
            concepts: vec![],
            concept_note: String::new(),
            features: Some(listed),
        };
        out.insert(layer, Atlas { manifest, blocks });
    }
    Ok(out)
}

/// An example's sequence is residues the model reads, and its positions and segments lie in it.
fn check(e: &Example) -> Result<(), String> {
    let n = e.sequence.len();
    if n == 0 || n > MAX_RESIDUES || !e.sequence.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!("its sequence must be 1..={MAX_RESIDUES} upper-case residue letters"));
    }
    let inside = |&(a, b): &(u32, u32)| a <= b && (b as usize) < n;
    if !e.feature_segments.iter().chain(&e.behavior_segments).all(inside) {
        return Err(format!("a segment lies outside its {n} residues (0-based, ends included)"));
    }
    if e.top_positions.iter().any(|p| p.pos as usize >= n || !p.act.is_finite()) || !e.max_act.is_finite() || e.max_act < 0.0 {
        return Err(format!("its top positions must lie in its {n} residues, with finite activations and max"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{"meta": {"model": "facebook/esm2_t6_8M_UR50D", "behavior": "tm"}, "features": [
      {"id": "L5:F9", "layer": 5, "feature": 9, "importance": 0.1, "examples": [
        {"accession": "Q1", "sequence": "MKTAYIAK", "seq_len": 8, "behavior": "tm", "behavior_segments": [[2, 4]],
         "feature_segments": [[1, 2]], "top_positions": [{"pos": 1, "act": 4.0}, {"pos": 2, "act": 2.0}], "max_act": 4.0}]},
      {"id": "L5:F3", "layer": 5, "feature": 3, "examples": [
        {"accession": "Q2", "sequence": "MKV", "behavior_segments": [], "feature_segments": [],
         "top_positions": [{"pos": 0, "act": 1.0}], "max_act": 1.0},
        {"accession": "Q1", "sequence": "MKTAYIAK", "behavior_segments": [], "feature_segments": [[0, 0]],
         "top_positions": [{"pos": 0, "act": 0.5}], "max_act": 0.5}]},
      {"id": "L2:F7", "layer": 2, "feature": 7, "examples": []}]}"#;

    #[test]
    fn one_atlas_per_layer_with_the_examples_as_cards() {
        let atlases = read("features_tm.json", FILE).unwrap();
        assert_eq!(atlases.keys().copied().collect::<Vec<_>>(), [2, 5]);
        let a = &atlases[&5];
        assert_eq!(a.manifest.features.as_deref(), Some(&[3, 9][..]));
        assert_eq!((a.manifest.proteins, a.manifest.subject.layer, a.manifest.subject.model.name.as_str()), (2, 5, "facebook/esm2_t6_8M_UR50D"));
        let cards = &a.blocks[0].features;
        assert_eq!((cards[0].feature, cards[0].max, cards[0].counts.is_none()), (3, 1.0, true));
        // The same protein keeps one number across features.
        assert_eq!(cards[0].top[1].protein, cards[1].top[0].protein);
        let e = &cards[1].top[0];
        assert_eq!((e.acts.as_slice(), e.mask.as_slice(), e.behavior.as_slice()), (&[(1, 255), (2, 128)][..], &[(1, 2)][..], &[(2, 4)][..]));
        assert_eq!(a.blocks[0].proteins[&e.protein].sequence, "MKTAYIAK");
        // It reads back as written: the card's counts stay absent.
        let again = Atlas::from_zip(&a.zip().unwrap()).unwrap();
        assert_eq!(&again, a);
    }

    #[test]
    fn bad_files_are_named() {
        let err = |text: &str| read("f.json", text).unwrap_err().to_string();
        assert!(err("{}").starts_with("atlas: f.json: not the seed explorer's features JSON: missing field"), "{}", err("{}"));
        assert_eq!(err(&FILE.replace("[[2, 4]]", "[[2, 8]]")), "atlas: f.json: features[0].examples[0] (Q1): a segment lies outside its 8 residues (0-based, ends included)");
        assert_eq!(err(&FILE.replace("\"pos\": 2", "\"pos\": 8")), "atlas: f.json: features[0].examples[0] (Q1): its top positions must lie in its 8 residues, with finite activations and max");
        assert_eq!(err(&FILE.replace("MKV", "MK1")), "atlas: f.json: features[1].examples[0] (Q2): its sequence must be 1..=1022 upper-case residue letters");
        assert_eq!(err(&FILE.replace("\"feature\": 3", "\"feature\": 9")), "atlas: f.json: features[1]: layer 5 feature 9 is listed twice");
        assert_eq!(err(&FILE.replace("\"layer\": 2", "\"layer\": 4000")), "atlas: f.json: features[2]: layer 4000 feature 7 is beyond layer 100 or feature 1048576");
    }
}

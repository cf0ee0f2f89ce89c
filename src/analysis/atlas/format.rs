//! The atlas as static files (schema in `docs/atlas.md`): `manifest.json` and `blocks/NNNN.json`,
//! each block the cards of [`BLOCK`] consecutive features with the proteins their examples show,
//! so that one card costs one block from the network. A folder to host, or one zip to share.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use super::concept::{self, ConceptScore, Totals};
use super::effect::DirectEffect;
use super::{AtlasError, AtlasOptions, Example, Partial, Protein, Subject, BINS, BINS_PER_DECADE, LOWEST_DECADE};

pub const SCHEMA: &str = "plmscope-atlas/1";
/// Features per block: 16 cards with their proteins stay near 200 KB.
pub const BLOCK: usize = 16;

/// Concepts a card lists, and features a concept lists in the manifest (for the search by concept).
pub const CARD_CONCEPTS: usize = 5;
pub const CONCEPT_FEATURES: usize = 20;

pub const CONCEPT_NOTE: &str = "F1 at InterPLM's thresholds (0, 0.15, 0.5, 0.6, 0.8 of the feature's max, each rounded to the nearest edge of the histogram's bins: within a factor 1.15), precision per residue, recall per annotated domain; McFadden's R² of a 1-D logistic regression on the binned activations";

pub const EFFECT_NOTE: &str = "direct path only: the decoder direction at the feature's max, added to the corpus's mean final residual, through the final layer norm and the LM head; the blocks after the SAE's layer are left out";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Histogram {
    pub bins_per_decade: i32,
    pub lowest_decade: i32,
    pub bins: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema: String,
    pub subject: Subject,
    pub options: AtlasOptions,
    pub proteins: u64,
    pub residues: u64,
    pub histogram: Histogram,
    pub block_size: usize,
    pub blocks: usize,
    /// Features that never fired on the corpus.
    pub dead: Vec<usize>,
    pub effect: String,
    /// The corpus's concepts with their best features; empty for a corpus without annotations.
    #[serde(default)]
    pub concepts: Vec<ConceptEntry>,
    #[serde(default)]
    pub concept_note: String,
    /// The features it holds, ascending, when not every one (an atlas of the seed explorer's
    /// top examples): then each block holds [`BLOCK`] of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<usize>>,
}

/// One concept of the corpus and the features that match it best.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConceptEntry {
    pub name: String,
    pub residues: u64,
    pub domains: u64,
    /// `(feature, F1)`, best first, at most [`CONCEPT_FEATURES`].
    pub features: Vec<(usize, f32)>,
}

/// An example as a card shows it: activations quantised to the feature's max (1..=255).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shown {
    pub protein: u64,
    pub max: f32,
    /// `(residue, q)`: 0-based residue, activation ≈ q / 255 × the feature's max.
    pub acts: Vec<(u32, u8)>,
    /// In the seed explorer's examples: the segments (0-based, ends included) of its feature
    /// mask and of the behavior.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mask: Vec<(u32, u32)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub behavior: Vec<(u32, u32)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantile {
    /// The bin, as fractions of the feature's max: `from ≤ max / feature max < to` (≤ for the last).
    pub from: f32,
    pub to: f32,
    pub examples: Vec<Shown>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Card {
    pub feature: usize,
    /// Its counts over the corpus; none in an atlas of top examples alone (the seed explorer's).
    #[serde(flatten)]
    pub counts: Option<Counts>,
    pub max: f32,
    pub top: Vec<Shown>,
    pub quantiles: Vec<Quantile>,
    pub effect: Option<DirectEffect>,
    /// Its best concepts, best F1 first, at most [`CARD_CONCEPTS`].
    #[serde(default)]
    pub concepts: Vec<ConceptScore>,
}

/// A feature over the whole corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub active_residues: u64,
    pub active_proteins: u64,
    /// Shares of the corpus's residues and proteins where it fires.
    pub residue_frequency: f64,
    pub protein_frequency: f64,
    pub residue_hist: Vec<u64>,
    pub protein_hist: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Block {
    pub schema: String,
    pub first: usize,
    pub features: Vec<Card>,
    pub proteins: BTreeMap<u64, Protein>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Atlas {
    pub manifest: Manifest,
    pub blocks: Vec<Block>,
}

pub(super) fn quantise(v: f32, feature_max: f32) -> u8 {
    (v / feature_max * 255.0).round().clamp(1.0, 255.0) as u8
}

fn shown(e: &Example, feature_max: f32) -> Shown {
    Shown { protein: e.protein, max: e.max, acts: e.residues.iter().map(|&(r, v)| (r, quantise(v, feature_max))).collect(), mask: vec![], behavior: vec![] }
}

/// The atlas of a partial that holds every shard, with `effects` from [`super::effect`].
pub fn finish(partial: Partial, effects: Vec<Option<DirectEffect>>) -> Result<Atlas, AtlasError> {
    let missing: Vec<usize> = (0..partial.shard_count).filter(|s| !partial.shards.contains(s)).collect();
    if !missing.is_empty() {
        return Err(AtlasError::Partial(format!("shards {missing:?} of {} are missing: merge every shard first", partial.shard_count)));
    }
    let opts = partial.options;
    let (proteins, residues) = (partial.proteins, partial.residues);
    let share = |n: u64, of: u64| if of == 0 { 0.0 } else { n as f64 / of as f64 };
    let mut dead = Vec::new();
    let mut cards = Vec::with_capacity(partial.features.len());
    let totals = Totals { residues, names: &partial.subject.concepts, counts: &partial.concept_counts };
    let mut by_concept: Vec<Vec<(usize, f32)>> = vec![Vec::new(); totals.names.len()];
    for ((feature, f), effect) in partial.features.into_iter().enumerate().zip(effects) {
        if f.active_proteins == 0 {
            dead.push(feature);
        }
        let scores = concept::scores(&f, &totals);
        for (c, s) in &scores {
            by_concept[*c as usize].push((feature, s.f1));
        }
        let concepts = scores.into_iter().take(CARD_CONCEPTS).map(|s| s.1).collect();
        let q = opts.quantiles;
        let quantiles = (0..opts.quantiles)
            .map(|b| {
                let (from, to) = (b as f32 / q as f32, (b + 1) as f32 / q as f32);
                let inside = |e: &&Example| {
                    let x = e.max / f.max;
                    x >= from && (x < to || b + 1 == q)
                };
                // The sample is in key order, a random one: its first in each bin are a random pick.
                let examples = f.sample.iter().filter(inside).take(opts.per_quantile).map(|e| shown(e, f.max)).collect();
                Quantile { from, to, examples }
            })
            .collect();
        cards.push(Card {
            feature,
            counts: Some(Counts {
                active_residues: f.active_residues,
                active_proteins: f.active_proteins,
                residue_frequency: share(f.active_residues, residues),
                protein_frequency: share(f.active_proteins, proteins),
                residue_hist: f.residue_hist,
                protein_hist: f.protein_hist,
            }),
            max: f.max,
            top: f.top.iter().map(|e| shown(e, f.max)).collect(),
            quantiles,
            effect,
            concepts,
        });
    }
    let concepts: Vec<ConceptEntry> = totals
        .names
        .iter()
        .zip(totals.counts)
        .zip(by_concept)
        .map(|((name, count), mut features)| {
            features.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            features.truncate(CONCEPT_FEATURES);
            ConceptEntry { name: name.clone(), residues: count.residues, domains: count.domains, features }
        })
        .collect();
    let blocks = blocks(cards, &partial.named);
    let manifest = Manifest {
        schema: SCHEMA.into(),
        subject: partial.subject,
        options: opts,
        proteins,
        residues,
        histogram: Histogram { bins_per_decade: BINS_PER_DECADE, lowest_decade: LOWEST_DECADE, bins: BINS },
        block_size: BLOCK,
        blocks: blocks.len(),
        dead,
        effect: EFFECT_NOTE.into(),
        concept_note: if concepts.is_empty() { String::new() } else { CONCEPT_NOTE.into() },
        concepts,
        features: None,
    };
    Ok(Atlas { manifest, blocks })
}

/// `cards` (ascending) in blocks of [`BLOCK`], each with the proteins its examples show.
pub(super) fn blocks(cards: Vec<Card>, named: &BTreeMap<u64, Protein>) -> Vec<Block> {
    let mut blocks = Vec::with_capacity(cards.len().div_ceil(BLOCK));
    let mut cards = cards.into_iter().peekable();
    while let Some(first) = cards.peek().map(|c| c.feature) {
        let features: Vec<Card> = cards.by_ref().take(BLOCK).collect();
        let mut proteins = BTreeMap::new();
        for e in features.iter().flat_map(|c| c.top.iter().chain(c.quantiles.iter().flat_map(|q| &q.examples))) {
            proteins.insert(e.protein, named[&e.protein].clone());
        }
        blocks.push(Block { schema: SCHEMA.into(), first, features, proteins });
    }
    blocks
}

pub fn block_path(b: usize) -> String {
    format!("blocks/{b:04}.json")
}

impl Atlas {
    /// The atlas's files: (path, bytes), the manifest first.
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = vec![("manifest.json".to_string(), to_json(&self.manifest))];
        out.extend(self.blocks.iter().enumerate().map(|(b, block)| (block_path(b), to_json(block))));
        out
    }

    /// Its files in one zip (stored: JSON blocks are small and a host may gzip them anyway).
    pub fn zip(&self) -> Result<Vec<u8>, AtlasError> {
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut buf);
        let io = |e: &dyn std::fmt::Display| AtlasError::Io(format!("writing the zip: {e}"));
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (path, bytes) in self.files() {
            zip.start_file(path, opts).map_err(|e| io(&e))?;
            zip.write_all(&bytes).map_err(|e| io(&e))?;
        }
        zip.finish().map_err(|e| io(&e))?;
        Ok(buf.into_inner())
    }

    /// An atlas from its files, read by `read(path)`.
    pub fn read(mut read: impl FnMut(&str) -> Result<Vec<u8>, AtlasError>) -> Result<Self, AtlasError> {
        let manifest: Manifest = from_json("manifest.json", &read("manifest.json")?)?;
        if manifest.schema != SCHEMA {
            return Err(AtlasError::Io(format!("manifest.json: schema {} is not {SCHEMA}", manifest.schema)));
        }
        let blocks = (0..manifest.blocks).map(|b| from_json(&block_path(b), &read(&block_path(b))?)).collect::<Result<_, _>>()?;
        Ok(Self { manifest, blocks })
    }

    /// An atlas from its zip.
    pub fn from_zip(bytes: &[u8]) -> Result<Self, AtlasError> {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| AtlasError::Io(format!("not an atlas zip: {e}")))?;
        Self::read(|path| {
            let mut entry = zip.by_name(path).map_err(|e| AtlasError::Io(format!("{path}: {e}")))?;
            let mut out = Vec::new();
            entry.read_to_end(&mut out).map_err(|e| AtlasError::Io(format!("{path}: {e}")))?;
            Ok(out)
        })
    }
}

fn from_json<T: serde::de::DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<T, AtlasError> {
    serde_json::from_slice(bytes).map_err(|e| AtlasError::Io(format!("{path}: {e}")))
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("atlas types serialise")
}

//! The feature atlas: what each feature of one SAE at one layer does over a corpus of proteins.
//! One streaming pass ([`Partial::add`]) keeps, per feature, counts, log-spaced histograms, its
//! top proteins and a uniform sample of its active proteins; shards of a corpus build
//! [`Partial`]s that [`Partial::merge`] joins into exactly what one pass over the whole corpus
//! builds (every statistic is a count, a max or a top-k with a total order); [`format`] writes
//! the result as static files, [`effect`] adds each feature's direct effect on the predictions and
//! [`concept`] what it means in the corpus's annotations; [`explorer`] reads the seed explorer's
//! top examples as atlases.
//!
//! Memory: per feature, 2 × [`BINS`] counts, at most 2 × [`BINS`] more per tracked concept, and at
//! most `top + sample` examples, each with its active residues (≤ 1,022); plus the corpus proteins
//! those examples name. Nothing grows with the corpus but the counts' values.

pub mod concept;
pub mod effect;
pub mod explorer;
pub mod format;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use self::concept::{ConceptCount, ConceptHits, ProteinConcepts, Span};
use super::AnalysisError;
use crate::alphabet::VOCAB;
use crate::device::read_f32;
use crate::esm::{residue_rows, Batch, EsmModel};
use crate::features::{self, SparseFeatures};
use crate::sae::Sae;

pub const PARTIAL_SCHEMA: &str = "plmscope-atlas-partial/1";

/// Histogram bins shared by every atlas, so that shards add bin by bin: [`BINS_PER_DECADE`] per
/// decade from 10^[`LOWEST_DECADE`] to 10^([`LOWEST_DECADE`] + [`DECADES`]); bin 0 holds the
/// values below, the last bin those above.
pub const BINS_PER_DECADE: i32 = 8;
pub const LOWEST_DECADE: i32 = -4;
pub const DECADES: i32 = 8;
pub const BINS: usize = (BINS_PER_DECADE * DECADES) as usize + 2;

/// The lower edge of bin `b` (1..BINS): 10^(LOWEST_DECADE + (b − 1) / BINS_PER_DECADE).
pub fn bin_edge(b: usize) -> f32 {
    10f64.powf(LOWEST_DECADE as f64 + (b as f64 - 1.0) / BINS_PER_DECADE as f64) as f32
}

/// The bin of a positive value: the last bin whose lower edge is ≤ `v`, found among the edges
/// themselves so that every platform bins a value alike.
pub fn bin(v: f32) -> usize {
    let (mut lo, mut hi) = (0, BINS - 1); // bin_edge(lo) ≤ v < bin_edge(hi + 1), with bin 0's edge −∞
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if bin_edge(mid) <= v { lo = mid } else { hi = mid - 1 }
    }
    lo
}

/// What is kept per feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AtlasOptions {
    /// Proteins kept by max activation (the seed explorer shows 8).
    pub top: usize,
    /// A uniform sample of the active proteins (those with the smallest hashes of id and
    /// feature), which the quantile examples are drawn from.
    pub sample: usize,
    /// Bins of the feature's max (InterPLM's 0–0.2 … 0.8–1.0 is 5) and the examples in each.
    pub quantiles: usize,
    pub per_quantile: usize,
    /// The corpus's most annotated concepts that each feature is scored against.
    #[serde(default = "default_concepts")]
    pub concepts: usize,
}

fn default_concepts() -> usize {
    64
}

impl AtlasOptions {
    /// Within what an atlas can hold and a card can show: every loop over these stays short.
    pub fn check(&self) -> Result<(), AtlasError> {
        let within = |v: usize, lo: usize, hi: usize| (lo..=hi).contains(&v);
        if within(self.top, 1, 1000) && within(self.sample, 0, 10_000) && within(self.quantiles, 1, 100) && within(self.per_quantile, 0, 100) && within(self.concepts, 0, 1000) {
            Ok(())
        } else {
            Err(AtlasError::Partial(format!(
                "options top {}, sample {}, quantiles {}, per quantile {}, concepts {}: top must be within 1..=1000, sample 0..=10000, quantiles 1..=100, per quantile 0..=100, concepts 0..=1000",
                self.top, self.sample, self.quantiles, self.per_quantile, self.concepts
            )))
        }
    }
}

impl Default for AtlasOptions {
    fn default() -> Self {
        Self { top: 8, sample: 40, quantiles: 5, per_quantile: 2, concepts: default_concepts() }
    }
}

/// A protein where a feature fires, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// Its number in the corpus (0-based, the FASTA's order).
    pub protein: u64,
    /// The feature's max over its residues.
    pub max: f32,
    /// The sampling key: a hash of the protein's id and the feature.
    pub key: u64,
    /// `(residue, activation)` where the feature fires, 0-based residues ascending.
    pub residues: Vec<(u32, f32)>,
}

impl Example {
    /// Top order: higher max first, then the earlier protein.
    fn top_order(&self, other: &Self) -> std::cmp::Ordering {
        other.max.total_cmp(&self.max).then(self.protein.cmp(&other.protein))
    }

    /// Sample order: smaller key first, then the earlier protein.
    fn sample_order(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key).then(self.protein.cmp(&other.protein))
    }
}

/// One feature's statistics over the proteins seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureStats {
    pub active_residues: u64,
    pub active_proteins: u64,
    /// 0 while it has not fired.
    pub max: f32,
    /// Its nonzero activations by [`bin`]: `[BINS]`.
    pub residue_hist: Vec<u64>,
    /// Its per-protein maxima by [`bin`]: `[BINS]`.
    pub protein_hist: Vec<u64>,
    /// The best proteins in top order, at most `options.top`.
    pub top: Vec<Example>,
    /// The sample in sample order, at most `options.sample`.
    pub sample: Vec<Example>,
    /// The concepts where it fires, by concept.
    #[serde(default)]
    pub concepts: Vec<ConceptHits>,
}

impl FeatureStats {
    fn new() -> Self {
        Self { active_residues: 0, active_proteins: 0, max: 0.0, residue_hist: vec![0; BINS], protein_hist: vec![0; BINS], top: vec![], sample: vec![], concepts: vec![] }
    }
}

/// Keeps `kept` the `limit` first of `kept ∪ {candidate}` in `order` (kept is sorted).
fn keep_first(kept: &mut Vec<Example>, candidate: Example, limit: usize, order: fn(&Example, &Example) -> std::cmp::Ordering) {
    let at = kept.partition_point(|e| order(e, &candidate).is_lt());
    if at < limit {
        kept.insert(at, candidate);
        kept.truncate(limit);
    }
}

/// Would `candidate` (its max and key) enter `kept`?
fn would_keep(kept: &[Example], limit: usize, better: impl Fn(&Example) -> bool) -> bool {
    kept.len() < limit || kept.last().is_some_and(better)
}

/// A named input, identified by its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub name: String,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
}

impl Identity {
    pub fn of(name: &str, bytes: &[&[u8]]) -> Self {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for b in bytes {
            h.update(b);
        }
        Self { name: name.into(), sha256: h.finalize().iter().map(|b| format!("{b:02x}")).collect() }
    }
}

/// What an atlas is of: every shard of one atlas has the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    pub model: Identity,
    pub sae: Identity,
    pub layer: usize,
    pub d_model: usize,
    pub d_sae: usize,
    pub corpus: Identity,
    /// Proteins in the whole corpus, all shards together.
    pub corpus_proteins: u64,
    /// The concepts of the corpus's annotations that features are scored against: its most
    /// annotated (by segments), at most `options.concepts`.
    #[serde(default)]
    pub concepts: Vec<String>,
}

/// A protein an example names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protein {
    /// The first word of its FASTA header (e.g. `sp|P69905|HBA_HUMAN`).
    pub id: String,
    pub sequence: String,
}

/// The proteins of a corpus that shard `index` of `count` reads: every `count`-th from `index`.
pub fn in_shard(protein: u64, (index, count): (usize, usize)) -> bool {
    protein % count as u64 == index as u64
}

/// An atlas being built, or built over some shards of its corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Partial {
    pub schema: String,
    pub subject: Subject,
    pub options: AtlasOptions,
    /// The shard count, and the shards this partial holds.
    pub shard_count: usize,
    pub shards: Vec<usize>,
    pub proteins: u64,
    pub residues: u64,
    /// Σ over residues of the last block's output (before the final LN), as integers of
    /// 2^-[`FIXED_BITS`]: sums of integers do not depend on their order, so shards add exactly.
    /// Written as decimal strings (JSON numbers stop being exact past 2^53).
    #[serde(with = "decimal")]
    pub residual_sum: Vec<i128>,
    /// Per concept of the subject, its residues and domains.
    #[serde(default)]
    pub concept_counts: Vec<ConceptCount>,
    pub features: Vec<FeatureStats>,
    /// The proteins the examples name, by number.
    pub named: BTreeMap<u64, Protein>,
}

pub const FIXED_BITS: i32 = 32;

/// Proteins added between two prunes of the named proteins.
const PRUNE_EVERY: u64 = 1024;

mod decimal {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[i128], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|x| x.to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i128>, D::Error> {
        Vec::<String>::deserialize(d)?.iter().map(|t| t.parse().map_err(|_| D::Error::custom(format!("{t:?} is not an integer")))).collect()
    }
}

/// The sampling key of protein `id` for `feature`: FNV-1a, then SplitMix64's finaliser so that
/// similar ids get unrelated keys.
pub fn sample_key(id: &str, feature: usize) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes().iter().chain(&(feature as u64).to_le_bytes()) {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// What one protein's pass gives the atlas.
pub struct Observed {
    /// Its features at the layer, one row per residue.
    pub features: SparseFeatures,
    /// `[residues, d_model]`, row-major: the last block's output before the final LN.
    pub residual: Vec<f32>,
}

/// Runs one protein (`<cls>` residues `<eos>`) through `model` and `sae` at `layer`.
pub async fn observe(model: &EsmModel, sae: &Sae, layer: usize, tokens: &[u32]) -> Result<Observed, AnalysisError> {
    features::check(model, sae, layer)?;
    let acts = model.forward(&Batch::new(&[tokens.to_vec()], &model.device()));
    let (encoded, _) = features::encode_sparse(sae, features::residues(&acts, layer)).await?;
    let last = acts.residual_pre_ln.expect("a full forward keeps the last block's output");
    Ok(Observed { features: encoded.features, residual: read_f32(residue_rows(last)).await? })
}

impl Partial {
    pub fn new(subject: Subject, options: AtlasOptions, shard: (usize, usize)) -> Self {
        let features = (0..subject.d_sae).map(|_| FeatureStats::new()).collect();
        let residual_sum = vec![0; subject.d_model];
        let concept_counts = vec![ConceptCount::default(); subject.concepts.len()];
        Self { schema: PARTIAL_SCHEMA.into(), subject, options, shard_count: shard.1, shards: vec![shard.0], proteins: 0, residues: 0, residual_sum, concept_counts, features, named: BTreeMap::new() }
    }

    /// Adds protein number `index` of the corpus (`id`, `sequence`, its segments of the subject's
    /// concepts) with what its pass gave.
    pub fn add(&mut self, index: u64, id: &str, sequence: &str, spans: &[Span], seen: &Observed) {
        let d = self.subject.d_model;
        let concepts = ProteinConcepts::new(seen.features.rows.len(), spans);
        concepts.count(&mut self.concept_counts);
        self.proteins += 1;
        self.residues += seen.features.rows.len() as u64;
        for row in seen.residual.chunks_exact(d) {
            for (s, &v) in self.residual_sum.iter_mut().zip(row) {
                *s += (f64::from(v) * 2f64.powi(FIXED_BITS)).round() as i128;
            }
        }
        // (feature, residue, value), grouped by feature.
        let mut fired: Vec<(u32, u32, f32)> = seen.features.rows.iter().enumerate().flat_map(|(r, row)| row.iter().map(move |&(j, v)| (j, r as u32, v))).collect();
        fired.sort_by_key(|&(j, r, _)| (j, r));
        let opts = self.options;
        let mut named = false;
        for group in fired.chunk_by(|a, b| a.0 == b.0) {
            let f = &mut self.features[group[0].0 as usize];
            let max = group.iter().map(|g| g.2).fold(f32::NEG_INFINITY, f32::max);
            f.active_proteins += 1;
            f.active_residues += group.len() as u64;
            for g in group {
                f.residue_hist[bin(g.2)] += 1;
            }
            f.protein_hist[bin(max)] += 1;
            f.max = f.max.max(max);
            concepts.add(&mut f.concepts, group);
            let key = sample_key(id, group[0].0 as usize);
            let to_top = would_keep(&f.top, opts.top, |last| max > last.max || (max == last.max && index < last.protein));
            let to_sample = would_keep(&f.sample, opts.sample, |last| key < last.key || (key == last.key && index < last.protein));
            if to_top || to_sample {
                let example = Example { protein: index, max, key, residues: group.iter().map(|g| (g.1, g.2)).collect() };
                if to_top {
                    keep_first(&mut f.top, example.clone(), opts.top, Example::top_order);
                }
                if to_sample {
                    keep_first(&mut f.sample, example, opts.sample, Example::sample_order);
                }
                named = true;
            }
        }
        if named {
            self.named.insert(index, Protein { id: id.into(), sequence: sequence.into() });
        }
        // Proteins no example names any more are forgotten now and then: a prune walks every
        // example once, so `named` holds what examples name plus at most PRUNE_EVERY more.
        if self.proteins % PRUNE_EVERY == 0 {
            self.prune();
        }
    }

    /// Keeps in `named` only the proteins some example names.
    pub fn prune(&mut self) {
        let mut keep = std::collections::BTreeSet::new();
        for f in &self.features {
            keep.extend(f.top.iter().chain(&f.sample).map(|e| e.protein));
        }
        self.named.retain(|p, _| keep.contains(p));
    }

    /// Joins `other` (other shards of the same atlas) into this one: equal to one pass over both.
    pub fn merge(&mut self, other: Partial) -> Result<(), AtlasError> {
        if other.schema != self.schema {
            return Err(AtlasError::Partial(format!("a partial of schema {} cannot join one of {}", other.schema, self.schema)));
        }
        if other.subject != self.subject || other.options != self.options || other.shard_count != self.shard_count {
            return Err(AtlasError::Partial(format!(
                "shards {:?} and {:?} are of different atlases (model, SAE, layer, corpus, options or shard count differ)",
                self.shards, other.shards
            )));
        }
        if let Some(s) = other.shards.iter().find(|s| self.shards.contains(s)) {
            return Err(AtlasError::Partial(format!("shard {s} of {} is there twice", self.shard_count)));
        }
        self.shards.extend(&other.shards);
        self.shards.sort_unstable();
        // Counts saturate and sums are checked: a partial read from a file may hold anything.
        self.proteins = self.proteins.saturating_add(other.proteins);
        self.residues = self.residues.saturating_add(other.residues);
        for (s, o) in self.residual_sum.iter_mut().zip(&other.residual_sum) {
            *s = s.checked_add(*o).ok_or_else(|| AtlasError::Partial("the residual sums overflow".into()))?;
        }
        for (c, o) in self.concept_counts.iter_mut().zip(&other.concept_counts) {
            c.residues = c.residues.saturating_add(o.residues);
            c.domains = c.domains.saturating_add(o.domains);
        }
        let opts = self.options;
        for (f, o) in self.features.iter_mut().zip(other.features) {
            f.active_residues = f.active_residues.saturating_add(o.active_residues);
            f.active_proteins = f.active_proteins.saturating_add(o.active_proteins);
            f.max = f.max.max(o.max);
            for (a, b) in f.residue_hist.iter_mut().zip(&o.residue_hist) {
                *a = a.saturating_add(*b);
            }
            for (a, b) in f.protein_hist.iter_mut().zip(&o.protein_hist) {
                *a = a.saturating_add(*b);
            }
            for e in o.top {
                keep_first(&mut f.top, e, opts.top, Example::top_order);
            }
            for e in o.sample {
                keep_first(&mut f.sample, e, opts.sample, Example::sample_order);
            }
            concept::merge(&mut f.concepts, o.concepts);
        }
        self.named.extend(other.named);
        self.prune();
        Ok(())
    }

    /// A partial from its JSON, checked enough that merging and writing it cannot go wrong.
    pub fn from_json(text: &str) -> Result<Self, AtlasError> {
        let p: Partial = serde_json::from_str(text).map_err(|e| AtlasError::Partial(format!("not a partial atlas: {e}")))?;
        let bad = |what: String| Err(AtlasError::Partial(what));
        if p.schema != PARTIAL_SCHEMA {
            return bad(format!("schema {} is not {PARTIAL_SCHEMA}", p.schema));
        }
        p.options.check()?;
        if p.shard_count == 0 || p.shards.iter().any(|&s| s >= p.shard_count) {
            return bad(format!("shards {:?} are not within 0..{}", p.shards, p.shard_count));
        }
        if p.features.len() != p.subject.d_sae || p.residual_sum.len() != p.subject.d_model {
            return bad(format!("{} features and {} residual sums for d_sae {} and d_model {}", p.features.len(), p.residual_sum.len(), p.subject.d_sae, p.subject.d_model));
        }
        if p.concept_counts.len() != p.subject.concepts.len() || p.subject.concepts.len() > p.options.concepts {
            return bad(format!("{} concept counts for {} concepts (at most {})", p.concept_counts.len(), p.subject.concepts.len(), p.options.concepts));
        }
        for (j, f) in p.features.iter().enumerate() {
            if f.residue_hist.len() != BINS || f.protein_hist.len() != BINS || f.top.len() > p.options.top || f.sample.len() > p.options.sample {
                return bad(format!("feature {j}: histograms of {BINS} bins and at most {} top and {} sampled examples", p.options.top, p.options.sample));
            }
            if let Some(e) = f.top.iter().chain(&f.sample).find(|e| !p.named.contains_key(&e.protein)) {
                return bad(format!("feature {j}: example protein {} is not among the named proteins", e.protein));
            }
            let finite = |e: &Example| e.max.is_finite() && e.residues.iter().all(|r| r.1.is_finite());
            if !f.max.is_finite() || !f.top.iter().chain(&f.sample).all(finite) {
                return bad(format!("feature {j}: its activations must be finite numbers"));
            }
            concept::check(&f.concepts, p.subject.concepts.len()).map_err(|why| AtlasError::Partial(format!("feature {j}: {why}")))?;
        }
        Ok(p)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AtlasError {
    #[error("atlas: {0}")]
    Partial(String),
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
    #[error("atlas: {0}")]
    Io(String),
}

/// The 20 standard amino acids of the alphabet, as token ids: what the direct effect ranks.
pub fn amino_acids() -> Vec<(u32, &'static str)> {
    (4..24).map(|i| (i as u32, VOCAB[i])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_log_spaced_and_cover_everything() {
        assert_eq!(bin(1e-9), 0);
        assert_eq!(bin(1e-4), 1);
        assert_eq!(bin(1.0), 33);
        assert_eq!(bin(0.999), 32);
        assert_eq!(bin(9.9e3), 64);
        assert_eq!(bin(1e4), 65);
        assert_eq!(bin(f32::MAX), BINS - 1);
        for b in 1..BINS {
            assert_eq!(bin(bin_edge(b)), b, "bin {b}'s edge lies in it");
        }
    }

    #[test]
    fn keys_spread_similar_ids() {
        let keys: std::collections::BTreeSet<u64> = (0..1000).map(|i| sample_key(&format!("P{i:05}"), 7)).collect();
        assert_eq!(keys.len(), 1000);
        let low = keys.iter().filter(|&&k| k < u64::MAX / 2).count();
        assert!((400..600).contains(&low), "{low} of 1000 keys in the lower half");
    }
}

//! What a feature means in the corpus's annotations, counted in the same streaming pass as the
//! rest of the atlas: per feature and concept, its nonzero activations on the concept's residues
//! and its peak over each of the concept's domains, on the atlas's log-spaced bins. InterPLM's
//! thresholds are fractions of the feature's max, which is known only once every shard is in, so
//! they are applied at the end on the bins' edges (each threshold rounded to the nearest edge:
//! within a factor 10^(1/16) ≈ 1.15 of it), and the 1-D logistic regression is fitted on the
//! bins, each standing for its residues at its middle. Everything is a count, so shards add.

use serde::{Deserialize, Serialize};

use super::{bin, bin_edge, FeatureStats, BINS, BINS_PER_DECADE};
use crate::analysis::concepts::{logistic_r2_weighted, THRESHOLDS};

/// Counts by bin, `(bin, count)` with bins ascending and counts nonzero: a feature's activations
/// within one concept span a few decades of the [`BINS`].
pub type Sparse = Vec<(u8, u64)>;

fn add_to(h: &mut Sparse, b: usize, n: u64) {
    let b = b as u8;
    match h.binary_search_by_key(&b, |e| e.0) {
        Ok(i) => h[i].1 = h[i].1.saturating_add(n),
        Err(i) => h.insert(i, (b, n)),
    }
}

/// The count in bins `from..`.
fn from_bin(h: &Sparse, from: usize) -> u64 {
    h.iter().filter(|e| e.0 as usize >= from).map(|e| e.1).sum()
}

/// One feature within one concept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConceptHits {
    /// Its index in the atlas's concepts.
    pub concept: u32,
    /// The feature's nonzero activations on the concept's residues.
    pub residues: Sparse,
    /// The feature's peak over each of the concept's domains where it fires.
    pub domains: Sparse,
}

/// One concept's residues and domains over the proteins seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConceptCount {
    pub residues: u64,
    pub domains: u64,
}

/// A concept's segment in one protein: residues `start..end`, 0-based, end excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub concept: u32,
    pub start: u32,
    pub end: u32,
}

/// One protein's concepts: for each concept it holds, its residues (as a mask) and segments.
pub struct ProteinConcepts {
    present: Vec<(u32, Vec<bool>, Vec<Span>)>,
}

impl ProteinConcepts {
    /// Of a protein of `residues` residues with `spans` (each within it).
    pub fn new(residues: usize, spans: &[Span]) -> Self {
        let mut present: Vec<(u32, Vec<bool>, Vec<Span>)> = Vec::new();
        for s in spans {
            let at = match present.binary_search_by_key(&s.concept, |p| p.0) {
                Ok(i) => i,
                Err(i) => {
                    present.insert(i, (s.concept, vec![false; residues], Vec::new()));
                    i
                }
            };
            present[at].1[s.start as usize..s.end as usize].iter_mut().for_each(|x| *x = true);
            present[at].2.push(*s);
        }
        Self { present }
    }

    /// Adds the protein's residues and domains to `counts` (one per concept of the atlas).
    pub fn count(&self, counts: &mut [ConceptCount]) {
        for (c, mask, spans) in &self.present {
            let n = &mut counts[*c as usize];
            n.residues += mask.iter().filter(|&&x| x).count() as u64;
            n.domains += spans.len() as u64;
        }
    }

    /// Adds where one feature fires in the protein (`(residue, value)`, residues ascending) to
    /// its hits.
    pub fn add(&self, hits: &mut Vec<ConceptHits>, fired: &[(u32, u32, f32)]) {
        for (c, mask, spans) in &self.present {
            let mut h = ConceptHits { concept: *c, residues: Vec::new(), domains: Vec::new() };
            for &(_, _, v) in fired.iter().filter(|f| mask[f.1 as usize]) {
                add_to(&mut h.residues, bin(v), 1);
            }
            for s in spans {
                let lo = fired.partition_point(|f| f.1 < s.start);
                let peak = fired[lo..].iter().take_while(|f| f.1 < s.end).map(|f| f.2).fold(0f32, f32::max);
                if peak > 0.0 {
                    add_to(&mut h.domains, bin(peak), 1);
                }
            }
            if !h.residues.is_empty() || !h.domains.is_empty() {
                merge_hits(hits, h);
            }
        }
    }
}

/// Adds `h` into `hits` (sorted by concept).
fn merge_hits(hits: &mut Vec<ConceptHits>, h: ConceptHits) {
    match hits.binary_search_by_key(&h.concept, |x| x.concept) {
        Ok(i) => {
            for (b, n) in h.residues {
                add_to(&mut hits[i].residues, b as usize, n);
            }
            for (b, n) in h.domains {
                add_to(&mut hits[i].domains, b as usize, n);
            }
        }
        Err(i) => hits.insert(i, h),
    }
}

/// Joins another shard's hits of the same feature.
pub fn merge(hits: &mut Vec<ConceptHits>, other: Vec<ConceptHits>) {
    for h in other {
        merge_hits(hits, h);
    }
}

/// Checks a feature's hits read from a file: known concepts, in order, bins in range and in order.
pub fn check(hits: &[ConceptHits], concepts: usize) -> Result<(), String> {
    let sorted = |h: &Sparse| h.windows(2).all(|w| w[0].0 < w[1].0) && h.iter().all(|e| (e.0 as usize) < BINS);
    if !hits.windows(2).all(|w| w[0].concept < w[1].concept) || hits.iter().any(|h| h.concept as usize >= concepts) {
        return Err(format!("its concepts must be ascending and within the atlas's {concepts}"));
    }
    if !hits.iter().all(|h| sorted(&h.residues) && sorted(&h.domains)) {
        return Err(format!("its concept histograms must hold bins below {BINS}, ascending"));
    }
    Ok(())
}

/// Half a bin's width, as a factor: 10^(1/16) at 8 bins a decade.
fn half_bin() -> f32 {
    10f32.powf(0.5 / BINS_PER_DECADE as f32)
}

/// The first bin counted as above threshold `t` (a fraction of the feature's `max`): every
/// nonzero activation for 0, else the bin whose lower edge is nearest to t × max.
pub fn threshold_bin(t: f32, max: f32) -> usize {
    if t == 0.0 { 0 } else { bin(t * max * half_bin()) }
}

/// How well a feature matches a concept, at its best threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConceptScore {
    pub concept: String,
    /// The fraction of the feature's max that gave the best F1.
    pub threshold: f32,
    /// Of its residues above the threshold, the share in the concept.
    pub precision: f32,
    /// Of the concept's domains, the share where it passes the threshold.
    pub recall: f32,
    pub f1: f32,
    /// McFadden's R² of the concept on the feature alone.
    pub logistic_r2: f32,
}

/// The whole corpus, as scoring needs it.
pub struct Totals<'a> {
    pub residues: u64,
    pub names: &'a [String],
    pub counts: &'a [ConceptCount],
}

/// A feature's score for each concept it touches, with the concept's index, best F1 first (ties:
/// the earlier concept).
pub fn scores(f: &FeatureStats, totals: &Totals) -> Vec<(u32, ConceptScore)> {
    let mut out: Vec<(u32, ConceptScore)> = f
        .concepts
        .iter()
        .filter_map(|h| {
            let count = totals.counts[h.concept as usize];
            let best = THRESHOLDS
                .iter()
                .map(|&t| {
                    let from = threshold_bin(t, f.max);
                    let fires: u64 = f.residue_hist[from..].iter().sum();
                    let (tp, hit) = (from_bin(&h.residues, from), from_bin(&h.domains, from));
                    let precision = if fires > 0 { tp as f32 / fires as f32 } else { 0.0 };
                    let recall = if count.domains > 0 { hit as f32 / count.domains as f32 } else { 0.0 };
                    let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
                    (t, precision, recall, f1)
                })
                // The last of equal F1s, as the exact association picks: the highest threshold.
                .max_by(|a, b| a.3.total_cmp(&b.3))?;
            (best.3 > 0.0).then(|| {
                let (threshold, precision, recall, f1) = best;
                let logistic_r2 = logistic_r2_weighted(&points(f, h, count, totals.residues));
                (h.concept, ConceptScore { concept: totals.names[h.concept as usize].clone(), threshold, precision, recall, f1, logistic_r2 })
            })
        })
        .collect();
    out.sort_by(|a, b| b.1.f1.total_cmp(&a.1.f1).then(a.0.cmp(&b.0)));
    out
}

/// The residues as weighted points `(max-normalised value, in the concept, not)`: one per bin at
/// its middle, and the residues where the feature is 0.
fn points(f: &FeatureStats, h: &ConceptHits, count: ConceptCount, residues: u64) -> Vec<(f64, f64, f64)> {
    let middle = |b: usize| if b == 0 { bin_edge(1) / 2.0 } else { bin_edge(b) * half_bin() };
    let mut inside = vec![0u64; BINS];
    h.residues.iter().for_each(|&(b, n)| inside[b as usize] = n);
    let in_active: u64 = inside.iter().sum();
    let mut out = vec![(
        0.0,
        count.residues.saturating_sub(in_active) as f64,
        residues.saturating_sub(count.residues).saturating_sub(f.active_residues.saturating_sub(in_active)) as f64,
    )];
    for (b, (&all, &pos)) in f.residue_hist.iter().zip(&inside).enumerate().filter(|(_, (all, _))| **all > 0) {
        let x = f64::from((middle(b) / f.max).min(1.0));
        out.push((x, pos as f64, all.saturating_sub(pos) as f64));
    }
    out
}

//! Annotated proteins: residue ranges of named concepts, read from UniProt's REST JSON (an entry,
//! or a search's `results`) or from the seed explorer's features JSON (`behavior_segments`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::alphabet::MAX_RESIDUES;

/// One annotated range: residues `start..=end`, 1-based, as UniProt numbers them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    pub concept: String,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Annotated {
    pub accession: String,
    pub sequence: String,
    pub segments: Vec<Segment>,
}

/// Proteins read from a file, and those left out (with why).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Labelled {
    pub proteins: Vec<Annotated>,
    pub skipped: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{what} is missing or malformed in {place}")]
    Field { what: &'static str, place: String },
    #[error("neither UniProt JSON (primaryAccession / results) nor the explorer's features JSON (features[].examples)")]
    Unknown,
    #[error(transparent)]
    Fasta(#[from] crate::alphabet::InputError),
}

/// The explorer's behaviors under UniProt's feature names, so that one concept name serves both.
pub fn behavior_concept(behavior: &str) -> &str {
    match behavior {
        "tm" => "Transmembrane",
        "sp" => "Signal",
        other => other,
    }
}

impl Annotated {
    /// Per residue: inside a segment of `concept`.
    pub fn labels(&self, concept: &str) -> Vec<bool> {
        let mut out = vec![false; self.sequence.len()];
        for s in self.segments.iter().filter(|s| s.concept == concept) {
            out[s.start - 1..s.end].iter_mut().for_each(|x| *x = true);
        }
        out
    }
}

/// Concepts with their number of segments, most annotated first.
pub fn concepts(proteins: &[Annotated]) -> Vec<(String, usize)> {
    let mut counts = BTreeMap::<&str, usize>::new();
    for s in proteins.iter().flat_map(|p| &p.segments) {
        *counts.entry(&s.concept).or_default() += 1;
    }
    let mut out: Vec<(String, usize)> = counts.into_iter().map(|(c, n)| (c.to_string(), n)).collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// Proteins from FASTA (without annotations; each named by its header, else its record number) or
/// from either annotation format.
pub fn read_proteins(text: &str) -> Result<Labelled, LabelError> {
    if text.trim_start().starts_with('{') {
        return read(text);
    }
    let records = crate::alphabet::parse_fasta(text)?;
    let proteins = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| Annotated { accession: if r.header.is_empty() { format!("record {}", i + 1) } else { r.header.clone() }, sequence: r.sequence(), segments: vec![] })
        .collect();
    Ok(Labelled { proteins, skipped: vec![] })
}

/// Reads either format, told apart by its fields.
pub fn read(text: &str) -> Result<Labelled, LabelError> {
    let v: Value = serde_json::from_str(text)?;
    if v.get("primaryAccession").is_some() {
        uniprot(std::slice::from_ref(&v))
    } else if let Some(results) = v.get("results").and_then(Value::as_array) {
        uniprot(results)
    } else if v.get("features").and_then(Value::as_array).is_some_and(|f| f.iter().all(|x| x.get("examples").is_some())) {
        explorer(&v)
    } else {
        Err(LabelError::Unknown)
    }
}

/// UniProt entries: every feature with a known start and end is a segment named by its `type`
/// ("Transmembrane", "Signal", "Binding site", "Helix", …); Domain, Motif and Region features
/// also give a segment named `type: description` ("Domain: SH3").
fn uniprot(entries: &[Value]) -> Result<Labelled, LabelError> {
    let mut out = Labelled::default();
    for (i, e) in entries.iter().enumerate() {
        let place = || format!("UniProt entry {}", i + 1);
        let accession = e["primaryAccession"].as_str().ok_or_else(|| LabelError::Field { what: "primaryAccession", place: place() })?;
        let sequence = e["sequence"]["value"].as_str().ok_or_else(|| LabelError::Field { what: "sequence.value", place: accession.into() })?;
        if sequence.is_empty() || sequence.len() > MAX_RESIDUES {
            out.skipped.push(format!("{accession}: {} residues (plmscope reads 1..={MAX_RESIDUES})", sequence.len()));
            continue;
        }
        let mut segments = Vec::new();
        for f in e["features"].as_array().into_iter().flatten() {
            let (Some(kind), Some(start), Some(end)) =
                (f["type"].as_str(), f["location"]["start"]["value"].as_u64(), f["location"]["end"]["value"].as_u64())
            else {
                continue; // unknown ends ("?"), or not a range
            };
            let (start, end) = (start as usize, end as usize);
            if start == 0 || end < start || end > sequence.len() {
                out.skipped.push(format!("{accession}: {kind} {start}-{end} is outside its {} residues", sequence.len()));
                continue;
            }
            segments.push(Segment { concept: kind.to_string(), start, end });
            let description = f["description"].as_str().unwrap_or("");
            if matches!(kind, "Domain" | "Motif" | "Region") && !description.is_empty() {
                segments.push(Segment { concept: format!("{kind}: {description}"), start, end });
            }
        }
        out.proteins.push(Annotated { accession: accession.into(), sequence: sequence.into(), segments });
    }
    Ok(out)
}

/// The explorer's top examples, one protein per accession: `behavior_segments` are 0-based with
/// the end included (single-residue segments are `[i, i]`); the behavior ("tm", "sp") becomes
/// its UniProt name.
fn explorer(v: &Value) -> Result<Labelled, LabelError> {
    let mut seen = BTreeMap::<String, Annotated>::new();
    for (i, f) in v["features"].as_array().into_iter().flatten().enumerate() {
        for (k, e) in f["examples"].as_array().into_iter().flatten().enumerate() {
            let place = || format!("features[{i}].examples[{k}]");
            let field = |what| LabelError::Field { what, place: place() };
            let accession = e["accession"].as_str().ok_or_else(|| field("accession"))?;
            let sequence = e["sequence"].as_str().ok_or_else(|| field("sequence"))?;
            let concept = behavior_concept(e["behavior"].as_str().ok_or_else(|| field("behavior"))?);
            let mut segments = Vec::new();
            for s in e["behavior_segments"].as_array().ok_or_else(|| field("behavior_segments"))? {
                let (Some(a), Some(b)) = (s[0].as_u64(), s[1].as_u64()) else { return Err(field("behavior_segments")) };
                if b < a || b as usize >= sequence.len() {
                    return Err(field("behavior_segments"));
                }
                segments.push(Segment { concept: concept.into(), start: a as usize + 1, end: b as usize + 1 });
            }
            seen.entry(accession.into()).or_insert(Annotated { accession: accession.into(), sequence: sequence.into(), segments });
        }
    }
    Ok(Labelled { proteins: seen.into_values().collect(), skipped: vec![] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniprot_entry_segments_and_labels() {
        let entry = r#"{"primaryAccession": "P0X", "sequence": {"value": "MKTAYIAKQR"},
          "features": [
            {"type": "Signal", "location": {"start": {"value": 1}, "end": {"value": 3}}},
            {"type": "Domain", "description": "SH3", "location": {"start": {"value": 5}, "end": {"value": 6}}},
            {"type": "Helix", "location": {"start": {"value": null, "modifier": "UNKNOWN"}, "end": {"value": 4}}},
            {"type": "Motif", "location": {"start": {"value": 9}, "end": {"value": 12}}}
          ]}"#;
        let l = read(entry).unwrap();
        let p = &l.proteins[0];
        assert_eq!(p.labels("Signal"), [true, true, true, false, false, false, false, false, false, false]);
        assert_eq!(p.labels("Domain: SH3").iter().filter(|&&x| x).count(), 2);
        assert_eq!(l.skipped, ["P0X: Motif 9-12 is outside its 10 residues"]);
        assert_eq!(concepts(&l.proteins), [("Domain".into(), 1), ("Domain: SH3".into(), 1), ("Signal".into(), 1)]);
    }

    #[test]
    fn explorer_examples_are_zero_based_inclusive() {
        let json = r#"{"meta": {}, "features": [{"examples": [
          {"accession": "Q1", "sequence": "MKTAYI", "behavior": "tm", "behavior_segments": [[0, 0], [3, 5]]},
          {"accession": "Q1", "sequence": "MKTAYI", "behavior": "tm", "behavior_segments": [[0, 0], [3, 5]]}]}]}"#;
        let l = read(json).unwrap();
        assert_eq!(l.proteins.len(), 1);
        assert_eq!(l.proteins[0].labels("Transmembrane"), [true, false, false, true, true, true]);
        let bad = json.replace("[3, 5]", "[3, 6]");
        assert_eq!(read(&bad).unwrap_err().to_string(), "behavior_segments is missing or malformed in features[0].examples[0]");
        assert!(matches!(read("{\"x\": 1}"), Err(LabelError::Unknown)));
    }
}

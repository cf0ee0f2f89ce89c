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
    let mut out = Labelled::default();
    for (i, r) in crate::alphabet::parse_fasta(text)?.into_iter().enumerate() {
        let accession = if r.header.is_empty() { format!("record {}", i + 1) } else { r.header.clone() };
        match residues_of(&r.sequence()) {
            Ok((sequence, _)) => out.proteins.push(Annotated { accession, sequence, segments: vec![] }),
            Err(why) => out.skipped.push(format!("{accession}: {why}")),
        }
    }
    Ok(out)
}

/// An annotated protein's sequence as the model reads it (one record, one letter per residue: a
/// `<mask>` has no annotation to learn), and its number of residues; else why not.
fn residues_of(sequence: &str) -> Result<(String, usize), String> {
    let records = crate::alphabet::parse_fasta(sequence).map_err(|e| e.to_string())?;
    let [record] = records.as_slice() else { return Err(format!("{} records where one sequence was expected", records.len())) };
    let (text, n) = (record.sequence(), record.residues.len());
    if text.len() != n {
        return Err("an annotated sequence must not hold <mask>".into());
    }
    if n == 0 || n > MAX_RESIDUES {
        return Err(format!("{n} residues (plmscope reads 1..={MAX_RESIDUES})"));
    }
    Ok((text, n))
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
        let (sequence, n) = match residues_of(sequence) {
            Ok(read) => read,
            Err(why) => {
                out.skipped.push(format!("{accession}: {why}"));
                continue;
            }
        };
        let mut segments = Vec::new();
        for f in e["features"].as_array().into_iter().flatten() {
            let (Some(kind), Some(start), Some(end)) =
                (f["type"].as_str(), f["location"]["start"]["value"].as_u64(), f["location"]["end"]["value"].as_u64())
            else {
                continue; // unknown ends ("?"), or not a range
            };
            // Compared as read (u64) before any cast: a usize is 32 bits in wasm.
            if start == 0 || end < start || end > n as u64 {
                out.skipped.push(format!("{accession}: {kind} {start}-{end} is outside its {n} residues"));
                continue;
            }
            let (start, end) = (start as usize, end as usize);
            segments.push(Segment { concept: kind.to_string(), start, end });
            let description = f["description"].as_str().unwrap_or("");
            if matches!(kind, "Domain" | "Motif" | "Region") && !description.is_empty() {
                segments.push(Segment { concept: format!("{kind}: {description}"), start, end });
            }
        }
        out.proteins.push(Annotated { accession: accession.into(), sequence, segments });
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
            let (sequence, n) = residues_of(e["sequence"].as_str().ok_or_else(|| field("sequence"))?)
                .map_err(|why| LabelError::Field { what: "sequence", place: format!("{} ({why})", place()) })?;
            let concept = behavior_concept(e["behavior"].as_str().ok_or_else(|| field("behavior"))?);
            let mut segments = Vec::new();
            for s in e["behavior_segments"].as_array().ok_or_else(|| field("behavior_segments"))? {
                let (Some(a), Some(b)) = (s[0].as_u64(), s[1].as_u64()) else { return Err(field("behavior_segments")) };
                // Compared as read (u64) before any cast: a usize is 32 bits in wasm.
                if b < a || b >= n as u64 {
                    return Err(field("behavior_segments"));
                }
                segments.push(Segment { concept: concept.into(), start: a as usize + 1, end: b as usize + 1 });
            }
            seen.entry(accession.into()).or_insert(Annotated { accession: accession.into(), sequence, segments });
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
        // Past the end as a u64 that a 32-bit cast would wrap into range.
        let wrapped = json.replace("[3, 5]", "[3, 4294967297]");
        assert_eq!(read(&wrapped).unwrap_err().to_string(), "behavior_segments is missing or malformed in features[0].examples[0]");
        let masked = json.replace("MKTAYI", "MK<mask>AYI");
        assert_eq!(read(&masked).unwrap_err().to_string(), "sequence is missing or malformed in features[0].examples[0] (an annotated sequence must not hold <mask>)");
    }

    #[test]
    fn ranges_count_residues_not_bytes() {
        // Spaces and a wrapped line are not residues; `*` ends the sequence; a bad letter is named.
        let entry = |seq: &str| format!(r#"{{"primaryAccession": "P0X", "sequence": {{"value": "{seq}"}},
          "features": [{{"type": "Signal", "location": {{"start": {{"value": 1}}, "end": {{"value": 6}}}}}}]}}"#);
        let l = read(&entry("MKT AYI")).unwrap();
        assert_eq!(l.proteins[0].sequence, "MKTAYI");
        assert_eq!(l.proteins[0].labels("Signal"), [true; 6]);
        let l = read(&entry("MKT AY")).unwrap();
        assert_eq!(l.skipped, ["P0X: Signal 1-6 is outside its 5 residues"]);
        let l = read(&entry("MK1AYI")).unwrap();
        assert!(l.proteins.is_empty() && l.skipped[0].starts_with("P0X: record 1: '1' at residue 3"), "{:?}", l.skipped);
        let l = read_proteins(">a\nMK<mask>A\n>b\nMKTA\n").unwrap();
        assert_eq!((l.proteins.len(), l.skipped.as_slice()), (1, ["a: an annotated sequence must not hold <mask>".to_string()].as_slice()));
    }
}
